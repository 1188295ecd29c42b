"""The token lifecycle (django_pagero_oauth.tokens), against the mock Pagero over a real socket.

The guarantee under test: a user's token is refreshed at most once however many threads ask for
it at the same time, and a refresh that fails for any reason but a definite ``invalid_grant``
leaves the stored token exactly as it was.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import Any

import pytest
import requests
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.utils import timezone

from django_pagero_oauth import oauth
from django_pagero_oauth.exceptions import (
    InvalidTokenResponse,
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroUnavailable,
    TokenGone,
)
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.signals import token_refresh_failed, token_revoked
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import (
    aget_valid_token,
    get_valid_token,
    refresh,
    refresh_now,
    revoke,
)

REFRESH = {"endpoint": "token", "grant_type": "refresh_token"}


def refresh_calls(pagero_mock: Any) -> int:
    return pagero_mock.mock.counts["refresh_token"]


def secrets_of(token: PageroToken, settings: Any) -> list[str]:
    return [
        token.access_token,
        token.refresh_token,
        settings.PAGERO_OAUTH["CLIENT_SECRET"],
    ]


def assert_no_secret_logged(caplog: Any, secrets: list[str]) -> None:
    for record in caplog.records:
        text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        for secret in secrets:
            assert secret not in text, f"a secret was logged by {record.name}"


# --- getting a valid token ------------------------------------------------------------------


def test_a_valid_token_is_returned_with_one_query_and_no_call(
    user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    stored = pagero_token_factory(user)
    with django_assert_num_queries(1):
        token = get_valid_token(user)
    assert token.access_token == stored.access_token
    assert refresh_calls(pagero_mock) == 0


def test_an_expired_token_is_refreshed_and_the_rotation_stored(
    user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user, expired=True)
    before = timezone.now()

    token = get_valid_token(user)

    after = timezone.now()
    mock = pagero_mock.mock
    assert refresh_calls(pagero_mock) == 1
    assert mock.counts["refresh_token_failed"] == 0
    row = PageroToken.objects.get(pk=stored.pk)
    assert row.access_token == token.access_token != stored.access_token
    assert mock.is_access_token_valid(row.access_token)
    assert row.refresh_token == mock.issued_refresh_tokens[-1] != stored.refresh_token
    assert mock.is_refresh_token_valid(row.refresh_token)
    assert not mock.is_refresh_token_valid(stored.refresh_token)  # single-use: consumed
    assert row.fingerprint != stored.fingerprint
    assert before + timedelta(seconds=600) <= row.access_token_expires_at
    assert row.access_token_expires_at <= after + timedelta(seconds=600)
    # The refresh token's three years start again (rolling lifetime).
    assert row.refresh_token_expires_at >= before + timedelta(days=3 * 365)
    assert row.refresh_token_expires_at > stored.refresh_token_expires_at
    assert row.last_refreshed is not None and before <= row.last_refreshed <= after
    assert row.status == PageroToken.Status.ACTIVE


def test_a_token_expiring_within_the_leeway_is_refreshed(user, pagero_mock, pagero_token_factory):
    now = timezone.now()
    pagero_token_factory(
        user,
        access_token_issued_at=now - timedelta(seconds=570),
        access_token_expires_at=now + timedelta(seconds=30),
    )
    get_valid_token(user)
    assert refresh_calls(pagero_mock) == 1


def test_a_token_valid_beyond_the_leeway_is_not_refreshed(
    user, pagero_mock, pagero_token_factory, settings
):
    now = timezone.now()
    stored = pagero_token_factory(
        user,
        access_token_issued_at=now - timedelta(seconds=510),
        access_token_expires_at=now + timedelta(seconds=90),
    )
    assert get_valid_token(user).access_token == stored.access_token
    assert refresh_calls(pagero_mock) == 0

    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_LEEWAY": 120}
    assert get_valid_token(user).access_token != stored.access_token
    assert refresh_calls(pagero_mock) == 1


def test_force_refresh_refreshes_a_valid_token_once(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user)
    token = get_valid_token(user, force_refresh=True)
    assert token.access_token != stored.access_token
    assert refresh_calls(pagero_mock) == 1


def test_a_response_without_refresh_token_keeps_the_old_one(
    user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(**REFRESH, omit_refresh_token=True))

    token = get_valid_token(user)

    row = PageroToken.objects.get(pk=stored.pk)
    assert row.access_token == token.access_token != stored.access_token
    assert row.refresh_token == stored.refresh_token  # kept, never nulled
    assert row.fingerprint == stored.fingerprint
    assert pagero_mock.mock.is_refresh_token_valid(row.refresh_token)
    assert row.refresh_token_expires_at > stored.refresh_token_expires_at


def test_aget_valid_token_refreshes_from_async_code(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, expired=True)
    token = async_to_sync(aget_valid_token)(user)
    assert token.access_token != stored.access_token
    assert refresh_calls(pagero_mock) == 1


# --- no token to give ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["none", "anonymous"])
def test_anonymous_gets_no_token(who, pagero_mock, db):
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(None if who == "none" else AnonymousUser())


def test_a_user_without_token_gets_none(user, pagero_mock):
    with pytest.raises(PageroAuthorizationRequired) as caught:
        get_valid_token(user)
    assert caught.value.error == "pagero_authorization_required"


def test_an_inactive_user_gets_no_token_and_no_refresh(
    user, pagero_mock, pagero_token_factory, stored_token_state
):
    stored = pagero_token_factory(user, expired=True)
    user.is_active = False
    user.save()
    before = stored_token_state(stored)

    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    with pytest.raises(PageroAuthorizationRequired):
        refresh_now(PageroToken.objects.get(pk=stored.pk))

    assert refresh_calls(pagero_mock) == 0
    assert stored_token_state(stored) == before


@pytest.mark.parametrize("dead", ["marked", "refresh_token_expired"])
def test_a_dead_token_is_not_refreshed(dead, user, pagero_mock, pagero_token_factory):
    fields: dict[str, Any] = (
        {"status": PageroToken.Status.REAUTHORIZATION_REQUIRED}
        if dead == "marked"
        else {"refresh_token_expires_at": timezone.now() - timedelta(seconds=1)}
    )
    stored = pagero_token_factory(user, expired=True, **fields)
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    with pytest.raises(PageroAuthorizationRequired):
        refresh(stored, force=True)
    assert refresh_calls(pagero_mock) == 0


# --- failures: the stored token survives ----------------------------------------------------

TRANSIENT_FAULTS = {
    "503": Fault(**REFRESH, status=503),
    "500 html": Fault(**REFRESH, status=500, body="<h1>oops</h1>", content_type="text/html"),
    "502 empty": Fault(**REFRESH, status=502, body=b""),
    "429": Fault(**REFRESH, status=429, headers=[("Retry-After", "42")]),
    "dropped connection": Fault(**REFRESH, drop=True),
    "200 not json": Fault(**REFRESH, status=200, body="<html>", content_type="text/html"),
    "200 no access_token": Fault(**REFRESH, status=200, body='{"token_type": "bearer"}'),
    "200 not bearer": Fault(
        **REFRESH, status=200, body='{"access_token": "x", "token_type": "mac"}'
    ),
    # Not rotated, and its access token cannot be sent: nothing usable (an off-spec
    # expires_in alone is repaired, see test_oauth.py).
    "200 unsendable access_token": Fault(
        **REFRESH,
        status=200,
        body='{"access_token": "x y", "token_type": "bearer", "expires_in": 600}',
    ),
    "200 json list": Fault(**REFRESH, status=200, body="[]"),
    "400 invalid_request": Fault(**REFRESH, status=400),
    "400 invalid_scope": Fault(**REFRESH, status=400, body='{"error": "invalid_scope"}'),
    "400 unauthorized_client": Fault(
        **REFRESH, status=400, body='{"error": "unauthorized_client"}'
    ),
    "403 no oauth error": Fault(**REFRESH, status=403, body="forbidden", content_type="text/plain"),
    "401 invalid_client": Fault(**REFRESH, status=401),
}


@pytest.mark.parametrize("fault_name", TRANSIENT_FAULTS)
def test_a_failed_refresh_changes_nothing_and_is_not_retried(
    fault_name, user, pagero_mock, pagero_token_factory, stored_token_state, receive
):
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    fault = TRANSIENT_FAULTS[fault_name]
    pagero_mock.mock.add_fault(
        Fault(**{name: getattr(fault, name) for name in fault.__dataclass_fields__})
    )

    # Rejected client credentials are not "unavailable" (a person must fix the settings).
    raised = PageroConfigurationError if fault_name == "401 invalid_client" else PageroUnavailable
    with receive(token_refresh_failed) as failed, pytest.raises(raised) as caught:
        get_valid_token(user)

    assert refresh_calls(pagero_mock) == 1  # one attempt, no retry loop
    assert stored_token_state(stored) == before  # every column, ciphertext included
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
    assert [call["reason"] for call in failed] == [
        "configuration" if fault_name == "401 invalid_client" else "unavailable"
    ]
    assert failed[0]["error"] is caught.value
    assert failed[0]["token"].pk == stored.pk
    if fault_name.startswith(("4", "5")):
        assert caught.value.status_code == int(fault_name[:3])
    for secret in (stored.access_token, stored.refresh_token):
        assert secret not in str(caught.value)

    # Callers right after the failure fail at once, the same way, instead of queueing up to
    # try again.
    with pytest.raises(raised) as again:
        get_valid_token(user)
    assert refresh_calls(pagero_mock) == 1
    if raised is PageroUnavailable:
        assert again.value.retry_after and again.value.retry_after > 0

    # Nothing was lost: once the back-off is over, the same stored refresh token works.
    caches[DEFAULT_CACHE_ALIAS].clear()
    token = get_valid_token(user)
    assert refresh_calls(pagero_mock) == 2
    assert token.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]


def test_429_carries_retry_after(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=429, headers=[("Retry-After", "42")]))
    with pytest.raises(PageroUnavailable) as caught:
        get_valid_token(user)
    assert caught.value.retry_after == 42


def test_malformed_answer_is_an_invalid_token_response(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=200, body="{}"))
    with pytest.raises(InvalidTokenResponse):
        get_valid_token(user)


def test_an_oauth_error_other_than_invalid_grant_keeps_its_code(
    user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=400, body='{"error": "invalid_scope"}'))
    with pytest.raises(PageroUnavailable) as caught:
        get_valid_token(user)
    assert not isinstance(caught.value, PageroAuthorizationRequired)
    assert caught.value.error == "invalid_scope"


def test_a_timeout_changes_nothing(
    user, pagero_mock, pagero_token_factory, stored_token_state, settings
):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 0.2}
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(**REFRESH, delay=5))

    with pytest.raises(PageroUnavailable) as caught:
        get_valid_token(user)

    assert "in time" in caught.value.description
    assert refresh_calls(pagero_mock) == 1
    assert stored_token_state(stored) == before


def test_connection_refused_changes_nothing(
    user, pagero_mock, pagero_token_factory, stored_token_state, settings
):
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "TOKEN_URL": f"http://127.0.0.1:{port}/oauth/v2/oauth-token",
    }

    with pytest.raises(PageroUnavailable) as caught:
        get_valid_token(user)

    assert "reached" in caught.value.description
    assert refresh_calls(pagero_mock) == 0
    assert stored_token_state(stored) == before


def test_invalid_client_is_logged_loudly_without_secrets_and_the_token_kept(
    user, pagero_mock, pagero_token_factory, stored_token_state, settings, caplog, receive
):
    caplog.set_level(logging.DEBUG)
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    real_secret = settings.PAGERO_OAUTH["CLIENT_SECRET"]
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_SECRET": "wrong-secret-value"}

    with receive(token_refresh_failed) as failed, pytest.raises(PageroConfigurationError):
        get_valid_token(user)

    assert refresh_calls(pagero_mock) == 1
    assert stored_token_state(stored) == before
    assert [call["reason"] for call in failed] == ["configuration"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "invalid_client" in errors[0].getMessage()
    assert_no_secret_logged(
        caplog, [stored.access_token, stored.refresh_token, real_secret, "wrong-secret-value"]
    )


def test_invalid_grant_marks_the_token_dead_and_changes_nothing_else(
    user, pagero_mock, pagero_token_factory, stored_token_state, caplog, receive
):
    caplog.set_level(logging.DEBUG)
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    # Somebody else (an uncoordinated client) spent the single-use refresh token.
    oauth.refresh_access_token(stored.refresh_token)

    with (
        receive(token_refresh_failed) as failed,
        pytest.raises(PageroAuthorizationRequired) as caught,
    ):
        get_valid_token(user)

    assert refresh_calls(pagero_mock) == 2
    assert pagero_mock.mock.counts["refresh_token_failed"] == 1
    after = stored_token_state(stored)
    assert after["status"] == PageroToken.Status.REAUTHORIZATION_REQUIRED
    assert after["status_reason"] == "invalid_grant"
    changed = {"status", "status_reason", "updated"}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    assert caught.value.status_code == 400
    assert [call["reason"] for call in failed] == ["reauthorization_required"]
    assert_no_secret_logged(caplog, [stored.access_token, stored.refresh_token])

    # Dead stays dead, without asking Pagero again.
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    assert refresh_calls(pagero_mock) == 2


def test_invalid_grant_rereads_the_row_before_marking_it(
    user, pagero_mock, pagero_token_factory, monkeypatch
):
    """A writer that bypassed the lease rotated the token: its result is used, not marked dead."""
    stored = pagero_token_factory(user, expired=True)
    # Somebody else spent the single-use refresh token: Pagero answers invalid_grant.
    oauth.refresh_access_token(stored.refresh_token)
    replacements: list[PageroToken] = []
    send = oauth.refresh_access_token

    def replaced_while_sent(refresh_token: str) -> Any:
        replacements.append(pagero_token_factory(user))  # e.g. a new login replaced the row
        return send(refresh_token)

    monkeypatch.setattr(oauth, "refresh_access_token", replaced_while_sent)

    survivor = get_valid_token(user)

    (replacement,) = replacements
    assert replacement.pk == stored.pk
    assert survivor.refresh_token == replacement.refresh_token
    assert PageroToken.objects.get(pk=stored.pk).status == PageroToken.Status.ACTIVE
    assert pagero_mock.mock.counts["refresh_token_failed"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_refresh_answered_invalid_grant_uses_the_token_a_new_login_stored_meanwhile(
    user, pagero_mock, pagero_token_factory, monkeypatch, receive
):
    """While Pagero answers ``invalid_grant``, a new login (which takes no lease) replaced the
    row: ``refresh()`` returns that login's token; nothing is marked dead, no failure sent."""
    from django.db import connection

    from .security.refresh_helpers import on_refresh_grant

    stored = pagero_token_factory(user, expired=True)

    def new_login_meanwhile(request):
        row = PageroToken.objects.get(pk=stored.pk)
        row.refresh_token, row.access_token = "rt-of-a-new-login", "at-of-a-new-login"
        row.access_token_expires_at = timezone.now() + timedelta(hours=1)
        row.save()
        connection.close()  # the mock's thread

    on_refresh_grant(pagero_mock, monkeypatch, new_login_meanwhile, answered=False)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=400, body='{"error": "invalid_grant"}'))

    with receive(token_refresh_failed) as failed:
        fresh = refresh(stored, force=True)

    assert (fresh.refresh_token, fresh.access_token) == ("rt-of-a-new-login", "at-of-a-new-login")
    assert fresh.pk == stored.pk and not fresh.needs_reauthorization
    row = PageroToken.objects.get(pk=stored.pk)
    assert (row.refresh_token, row.status) == ("rt-of-a-new-login", PageroToken.Status.ACTIVE)
    assert failed == []
    assert get_valid_token(user).access_token == "at-of-a-new-login"


