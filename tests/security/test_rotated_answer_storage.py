"""A rotated refresh answer is stored, whatever values it holds: the new refresh token is never lost.

Once Pagero answers a refresh with a new refresh token, the old one is dead. ``from_json``
accepts such an answer unless it cannot be stored and used at all (SECURITY.rst item 23), so
every value it lets through must be storable, on every database: a NUL (PostgreSQL text cannot
hold one) or a lone surrogate (not UTF-8) in ``scope``, ``claims``, ``id_token`` or the JWT's
``publicid``; a JWT payload nested deeper than the recursion limit; an ``expires_in`` too large
for a float; an access token that is no bearer token. What this proves:

- after each such answer the stored refresh token is the new one, the failure (if any) is this
  package's own (no 500), and the next refresh works;
- if storing the full answer fails anyway (a bug, a database limit), the new refresh token, its
  fingerprint and lifetime are still stored, with the access token expired;
- a login (code exchange) with such an answer is no 500.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_pagero_oauth.conf import app_settings
from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token

from .conftest import backoff_passed

#: RFC 6750 2.1's b64token: what may follow "Bearer " in the header.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def is_bearer_token(value: str) -> bool:
    return B64TOKEN.fullmatch(value) is not None


def _jwt(payload_json: str) -> str:
    def part(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    return f"{part(json.dumps({'alg': 'RS256', 'typ': 'JWT'}))}.{part(payload_json)}.c2ln"


HOSTILE_ROTATED_FIELDS = {
    "scope with NUL": {"scope": "all\u0000x"},
    "claims with NUL": {"claims": "publicid\u0000"},
    "scope list with NUL": {"scope": ["all", "x\u0000"]},
    "scope with a lone surrogate": {"scope": "\ud800"},
    "claims with a lone surrogate": {"claims": "\udfff"},
    "id_token with a lone surrogate": {"id_token": "a.\ud800.b"},
    "id_token with NUL": {"id_token": "a.\u0000.b"},
    "publicid claim with NUL": {"access_token": _jwt(json.dumps({"publicid": "acme\u0000"}))},
    "publicid claim with a lone surrogate": {
        "access_token": _jwt(json.dumps({"publicid": "acme\ud800"}))
    },
    "deeply nested JWT payload": {"access_token": _jwt("[" * 50_000 + "]" * 50_000)},
    "expires_in too large for a float": {"expires_in": 10**400},
    "expires_in too small for a float": {"expires_in": -(10**400)},
    "access_token with a newline": {"access_token": "eyJhbGciOiJub25lIn0.e30.c2ln\n"},
    "access_token with NUL": {"access_token": "abc\u0000def"},
    "access_token with a lone surrogate": {"access_token": "abc\ud800"},
    "access_token with a space": {"access_token": "abc def"},
    "access_token not ASCII": {"access_token": "abcdéf"},
}


@pytest.mark.parametrize(
    "fields", list(HOSTILE_ROTATED_FIELDS.values()), ids=list(HOSTILE_ROTATED_FIELDS)
)
def test_rotated_refresh_answer_that_cannot_be_saved_keeps_the_new_refresh_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, fields: dict[str, Any]
) -> None:
    token = pagero_token_factory(user, expired=True)
    old_refresh = token.refresh_token
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="token", grant_type="refresh_token", fields=fields))

    failure: BaseException | None = None
    try:
        get_valid_token(user)
    except Exception as exc:  # what a view would turn into a 500
        failure = exc

    assert not mock.is_refresh_token_valid(old_refresh)  # Pagero rotated: the old one is dead
    new_refresh = mock.issued_refresh_tokens[-1]
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == new_refresh, (
        f"the new single-use refresh token was lost ({type(failure).__name__}: {failure}); "
        "the stored one is dead at Pagero"
    )
    assert failure is None or isinstance(failure, PageroUnavailable)
    # The connection works: the next use gets a bearer token (refreshing if it must).
    backoff_passed()
    assert is_bearer_token(get_valid_token(user).access_token)
    assert mock.is_refresh_token_valid(PageroToken.objects.get(pk=token.pk).refresh_token)


def test_whatever_fails_while_storing_the_answer_the_new_refresh_token_is_kept(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = pagero_token_factory(user, expired=True)
    old_fingerprint = token.fingerprint
    real_apply = PageroToken.apply_token_response

    def apply_then_fail(self: PageroToken, *args: Any, **kwargs: Any) -> None:
        real_apply(self, *args, **kwargs)
        raise RuntimeError("a bug while storing the answer")

    monkeypatch.setattr(PageroToken, "apply_token_response", apply_then_fail)
    lifetime = timedelta(days=app_settings.REFRESH_TOKEN_LIFETIME_DAYS)
    before = timezone.now()
    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    after = timezone.now()
    monkeypatch.setattr(PageroToken, "apply_token_response", real_apply)

    mock = pagero_mock.mock
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == mock.issued_refresh_tokens[-1]
    assert mock.is_refresh_token_valid(stored.refresh_token)
    assert stored.fingerprint not in ("", old_fingerprint)
    # The new refresh token's lifetime starts now; the old access token is gone, expired.
    assert before + lifetime <= stored.refresh_token_expires_at <= after + lifetime
    assert stored.access_token == ""
    assert before <= stored.access_token_expires_at <= after
    assert stored.is_access_token_expired()
    backoff_passed()
    assert is_bearer_token(get_valid_token(user).access_token)
    assert mock.counts["refresh_token"] == 2


@pytest.mark.parametrize(
    "fields",
    [
        HOSTILE_ROTATED_FIELDS[name]
        for name in ("scope with a lone surrogate", "scope with NUL", "access_token with a newline")
    ],
    ids=["scope with a lone surrogate", "scope with NUL", "access_token with a newline"],
)
def test_login_with_such_an_answer_is_no_500(browser: Any, pagero_mock: Any, fields: Any) -> None:
    """The callback promises a clear error page, never a 500 (item 10)."""
    callback = browser.pagero_answer(browser.start_login("/protected/"))
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", grant_type="authorization_code", fields=fields)
    )
    try:
        response = browser.callback(callback)
    except Exception as exc:  # the test client re-raises what the view let escape
        pytest.fail(f"the callback crashed with {type(exc).__name__}: {exc}")
    assert response.status_code < 500 or response.status_code in (502, 503)
