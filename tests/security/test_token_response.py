"""A token endpoint answer that is not a usable bearer token fails closed (item 10).

For a code exchange: nothing stored, a clear error page (never a 500, never the body echoed).
For a refresh: the stored token is exactly as it was, and the caller gets
:class:`~django_pagero_oauth.exceptions.PageroUnavailable`. Served by the strict mock's
``Fault`` over a real socket.

An answer that carries real tokens but is off-spec elsewhere (``"expires_in": "600"``, no
``token_type``, ...) is repaired, not refused (issue 9, item 5): the code exchange here, the
refresh in ``test_refresh_faults.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import DEFAULT_EXPIRES_IN
from django_pagero_oauth.testing.mock import OMIT, Fault
from django_pagero_oauth.tokens import get_valid_token
from django_pagero_oauth.transport import MAX_RESPONSE_BYTES

from .conftest import Browser, backoff_passed, token_snapshot

#: A token no client may accept from these answers; it must never be stored.
BAIT = "BAIT-access-token-must-never-be-stored"
GOOD = {
    "token_type": "bearer",
    "access_token": BAIT,
    "refresh_token": "BAIT-refresh-token",
    "expires_in": 600,
}


def _json(**changes: Any) -> str:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not _DROP})


_DROP = object()
HTML = "text/html; charset=utf-8"

BAD_ANSWERS: dict[str, dict[str, Any]] = {
    "201 with a token": {"status": 201, "body": _json()},
    "204": {"status": 204, "body": ""},
    "302 redirect": {"status": 302, "body": "", "headers": [("Location", "https://evil.example/")]},
    "400 no JSON": {"status": 400, "body": "Bad Request", "content_type": HTML},
    "500 with a token": {"status": 500, "body": _json()},
    "200 HTML": {"status": 200, "body": "<html><body>Login</body></html>", "content_type": HTML},
    "200 invalid JSON": {"status": 200, "body": '{"access_token": "' + BAIT},
    "200 empty body": {"status": 200, "body": ""},
    "200 JSON array": {"status": 200, "body": json.dumps([GOOD])},
    "200 JSON string": {"status": 200, "body": json.dumps(BAIT)},
    "200 JSON null": {"status": 200, "body": "null"},
    "missing access_token": {"status": 200, "body": _json(access_token=_DROP)},
    "empty access_token": {"status": 200, "body": _json(access_token="")},
    "numeric access_token": {"status": 200, "body": _json(access_token=12345)},
    "token_type mac": {"status": 200, "body": _json(token_type="mac")},
    "token_type DPoP": {"status": 200, "body": _json(token_type="DPoP")},
    "non-string refresh_token": {"status": 200, "body": _json(refresh_token=["a"])},
    "empty refresh_token": {"status": 200, "body": _json(refresh_token="")},
    "null access_token": {"status": 200, "body": _json(access_token=None)},
    "deeply nested JSON": {"status": 200, "body": "[" * 100_000 + "]" * 100_000},
    "body over 1 MiB": {
        # A perfectly good token padded past the limit: only the size is wrong.
        "status": 200,
        "body": _json()[:-1] + ', "pad": "' + "x" * MAX_RESPONSE_BYTES + '"}',
    },
    "body over 1 MiB of whitespace": {
        "status": 200,
        "body": _json() + " " * (MAX_RESPONSE_BYTES + 1),
    },
}


def _fault(grant_type: str, answer: dict[str, Any]) -> Fault:
    return Fault(
        endpoint="token",
        grant_type=grant_type,
        status=answer["status"],
        body=answer["body"],
        content_type=answer.get("content_type", "application/json"),
        headers=list(answer.get("headers", [])),
    )


def test_the_bait_answer_itself_would_be_accepted(browser: Browser, pagero_mock: Any) -> None:
    """Control: the unmodified bait answer is a valid token response; the cases below differ
    from it in one respect each."""
    pagero_mock.mock.add_fault(_fault("authorization_code", {"status": 200, "body": _json()}))
    assert browser.login().status_code == 302
    assert PageroToken.objects.get().access_token == BAIT


@pytest.mark.parametrize("answer", list(BAD_ANSWERS.values()), ids=list(BAD_ANSWERS))
def test_bad_answer_to_a_code_exchange_stores_nothing(
    browser: Browser, pagero_mock: Any, answer: dict[str, Any]
) -> None:
    pagero_mock.mock.add_fault(_fault("authorization_code", answer))

    response = browser.login()

    assert response.status_code in (400, 502, 503), response.status_code
    assert not PageroToken.objects.exists()
    content = response.content.decode()
    assert 'role="alert"' in content  # an error page of ours, with a message
    assert BAIT not in content and "<html><body>Login" not in content
    assert pagero_mock.mock.counts["authorization_code"] == 1


#: Off-spec fields next to real tokens (the mock issues them, then alters its answer), with
#: the access-token lifetime stored for each. Shared with ``test_refresh_faults.py``.
REPAIRED_ANSWERS: dict[str, tuple[dict[str, Any], int]] = {
    "string expires_in": ({"expires_in": "600"}, 600),
    "float expires_in": ({"expires_in": 300.0}, 300),
    "missing expires_in": ({"expires_in": OMIT}, DEFAULT_EXPIRES_IN),
    "null expires_in": ({"expires_in": None}, DEFAULT_EXPIRES_IN),
    "garbage expires_in": ({"expires_in": "ten minutes"}, DEFAULT_EXPIRES_IN),
    "zero expires_in": ({"expires_in": 0}, DEFAULT_EXPIRES_IN),
    "negative expires_in": ({"expires_in": -600}, DEFAULT_EXPIRES_IN),
    "boolean expires_in": ({"expires_in": True}, DEFAULT_EXPIRES_IN),
    "missing scope": ({"scope": OMIT}, 600),
    "missing claims": ({"claims": OMIT}, 600),
    "token_type Bearer": ({"token_type": "Bearer"}, 600),
    "token_type BEARER": ({"token_type": "BEARER"}, 600),
    "token_type with blanks": ({"token_type": "bearer "}, 600),
    "missing token_type": ({"token_type": OMIT}, 600),
    "null token_type": ({"token_type": None}, 600),
    "everything off-spec at once": (
        {"expires_in": "600", "token_type": "BEARER", "scope": OMIT, "claims": OMIT},
        600,
    ),
}


@pytest.mark.parametrize(
    ("fields", "lifetime"), list(REPAIRED_ANSWERS.values()), ids=list(REPAIRED_ANSWERS)
)
def test_off_spec_answer_with_real_tokens_completes_the_login(
    browser: Browser, pagero_mock: Any, fields: dict[str, Any], lifetime: int
) -> None:
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="token", grant_type="authorization_code", fields=fields))

    assert browser.login().status_code == 302

    stored = PageroToken.objects.get()
    assert stored.refresh_token == mock.issued_refresh_tokens[-1]
    assert mock.is_refresh_token_valid(stored.refresh_token)
    assert mock.is_access_token_valid(stored.access_token)
    assert stored.token_type == "bearer"
    expires = stored.access_token_expires_at - stored.access_token_issued_at
    assert expires.total_seconds() == lifetime


def test_code_exchange_without_a_refresh_token_stores_nothing(
    browser: Browser, pagero_mock: Any
) -> None:
    """Without a refresh token the connection would silently die in ten minutes."""
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", grant_type="authorization_code", omit_refresh_token=True)
    )
    response = browser.login()
    assert response.status_code == 502
    assert not PageroToken.objects.exists()


@pytest.mark.parametrize("answer", list(BAD_ANSWERS.values()), ids=list(BAD_ANSWERS))
def test_bad_answer_to_a_refresh_changes_nothing(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, answer: dict[str, Any]
) -> None:
    token = pagero_token_factory(user, expired=True)
    before = token_snapshot(token.pk)
    pagero_mock.mock.add_fault(_fault("refresh_token", answer))

    with pytest.raises(PageroUnavailable) as caught:
        get_valid_token(user)

    assert token_snapshot(token.pk) == before
    assert BAIT not in str(caught.value)
    assert pagero_mock.mock.counts["refresh_token"] == 1
    # Nothing lost: the kept refresh token still works once Pagero behaves.
    backoff_passed()
    assert get_valid_token(user).refresh_token != before["refresh_token"]
    assert pagero_mock.mock.counts["refresh_token"] == 2