@pytest.mark.django_db(transaction=True)
def test_a_refresh_answered_invalid_grant_after_a_disconnect_is_token_gone(
    user, pagero_mock, pagero_token_factory, monkeypatch, receive
):
    """The row was deleted (a disconnect) while Pagero answered ``invalid_grant``."""
    from django.db import connection

    from .security.refresh_helpers import on_refresh_grant

    stored = pagero_token_factory(user, expired=True)

    def disconnect_meanwhile(request):
        PageroToken.objects.filter(pk=stored.pk).delete()
        connection.close()  # the mock's thread

    on_refresh_grant(pagero_mock, monkeypatch, disconnect_meanwhile, answered=False)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=400, body='{"error": "invalid_grant"}'))

    with pytest.raises(TokenGone, match="The user has no Pagero connection any more"):
        refresh(stored, force=True)
    assert not PageroToken.objects.filter(user=user).exists()


def test_a_stored_refresh_answer_ends_the_lease_on_the_row(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, expired=True)
    fresh = get_valid_token(user)
    assert fresh.access_token != stored.access_token
    row = PageroToken.objects.get(pk=stored.pk)
    assert (row.refresh_lease_until, row.refresh_lease_owner) == (None, "")


# --- single-flight ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_get_valid_token_refreshes_once(
    user, pagero_mock, pagero_token_factory, run_in_threads
):
    stored = pagero_token_factory(user, expired=True)

    results = run_in_threads(lambda index: get_valid_token(user), n=16)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert errors == []
    mock = pagero_mock.mock
    assert mock.counts["refresh_token"] == 1
    assert mock.counts["refresh_token_failed"] == 0
    access_tokens = {token.access_token for token in results}
    assert len(access_tokens) == 1 and stored.access_token not in access_tokens
    row = PageroToken.objects.get(pk=stored.pk)
    assert row.access_token in access_tokens
    assert row.refresh_token == mock.issued_refresh_tokens[-1]
    assert mock.is_refresh_token_valid(row.refresh_token)


