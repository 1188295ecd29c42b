"""The callback's error report hides the code in the WSGI server's copies of the request line.

Django's error report (e-mail, text and HTML) lists ``request.META``, and
``SafeExceptionReporterFilter`` cleanses only keys that look secret. Gunicorn puts the raw
request target in ``RAW_URI``, uWSGI and mod_wsgi in ``REQUEST_URI``, and proxies often pass it
on as a header (``X-Original-URI``). What this proves: once the callback view has read the code,
none of these shows it (nor the state), in a callback that fails after the code exchange.
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


@pytest.mark.parametrize("server_key", ["RAW_URI", "REQUEST_URI", "HTTP_X_ORIGINAL_URI"])
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
