"""Attack: a rotated refresh answer that passes ``TokenResponse.from_json`` but cannot be SAVED.

``from_json`` accepts any answer that carries a new refresh token (SECURITY.rst item 23: "only
what cannot be stored and used is refused"), and ``tokens._refresh_locked`` then calls
``apply_token_response`` + ``save()`` under the row lock. Several values that ``from_json``
lets through make that write (or ``apply_token_response`` itself) raise an exception that is
not a ``PageroOAuthError``:

- a NUL character in ``scope`` / ``claims`` (PostgreSQL text cannot hold NUL: ``DataError``);
- a lone surrogate (``"\\ud800"``, valid JSON) in ``scope``, ``claims`` or ``id_token``
  (``UnicodeEncodeError`` when the driver or Fernet encodes it as UTF-8);
- an access token that is a JWT whose ``publicid`` claim holds a NUL (PostgreSQL), or whose
  payload is JSON nested deeper than the recursion limit (``decode_jwt_unverified`` catches
  ``ValueError`` but not ``RecursionError``);
- an ``expires_in`` that is a JSON integer too large for a float (``math.isfinite`` raises
  ``OverflowError`` in ``_lenient_expires_in``).

Impact: Pagero has already spent the old single-use refresh token and issued a new one; the
transaction rolls back, so the NEW refresh token is lost and only the dead one stays stored: the
user's connection is gone (the next refresh is ``invalid_grant``). The exception also escapes as
a 500 (from protected views, the middleware, ``get_client``), not ``PageroUnavailable``. For a
login (code exchange) the callback answers 500 instead of the "cannot be used" page.

Severity: medium (needs a hostile or broken token endpoint / proxy, which is exactly what item 23
promises to survive; the loss is permanent).

Fix (suggested): in ``oauth.TokenResponse.from_json`` normalise the informational fields
(``scope``, ``claims``, ``id_token``: drop NUL and surrogates, or empty them with a warning) and
read ``expires_in`` without ``math.isfinite`` on huge ints (e.g. ``min(value, MAX_EXPIRES_IN)``
first); in ``oauth.decode_jwt_unverified`` also catch ``RecursionError`` and in
``models.PageroToken.apply_token_response`` keep only a ``publicid`` without NUL/surrogates.
Defence in depth: in ``tokens._refresh_locked``, if saving the full answer fails, save at least the
new refresh token (and its fingerprint) before raising.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token


def _jwt(payload_json: str) -> str:
    def part(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    return f"{part(json.dumps({'alg': 'RS256', 'typ': 'JWT'}))}.{part(payload_json)}.c2ln"


HOSTILE_ROTATED_FIELDS = {
    "scope with NUL": {"scope": "all\u0000x"},
    "claims with NUL": {"claims": "publicid\u0000"},
    "scope with a lone surrogate": {"scope": "\ud800"},
    "claims with a lone surrogate": {"claims": "\udfff"},
    "id_token with a lone surrogate": {"id_token": "a.\ud800.b"},
    "publicid claim with NUL": {"access_token": _jwt(json.dumps({"publicid": "acme\u0000"}))},
    "deeply nested JWT payload": {"access_token": _jwt("[" * 50_000 + "]" * 50_000)},
    "expires_in too large for a float": {"expires_in": 10**400},
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
    assert failure is None or type(failure).__module__.startswith("django_pagero_oauth")


@pytest.mark.parametrize(
    "fields",
    [HOSTILE_ROTATED_FIELDS[name] for name in ("scope with a lone surrogate", "scope with NUL")],
    ids=["scope with a lone surrogate", "scope with NUL"],
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
