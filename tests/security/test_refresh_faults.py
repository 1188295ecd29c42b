"""Refreshing never loses the connection by accident (items 13 and 14).

Pagero's refresh tokens are single-use: the new one replaces the old in one write; an answer
without one keeps the old. Every failure of a refresh (transport, HTTP, garbage, OAuth
errors) leaves the stored token exactly as it was, except a definite ``invalid_grant``,
which marks the connection as needing a new login (and keeps the row). Faults come from the
strict mock over real sockets; "timeout" is a server that accepts and never answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.db import connection

from django_pagero_oauth.crypto import fingerprint
from django_pagero_oauth.exceptions import (
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroUnavailable,
)
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import OMIT, Fault
from django_pagero_oauth.tokens import get_valid_token

from .conftest import backoff_passed, raw_token_row, token_snapshot
from .test_token_response import REPAIRED_ANSWERS

SHORT_TIMEOUT = 0.25
HTML = "text/html; charset=utf-8"


# --- 13. the new refresh token replaces the old one, atomically ------------------------------


def test_refresh_replaces_both_tokens_in_one_locked_write(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    old_refresh, old_access = token.refresh_token, token.access_token
    table = PageroToken._meta.db_table
    statements: list[tuple[str, int]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, len(connection.atomic_blocks)))
        return execute(sql, params, many, context)

    depth = len(connection.atomic_blocks)
    with connection.execute_wrapper(record):
        fresh = get_valid_token(user)

    mock = pagero_mock.mock
    assert fresh.refresh_token == mock.issued_refresh_tokens[-1] != old_refresh
    assert mock.is_refresh_token_valid(fresh.refresh_token)
    assert not mock.is_refresh_token_valid(old_refresh)  # consumed at Pagero
    assert mock.is_access_token_valid(fresh.access_token) and fresh.access_token != old_access
    stored = PageroToken.objects.get(pk=token.pk)
    assert (stored.refresh_token, stored.access_token) == (fresh.refresh_token, fresh.access_token)
    assert stored.fingerprint == fingerprint(fresh.refresh_token)
    assert not stored.access_token_needs_refresh()
    # One UPDATE writes the new pair (never one without the other), inside a transaction
    # that took the row lock before reading the token it refreshed with.
    sqls = [sql for sql, _ in statements]
    writes = [
        i
        for i, sql in enumerate(sqls)
        if sql.startswith(f'UPDATE "{table}"') and '"refresh_token" =' in sql
    ]
    assert len(writes) == 1
    write = writes[0]
    assert '"access_token" =' in sqls[write] and '"access_token_expires_at" =' in sqls[write]
    assert statements[write][1] > depth
    lock = max(
        i
        for i, sql in enumerate(sqls[:write])
        if "FOR UPDATE" in sql
        or (sql.startswith(f'UPDATE "{table}"') and "refresh_token" not in sql)
    )
    assert any(sql.startswith("SELECT") and table in sql for sql in sqls[lock:write])
    assert mock.counts["refresh_token"] == 1
    assert get_valid_token(user).refresh_token == fresh.refresh_token  # no second refresh
    assert mock.counts["refresh_token"] == 1


def test_answer_without_a_refresh_token_keeps_the_old_one(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    old_refresh, old_access = token.refresh_token, token.access_token
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", omit_refresh_token=True)
    )

    fresh = get_valid_token(user)

    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == old_refresh
    assert stored.fingerprint == fingerprint(old_refresh)
    assert stored.access_token == fresh.access_token != old_access
    assert pagero_mock.mock.is_refresh_token_valid(old_refresh)
    # And the kept one still works for the next refresh.
    again = get_valid_token(user, force_refresh=True)
    assert again.refresh_token != old_refresh
    assert pagero_mock.mock.counts["refresh_token_failed"] == 0


# --- 14. the fault matrix -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    #: Sets the fault up: (mock server, settings, silent url, refused url).
    arrange: Callable[[Any, Any, str, str], None]
    raises: type[Exception] = PageroUnavailable
    #: The refresh token reached Pagero and was used up there (the answer was lost).
    consumed_at_pagero: bool = False
    retry_after: int | None = None


def _fault(**kwargs: Any) -> Callable[[Any, Any, str, str], None]:
    def arrange(server: Any, settings: Any, silent: str, refused: str) -> None:
        server.mock.add_fault(Fault(endpoint="token", grant_type="refresh_token", **kwargs))

    return arrange


def _token_url(which: str) -> Callable[[Any, Any, str, str], None]:
    def arrange(server: Any, settings: Any, silent: str, refused: str) -> None:
        url = silent if which == "silent" else refused
        settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TOKEN_URL": url}

    return arrange


def _oauth_error(error: str, status: int = 400) -> Callable[[Any, Any, str, str], None]:
    return _fault(status=status, body=f'{{"error": "{error}", "error_description": "x"}}')


def _slow(process: bool) -> Callable[[Any, Any, str, str], None]:
    """An answer (a good one) that comes after ``TIMEOUT``."""
    if process:
        return _fault(delay=SHORT_TIMEOUT * 8, process=True)
    body = '{"token_type": "bearer", "access_token": "late", "refresh_token": "late"}'
    return _fault(delay=SHORT_TIMEOUT * 8, status=200, body=body)


KEPT_CASES: dict[str, Case] = {
    "timeout (no answer)": Case(_token_url("silent")),
    "connection refused": Case(_token_url("refused")),
    "connection dropped": Case(_fault(drop=True)),
    "500": Case(_fault(status=500)),
    "502 HTML": Case(_fault(status=502, body="<html>Bad Gateway</html>", content_type=HTML)),
    "503 HTML": Case(_fault(status=503, body="<html>Maintenance</html>", content_type=HTML)),
    "504 empty": Case(_fault(status=504, body="")),
    "200 invalid JSON": Case(_fault(status=200, body="{oops")),
    "200 HTML": Case(_fault(status=200, body="<html>login</html>", content_type=HTML)),
    "missing access_token": Case(_fault(status=200, body='{"token_type": "bearer"}')),
    "token_type mac": Case(_fault(status=200, body='{"access_token": "a", "token_type": "mac"}')),
    "access_token not a bearer token": Case(_fault(status=200, body='{"access_token": "a b"}')),
    "missing everything": Case(_fault(status=200, body="{}")),
    "slow answer beyond TIMEOUT": Case(_slow(process=False)),
    "slow answer beyond TIMEOUT, processed at Pagero": Case(
        _slow(process=True), consumed_at_pagero=True
    ),
    "dropped after processing at Pagero": Case(
        _fault(drop=True, process=True), consumed_at_pagero=True
    ),
    "invalid_client": Case(_oauth_error("invalid_client", 401), raises=PageroConfigurationError),
    "401 without a body": Case(_fault(status=401, body=""), raises=PageroConfigurationError),
    "invalid_request": Case(_oauth_error("invalid_request")),
    "unauthorized_client": Case(_oauth_error("unauthorized_client")),
    "invalid_scope": Case(_oauth_error("invalid_scope")),
    "unsupported_grant_type": Case(_oauth_error("unsupported_grant_type")),
    "429 with Retry-After": Case(
        _fault(status=429, headers=[("Retry-After", "120")]), retry_after=120
    ),
    "503 with Retry-After": Case(
        _fault(status=503, headers=[("Retry-After", "45")]), retry_after=45
    ),
    # Pagero rotated, but the answer cannot be stored and used (issue 9, item 5: only these
    # are refused). The new refresh token is lost with it: the limit no client can pass.
    "rotated, token_type mac": Case(_fault(fields={"token_type": "mac"}), consumed_at_pagero=True),
    "rotated, no access_token": Case(
        _fault(fields={"access_token": OMIT}), consumed_at_pagero=True
    ),
    "rotated, empty refresh_token": Case(
        _fault(fields={"refresh_token": ""}), consumed_at_pagero=True
    ),
}


@pytest.fixture
def short_timeout(pagero_mock: Any, settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": SHORT_TIMEOUT}


@pytest.mark.usefixtures("short_timeout")
@pytest.mark.parametrize("case", list(KEPT_CASES.values()), ids=list(KEPT_CASES))
def test_failed_refresh_keeps_the_stored_token(
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    silent_url: str,
    refused_url: str,
    case: Case,
) -> None:
    token = pagero_token_factory(user, expired=True)
    before = token_snapshot(token.pk)
    raw_before = raw_token_row(token.pk)
    good_settings = dict(settings.PAGERO_OAUTH)
    case.arrange(pagero_mock, settings, silent_url, refused_url)

    with pytest.raises(case.raises) as caught:
        get_valid_token(user)

    assert not isinstance(caught.value, PageroAuthorizationRequired)
    if case.retry_after is not None:
        assert caught.value.retry_after == case.retry_after  # type: ignore[attr-defined]
    assert token_snapshot(token.pk) == before
    raw_after = raw_token_row(token.pk)
    assert raw_after["refresh_token"] == raw_before["refresh_token"]  # not even re-encrypted
    assert PageroToken.objects.get(pk=token.pk).status == PageroToken.Status.ACTIVE

    # Nothing lost: once Pagero is back (and the back-off has run out), the kept refresh
    # token still works...
    settings.PAGERO_OAUTH = good_settings
    backoff_passed()
    mock = pagero_mock.mock
    if not case.consumed_at_pagero:
        assert mock.is_refresh_token_valid(before["refresh_token"])
        assert get_valid_token(user).refresh_token != before["refresh_token"]
    else:
        # ...unless Pagero used it up and its answer never arrived: then the next refresh
        # gets invalid_grant, the one case that ends the connection (RFC 6749 6 + Pagero's
        # single-use rule; no client can do better).
        assert not mock.is_refresh_token_valid(before["refresh_token"])
        with pytest.raises(PageroAuthorizationRequired):
            get_valid_token(user)
        assert PageroToken.objects.get(pk=token.pk).needs_reauthorization


def test_off_spec_answer_that_kept_the_refresh_token_is_stored_too(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """One rule for every answer: without a new refresh token, an answer with no
    ``token_type`` and a string ``expires_in`` is repaired the same way, and the kept refresh
    token still works."""
    token = pagero_token_factory(user, expired=True)
    mock = pagero_mock.mock
    fields = {"token_type": OMIT, "expires_in": "300"}
    mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", omit_refresh_token=True, fields=fields)
    )

    fresh = get_valid_token(user)

    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == token.refresh_token
    assert mock.is_access_token_valid(fresh.access_token)
    expires = stored.access_token_expires_at - stored.access_token_issued_at
    assert expires.total_seconds() == 300
    assert get_valid_token(user, force_refresh=True).refresh_token != token.refresh_token


@pytest.mark.parametrize(
    ("fields", "lifetime"), list(REPAIRED_ANSWERS.values()), ids=list(REPAIRED_ANSWERS)
)
def test_off_spec_answer_after_rotation_keeps_the_new_refresh_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, fields: dict[str, Any], lifetime: int
) -> None:
    """Issue 9, item 5: Pagero used up the old refresh token and sent a new one next to an
    off-spec field. Refusing the answer would lose the connection; it is stored instead."""
    token = pagero_token_factory(user, expired=True)
    old_refresh = token.refresh_token
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="token", grant_type="refresh_token", fields=fields))

    fresh = get_valid_token(user)

    assert not mock.is_refresh_token_valid(old_refresh)  # rotated at Pagero
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == fresh.refresh_token == mock.issued_refresh_tokens[-1]
    assert stored.fingerprint == fingerprint(stored.refresh_token)
    assert mock.is_access_token_valid(stored.access_token)
    assert stored.token_type == "bearer" and stored.status == PageroToken.Status.ACTIVE
    expires = stored.access_token_expires_at - stored.access_token_issued_at
    assert expires.total_seconds() == lifetime
    # The connection lives on: the next refresh uses the kept token.
    again = get_valid_token(user, force_refresh=True)
    assert again.refresh_token != stored.refresh_token
    assert mock.counts["refresh_token"] == 2 and mock.counts["refresh_token_failed"] == 0


@pytest.mark.parametrize("source", ["fault", "real"])
def test_definite_invalid_grant_marks_for_reauthorization(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, source: str
) -> None:
    token = pagero_token_factory(user, expired=True)
    before = token_snapshot(token.pk)
    if source == "fault":
        pagero_mock.mock.add_fault(
            Fault(
                endpoint="token",
                grant_type="refresh_token",
                status=400,
                body='{"error": "invalid_grant"}',
            )
        )
    else:  # the refresh token was used elsewhere (e.g. a copy of the database)
        used = requests.post(
            pagero_mock.url + "/oauth/v2/oauth-token",
            data={"grant_type": "refresh_token", "refresh_token": token.refresh_token},
            auth=("mock-client-id", "mock-client-secret"),
            timeout=5,
        )
        assert used.status_code == 200

    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)

    reread = PageroToken.objects.get(pk=token.pk)  # from the database, not the instance
    assert reread.needs_reauthorization
    assert reread.status == PageroToken.Status.REAUTHORIZATION_REQUIRED
    after = token_snapshot(token.pk)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"status", "status_reason"}  # the row and its tokens are kept
    refreshes = pagero_mock.mock.counts["refresh_token"]
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    assert pagero_mock.mock.counts["refresh_token"] == refreshes  # no retry with a dead token


def test_invalid_grant_with_status_401_never_deletes_the_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """Some servers send invalid_grant with 401 (RFC 6749 5.2 says 400). Whether that reads as
    "credentials rejected" or "grant dead", the row must survive it."""
    token = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            status=401,
            body='{"error": "invalid_grant", "error_description": "expired"}',
        )
    )
    with pytest.raises((PageroAuthorizationRequired, PageroUnavailable)):
        get_valid_token(user)
    # Either reading is defensible for the token's fate, but it must not be deleted.
    assert PageroToken.objects.filter(pk=token.pk).exists()
