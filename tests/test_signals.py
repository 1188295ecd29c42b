"""The signals (django_pagero_oauth.signals): each is sent when its docstring says, with its
documented arguments, and never when nothing happened."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from django_pagero_oauth import oauth
from django_pagero_oauth.exceptions import (
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroUnavailable,
)
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.signals import (
    token_obtained,
    token_refresh_failed,
    token_refreshed,
    token_revoked,
)
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token, revoke


def log_in_at_pagero(user_client: Any, *, action: str = "approve") -> Any:
    """The whole browser round trip: our login view, the mock's login form, our callback."""
    start = user_client.get("/pagero/login/?next=/plain/")
    authorize = urlsplit(start["Location"])
    answer = requests.post(
        f"{authorize.scheme}://{authorize.netloc}{authorize.path}",
        data={**dict(parse_qsl(authorize.query)), "action": action, "publicid": "acme"},
        allow_redirects=False,
        timeout=10,
    )
    back = urlsplit(answer.headers["Location"])
    return user_client.get(f"{back.path}?{back.query}")


# --- token_obtained -------------------------------------------------------------------------


def test_token_obtained_after_a_login(user_client, user, pagero_mock, receive):
    with receive(token_obtained) as obtained:
        response = log_in_at_pagero(user_client)

    assert (response.status_code, response["Location"]) == (302, "/plain/")
    token = PageroToken.objects.get(user=user)
    assert len(obtained) == 1
    call = obtained[0]
    assert call["sender"] is PageroToken
    assert call["token"].pk == token.pk
    assert call["token"].refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]
    assert call["user"] == user
    assert call["request"].path == "/pagero/callback/"


def test_no_token_obtained_when_the_user_denies(user_client, user, pagero_mock, receive):
    with receive(token_obtained) as obtained:
        response = log_in_at_pagero(user_client, action="deny")
    assert response.status_code == 400
    assert obtained == []
    assert not PageroToken.objects.filter(user=user).exists()


# --- token_refreshed ------------------------------------------------------------------------


def test_token_refreshed_is_sent_after_the_commit(
    user, pagero_mock, pagero_token_factory, django_capture_on_commit_callbacks, receive
):
    pagero_token_factory(user, expired=True)
    with receive(token_refreshed) as refreshed:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            token = get_valid_token(user)
            assert refreshed == []  # not while the row is locked and uncommitted
        assert len(callbacks) == 1
    assert len(refreshed) == 1
    assert refreshed[0]["sender"] is PageroToken
    assert refreshed[0]["token"].access_token == token.access_token
    assert refreshed[0]["user"] == user


@pytest.mark.django_db(transaction=True)
def test_token_refreshed_is_sent_once_for_concurrent_callers(
    user, pagero_mock, pagero_token_factory, run_in_threads, receive
):
    pagero_token_factory(user, expired=True)
    with receive(token_refreshed) as refreshed:
        run_in_threads(lambda index: get_valid_token(user), n=8)
    assert len(refreshed) == 1


def test_no_token_refreshed_for_a_valid_token_or_a_failure(
    user, pagero_mock, pagero_token_factory, django_capture_on_commit_callbacks, receive
):
    pagero_token_factory(user)
    with receive(token_refreshed) as refreshed:
        with django_capture_on_commit_callbacks(execute=True):
            get_valid_token(user)
        pagero_token_factory(user, expired=True)
        pagero_mock.mock.add_fault(Fault(endpoint="token", status=503))
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(PageroUnavailable):
            get_valid_token(user)
    assert refreshed == []


# --- token_refresh_failed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason", "error"),
    [
        (Fault(endpoint="token", status=503), "unavailable", PageroUnavailable),
        (Fault(endpoint="token", drop=True), "unavailable", PageroUnavailable),
        (Fault(endpoint="token", status=401), "configuration", PageroConfigurationError),
        (
            Fault(endpoint="token", status=400, body='{"error": "invalid_grant"}'),
            "reauthorization_required",
            PageroAuthorizationRequired,
        ),
    ],
    ids=["503", "drop", "invalid_client", "invalid_grant"],
)
def test_token_refresh_failed_carries_the_reason(
    fault, reason, error, user, pagero_mock, pagero_token_factory, receive
):
    stored = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(
        Fault(**{name: getattr(fault, name) for name in fault.__dataclass_fields__})
    )
    with receive(token_refresh_failed) as failed, pytest.raises(error) as caught:
        get_valid_token(user)
    assert len(failed) == 1
    call = failed[0]
    assert call["sender"] is PageroToken
    assert (call["token"].pk, call["user"], call["reason"]) == (stored.pk, user, reason)
    assert call["error"] is caught.value
    assert call["token"].needs_reauthorization is (reason == "reauthorization_required")


def test_no_token_refresh_failed_without_a_refresh_attempt(
    user, pagero_mock, pagero_token_factory, receive
):
    pagero_token_factory(user, expired=True, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    with receive(token_refresh_failed) as failed, pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    assert failed == []


# --- token_revoked ----------------------------------------------------------------------------


@pytest.mark.parametrize("local_only", [False, True])
def test_token_revoked_says_whether_pagero_was_told(
    local_only, user, pagero_mock, pagero_token_factory, django_capture_on_commit_callbacks, receive
):
    stored = pagero_token_factory(user)
    with receive(token_revoked) as revoked, django_capture_on_commit_callbacks(execute=True):
        revoke(stored, local_only=local_only)
    assert len(revoked) == 1
    assert revoked[0]["sender"] is PageroToken
    assert (revoked[0]["token"].pk, revoked[0]["user"]) == (stored.pk, user)
    assert revoked[0]["remote"] is not local_only
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token) is local_only


def test_no_token_revoked_when_pagero_refuses(
    user, pagero_mock, pagero_token_factory, django_capture_on_commit_callbacks, receive
):
    stored = pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    with (
        receive(token_revoked) as revoked,
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(PageroUnavailable),
    ):
        revoke(stored)
    assert revoked == []
    assert oauth.refresh_access_token(stored.refresh_token).refresh_token  # still usable
