"""What this proves: a failure while a sign-in's ``id_token`` is checked never puts a token, the
PKCE verifier or the nonce into Django's error report, and a failure inside the checking itself
is a refusal (400, nothing stored), not a 500.

- ``oidc.verify_id_token`` turns any unexpected exception (a bug in PyJWT or ``cryptography``,
  a claim no rule foresaw) into an ``IdTokenError``, and is ``@sensitive_variables()``;
- ``SignInCallbackMixin.verify_id_token`` (locals: the flow, the token response) is
  ``@sensitive_variables()`` too, and a ``Flow``'s repr shows neither verifier nor nonce;
- a signed ``at_hash`` of ``"\\ud800"`` (valid JSON; ``.encode()`` raised
  ``UnicodeEncodeError``) is a mismatch.

Found by a security review (SECURITY.rst item 21 promised clean reports for the exchange,
refresh, revocation and API paths, not for sign-in).
"""

from __future__ import annotations

import sys
from typing import Any

import jwt
from django.core.signals import got_request_exception
from django.test import Client
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from django_pagero_oauth import oidc
from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, at_pagero, single, start

from .test_error_reports import Report, _repr, all_secrets, assert_clean


def _flow_secrets(visitor: Client) -> list[str]:
    """The pending flow's PKCE verifier and nonce, read before the callback consumes them."""
    (entry,) = visitor.session["_pagero_oauth_flows"].values()
    return [entry["code_verifier"], entry["nonce"]]


def _report_of_the_callback(visitor: Client, callback: dict[str, str]) -> tuple[Any, Report]:
    seen: list[tuple[Any, Any]] = []

    def capture(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append((request, sys.exc_info()))

    got_request_exception.connect(capture)
    try:
        response = visitor.get(CALLBACK, callback)
    finally:
        got_request_exception.disconnect(capture)
    if not seen:
        return response, Report(Exception(), [], [])
    (django_request, (exc_type, exc, tb)), *_ = seen
    reporter = ExceptionReporter(django_request, exc_type, exc, tb, is_email=True)
    texts = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    texts += [
        f"{frame['filename']} {name}={_repr(value)}"
        for frame in reporter.get_traceback_frames()
        for name, value in frame["vars"]
    ]
    return response, Report(exc, texts, [])


def test_a_bug_inside_the_id_token_check_is_a_refusal_not_a_500(
    user: Any, pagero_mock: MockPageroServer, monkeypatch: Any, sign_in_enabled: None
) -> None:
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    visitor = Client(raise_request_exception=False)
    callback = single(at_pagero(start(visitor)))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug deep in PyJWT")

    monkeypatch.setattr(jwt, "decode", bug)
    response, _report = _report_of_the_callback(visitor, callback)
    assert response.status_code == 400, response.status_code
    assert "could not be verified" in response.content.decode()
    assert not PageroToken.objects.exists()


def test_a_bug_around_the_id_token_check_leaks_no_secret_into_the_error_report(
    user: Any, pagero_mock: MockPageroServer, monkeypatch: Any, sign_in_enabled: None
) -> None:
    """A failure the callback does not handle (here: in place of the verifier) is a 500; its
    report, as e-mailed to ADMINS or sent to a tracker, holds no token, verifier or nonce."""
    assert SafeExceptionReporterFilter().is_active(None), "DEBUG must be False here"
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    visitor = Client(raise_request_exception=False)
    callback = single(at_pagero(start(visitor)))
    flow_secrets = _flow_secrets(visitor)

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug around the verifier")

    monkeypatch.setattr(oidc, "verify_id_token", bug)
    response, report = _report_of_the_callback(visitor, callback)
    assert response.status_code == 500
    assert report.texts, "no error report was produced"
    secrets = all_secrets(pagero_mock, callback["code"])
    for value in flow_secrets:
        secrets.add("flow secret", value)
    assert_clean(report, secrets)


def test_a_signed_at_hash_with_a_lone_surrogate_is_a_refusal_not_a_500(
    user: Any, pagero_mock: MockPageroServer, monkeypatch: Any, sign_in_enabled: None
) -> None:
    """A real trigger, no monkeypatched library: the issuer signs an id_token whose ``at_hash``
    is ``"\\ud800"`` (valid JSON): a 400 "could not be verified", nothing stored."""
    from django_pagero_oauth.testing.mock import oidc as mock_oidc

    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    monkeypatch.setattr(mock_oidc, "at_hash", lambda access_token: "\ud800")
    visitor = Client(raise_request_exception=False)
    response = visitor.get(CALLBACK, single(at_pagero(start(visitor))))
    assert response.status_code == 400, response.status_code
    assert "could not be verified" in response.content.decode()
    assert not PageroToken.objects.exists()
