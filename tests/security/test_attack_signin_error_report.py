"""Attack: an unexpected failure while verifying a sign-in's id_token puts the user's fresh
access token (and the id_token) into Django's error report.

``oidc.verify_id_token(id_token, *, nonce, access_token)`` has no ``@sensitive_variables``, and
neither has ``SignInCallbackMixin.verify_id_token`` (its ``flow`` holds the PKCE verifier and the
nonce, and a ``Flow``'s dataclass repr shows them). The callback view catches only this
package's exceptions, so anything else raised in there (a bug in PyJWT or ``cryptography``, an
``at_hash`` claim with a lone surrogate, for which ``at_hash.encode()`` raises
``UnicodeEncodeError`` -- the nonce comparison right above guards against exactly that with
``surrogatepass``, the ``at_hash`` one does not) becomes a 500 whose report, as e-mailed to
``ADMINS`` or sent to an error tracker, shows those frames' locals in clear. SECURITY.rst item 21
promises "every frame ... holds no access, refresh or ID token" and tests that for the code
exchange, refresh, revocation and API paths ("a bug deep in urllib3"), not for sign-in.

Impact: a live access token (ten minutes of API access as the user's company) and the id_token
in error mails / trackers, readable by everyone with access to them. The refresh token stays
out (it is not passed in). Severity: low (needs an unexpected failure first).
"""

from __future__ import annotations

import sys
from typing import Any

import jwt
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from django_pagero_oauth.models import PageroIdentity
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, at_pagero, single, start

from .test_error_reports import Report, _repr, all_secrets, assert_clean


def test_a_bug_while_verifying_the_id_token_leaks_no_token_into_the_error_report(
    user: Any, pagero_mock: MockPageroServer, monkeypatch: Any
) -> None:
    assert SafeExceptionReporterFilter().is_active(None), "DEBUG must be False here"
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    visitor = Client(raise_request_exception=False)
    callback = single(at_pagero(start(visitor)))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug deep in PyJWT")

    monkeypatch.setattr(jwt, "decode", bug)
    seen: list[tuple[Any, Any]] = []

    def capture(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append((request, sys.exc_info()))

    got_request_exception.connect(capture)
    try:
        response = visitor.get(CALLBACK, callback)
    finally:
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
    assert_clean(Report(exc, texts, []), all_secrets(pagero_mock, callback["code"]))


def test_a_signed_at_hash_with_a_lone_surrogate_is_a_refusal_not_a_500(
    user: Any, pagero_mock: MockPageroServer, monkeypatch: Any
) -> None:
    """A real trigger, no monkeypatched library: the issuer signs an id_token whose ``at_hash``
    is ``"\\ud800"`` (valid JSON). The nonce check survives that (``surrogatepass``); the
    ``at_hash`` check raises ``UnicodeEncodeError``: a 500 with ``access_token`` and
    ``id_token`` in the report, instead of the 400 "could not be verified"."""
    from django_pagero_oauth.testing import mock_oidc

    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    monkeypatch.setattr(mock_oidc, "at_hash", lambda access_token: "\ud800")
    visitor = Client(raise_request_exception=False)
    response = visitor.get(CALLBACK, single(at_pagero(start(visitor))))
    assert response.status_code == 400, response.status_code
    assert "could not be verified" in response.content.decode()
