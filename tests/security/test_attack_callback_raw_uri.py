"""Attack: the authorization code (and state) in the error report of a failing callback, through
the WSGI server's copy of the request line.

``views.hide_callback_secrets`` masks ``code`` and ``state`` in ``request.GET`` and
``QUERY_STRING`` only. Gunicorn puts the raw request target in ``environ["RAW_URI"]`` and uWSGI
/ mod_wsgi in ``environ["REQUEST_URI"]``; both become ``request.META`` keys, and Django's error
report (e-mail, text and HTML) lists ``request.META``. ``SafeExceptionReporterFilter`` cleanses
only META keys matching ``API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE``, so these two
show ``/pagero/callback/?code=...&state=...`` in full. SECURITY.rst item 21 promises "the
callback view's whole report, request section included: the code is masked once read"; the
"known limits" section only excuses middleware that records the query string *before* the view,
not the server's own environ, which is there in every deployment on those servers.

Impact: the code leaks to everyone who reads error e-mails / the tracker. A code whose exchange
failed before reaching Pagero is still unused; with PKCE it is useless without the verifier, so
the impact is limited (without PKCE, ``PKCE: False``, it could be redeemed within its lifetime by
whoever also holds the client secret). Severity: low.

Fix (suggested): ``views.hide_callback_secrets``: also rewrite ``REQUEST_URI``, ``RAW_URI`` (and
any META value that holds the raw query string, e.g. by replacing the raw query string wherever
it appears in ``request.META``) with the masked one.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter

from django_pagero_oauth.signals import token_obtained

from .test_error_reports import Report, _repr, _session_of, all_secrets, assert_clean


@pytest.mark.parametrize("server_key", ["RAW_URI", "REQUEST_URI"])
def test_callback_error_report_hides_the_code_in_the_servers_request_uri(
    browser: Any, pagero_mock: Any, server_key: str
) -> None:
    callback = browser.pagero_answer(browser.start_login("/protected/"))
    code = dict(parse_qsl(urlsplit(callback).query))["code"]

    def receiver(**kwargs: Any) -> None:
        raise RuntimeError("a receiver of token_obtained failed")

    seen: list[tuple[Any, Any]] = []

    def capture(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append((request, sys.exc_info()))

    token_obtained.connect(receiver)
    got_request_exception.connect(capture)
    try:
        client = Client(raise_request_exception=False, **_session_of(browser))
        response = client.get(callback, **{server_key: callback})  # as gunicorn / uWSGI set it
    finally:
        token_obtained.disconnect(receiver)
        got_request_exception.disconnect(capture)
    assert response.status_code == 500
    (django_request, (exc_type, exc, tb)), *_ = seen
    reporter = ExceptionReporter(django_request, exc_type, exc, tb, is_email=True)
    texts = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    texts += [
        f"{frame['filename']} {name}={_repr(value)}"
        for frame in reporter.get_traceback_frames()
        for name, value in frame["vars"]
    ]
    assert code not in django_request.get_full_path()  # what the package already masks
    assert_clean(Report(exc, texts, []), all_secrets(pagero_mock, code))