@pytest.mark.django_db(transaction=True)
def test_concurrent_forced_refreshes_of_one_stale_token_refresh_once(
    user, pagero_mock, pagero_token_factory, run_in_threads
):
    stored = pagero_token_factory(user)
    # Every thread holds its own copy of the same (say, rejected by the API) token.
    copies = [PageroToken.objects.get(pk=stored.pk) for _ in range(16)]

    results = run_in_threads(lambda index: refresh(copies[index], force=True), n=16)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert len({token.access_token for token in results}) == 1
    row = PageroToken.objects.get(pk=stored.pk)
    assert row.access_token == results[0].access_token != stored.access_token
    assert row.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]


@pytest.mark.django_db(transaction=True)
def test_concurrent_callers_during_an_outage_keep_the_token(
    user, pagero_mock, pagero_token_factory, run_in_threads, stored_token_state
):
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=503, times=100))

    results = run_in_threads(lambda index: get_valid_token(user), n=8)

    assert all(isinstance(result, PageroUnavailable) for result in results)
    # One caller tried; the others, waiting on the lock, saw the back-off and did not queue up.
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert stored_token_state(stored) == before
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)


@pytest.mark.django_db(transaction=True)
def test_without_backoff_callers_during_an_outage_try_one_at_a_time(
    user, pagero_mock, pagero_token_factory, run_in_threads, stored_token_state, settings
):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_FAILURE_BACKOFF": 0}
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=503, times=100))

    results = run_in_threads(lambda index: get_valid_token(user), n=8)

    assert all(isinstance(result, PageroUnavailable) for result in results)
    # Each caller tried once, one after the other (never two refreshes in flight).
    assert pagero_mock.mock.counts["refresh_token"] == 8
    assert stored_token_state(stored) == before


