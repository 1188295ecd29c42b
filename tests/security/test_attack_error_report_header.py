"""Attack: an access token that ``http.client`` refuses as a header value is echoed, in full, in the
exception message that leaves ``get_client(user).get(...)`` and so in Django's error report.

``TokenResponse.from_json`` accepts any non-empty string as ``access_token`` (RFC 6750 2.1 allows
only ``b64token`` characters). A token endpoint (or a proxy) that answers with a token followed by
a newline, e.g. ``"eyJ...sig\\n"``, gets it stored; the next API call sets
``Authorization: Bearer eyJ...sig\\n``, ``http.client.putheader`` raises
``ValueError("Invalid header value b'Bearer eyJ...sig\\\\n'")`` and ``client._detached`` only strips
the traceback of non-``requests`` exceptions: the message, with the whole bearer token, is the
exception value shown by Django's ``ExceptionReporter`` (error e-mails, trackers), whatever
``SafeExceptionReporterFilter`` hides in the frames (SECURITY.rst item 21).

Impact: a live access token (usable for up to 10 minutes, or a day with a large ``expires_in``)
in error e-mails / trackers. Every call fails the same way until the next refresh, so each one
reports it again. Severity: low (needs an off-spec token answer).

Fix (suggested): ``oauth.TokenResponse.from_json``: refuse (or, for a rotated answer, keep the
refresh token but treat as needing refresh) an ``access_token`` outside RFC 6750's ``b64token``
(at least: no control characters, no whitespace, ASCII only); ``client._detached``: replace a
non-``requests`` exception by one whose message cannot hold the header (e.g. ``type(exc).__name__``
with a generic text), as is done for ``requests`` exceptions' ``request``.
"""

from __future__ import annotations

from typing import Any

from django_pagero_oauth import get_client
from django_pagero_oauth.testing.mock import Fault

from .test_error_reports import all_secrets, assert_clean, raised_by, render

LEAKED = "eyJhbGciOiJSUzI1NiJ9.eyJwdWJsaWNpZCI6ImFjbWUifQ.c2VjcmV0LXNpZ25hdHVyZS0xMjM0NTY3ODkw"


def test_api_call_with_a_token_the_header_refuses_shows_no_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", fields={"access_token": LEAKED + "\n"})
    )
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert_clean(report, all_secrets(pagero_mock, LEAKED))