@pytest.mark.parametrize("status", [503, 401], ids=["unavailable", "invalid_client"])
def test_a_failed_refresh_inside_the_leeway_serves_the_still_valid_token(
    status, user, pagero_mock, pagero_token_factory, stored_token_state
):
    stored = pagero_token_factory(user)
    now = timezone.now()
    stored.access_token_issued_at = now - timedelta(seconds=570)
    stored.access_token_expires_at = now + timedelta(seconds=30)  # inside the 60 s leeway
    stored.save()
    before = stored_token_state(stored)
    # Rejected client credentials (not a PageroUnavailable) keep the token working too.
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=status))

    token = get_valid_token(user)

    assert token.access_token == stored.access_token
    assert refresh_calls(pagero_mock) == 1
    assert stored_token_state(stored) == before
    # While the back-off lasts, the still-valid token is served without another call.
    assert get_valid_token(user).access_token == stored.access_token
    assert refresh_calls(pagero_mock) == 1


def test_a_forced_refresh_ignores_the_backoff(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(**REFRESH, status=503))
    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    token = get_valid_token(user, force_refresh=True)
    assert refresh_calls(pagero_mock) == 2
    assert token.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1] != stored.refresh_token


# --- revocation -------------------------------------------------------------------------------


def test_revoke_tells_pagero_and_deletes(
    user, pagero_mock, pagero_token_factory, django_capture_on_commit_callbacks, receive
):
    stored = pagero_token_factory(user)
    with receive(token_revoked) as revoked, django_capture_on_commit_callbacks(execute=True):
        result = revoke(stored)
    assert result.remote is True
    assert pagero_mock.mock.counts["revoke"] == 1
    assert not pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
    assert not PageroToken.objects.filter(pk=stored.pk).exists()
    assert [(call["user"], call["remote"]) for call in revoked] == [(user, True)]


def test_revoke_without_revoke_url_deletes_locally(
    user, pagero_mock, pagero_token_factory, settings
):
    stored = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    result = revoke(stored)
    assert (result.remote, result.skipped_because) == (False, "no_revoke_url")
    assert pagero_mock.mock.counts["revoke"] == 0
    assert not PageroToken.objects.filter(pk=stored.pk).exists()


def test_a_failed_revocation_keeps_the_token(
    user, pagero_mock, pagero_token_factory, stored_token_state
):
    stored = pagero_token_factory(user)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    with pytest.raises(PageroUnavailable):
        revoke(stored)
    assert stored_token_state(stored) == before

    result = revoke(stored, local_only=True)
    assert (result.remote, result.skipped_because) == (False, "local_only")
    assert pagero_mock.mock.counts["revoke"] == 1
    assert not PageroToken.objects.filter(pk=stored.pk).exists()


def test_refresh_now_forces_one_refresh(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user)
    token = refresh_now(stored)
    assert token.access_token != stored.access_token
    assert refresh_calls(pagero_mock) == 1


def test_the_mock_rejects_a_reused_refresh_token(user, pagero_mock, pagero_token_factory):
    """Sanity check of the test double the guarantee is measured against."""
    stored = pagero_token_factory(user)
    oauth.refresh_access_token(stored.refresh_token)
    with pytest.raises(Exception) as caught:
        oauth.refresh_access_token(stored.refresh_token)
    assert getattr(caught.value, "error", None) == "invalid_grant"
    assert not isinstance(caught.value, requests.RequestException)
