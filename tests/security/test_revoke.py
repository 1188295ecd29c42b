"""Disconnecting (item 16): Pagero confirms (RFC 7009 2.2: HTTP 200) -> the token is gone
locally and at Pagero; Pagero cannot confirm (503, an error, unreachable) -> the token is
kept and the user is told; removing the local copy alone is always possible.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import revoke

from .conftest import DISCONNECT_PATH, token_snapshot


def test_confirmed_revocation_removes_the_token_everywhere(
    user_client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    response = user_client.post(DISCONNECT_PATH, {"next": "/plain/"})
    assert response.status_code == 302 and response["Location"] == "/plain/"
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    mock = pagero_mock.mock
    assert mock.counts["revoke"] == 1
    assert not mock.is_refresh_token_valid(token.refresh_token)
    assert not mock.is_access_token_valid(token.access_token)  # RFC 7009 2.1


def test_revoke_function_reports_remote_success(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    assert revoke(token).remote is True
    assert not PageroToken.objects.exists()


FAILURES = {
    "503": Fault(endpoint="revoke", status=503),
    "503 HTML": Fault(
        endpoint="revoke", status=503, body="<html>down</html>", content_type="text/html"
    ),
    "500": Fault(endpoint="revoke", status=500),
    "429": Fault(endpoint="revoke", status=429, headers=[("Retry-After", "10")]),
    "dropped": Fault(endpoint="revoke", drop=True),
    "invalid_request": Fault(endpoint="revoke", status=400, body='{"error": "invalid_request"}'),
    "unsupported_token_type": Fault(
        endpoint="revoke", status=400, body='{"error": "unsupported_token_type"}'
    ),
    "invalid_client": Fault(endpoint="revoke", status=401, body='{"error": "invalid_client"}'),
}


@pytest.mark.parametrize("fault", list(FAILURES.values()), ids=list(FAILURES))
def test_unconfirmed_revocation_keeps_the_token_and_says_so(
    user_client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any, fault: Fault
) -> None:
    token = pagero_token_factory(user)
    before = token_snapshot(token.pk)
    pagero_mock.mock.add_fault(fault)

    response = user_client.post(DISCONNECT_PATH, {"next": "/plain/"})

    assert response.status_code == 503
    content = response.content.decode()
    assert 'role="alert"' in content  # reported
    assert 'name="local_only" value="1"' in content  # and the way out is offered
    assert token_snapshot(token.pk) == before
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)


def test_unreachable_revocation_endpoint_keeps_the_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any, refused_url: str
) -> None:
    token = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": refused_url}
    with pytest.raises(PageroUnavailable):
        revoke(token)
    assert PageroToken.objects.filter(pk=token.pk).exists()


@pytest.mark.parametrize("fault", list(FAILURES.values()), ids=list(FAILURES))
def test_local_removal_after_a_failed_revocation(
    user_client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any, fault: Fault
) -> None:
    token = pagero_token_factory(user)
    pagero_mock.mock.add_fault(fault)
    assert user_client.post(DISCONNECT_PATH, {"next": "/plain/"}).status_code == 503
    calls = pagero_mock.mock.counts["revoke"]

    response = user_client.post(DISCONNECT_PATH, {"next": "/plain/", "local_only": "1"})

    assert response.status_code == 302
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.counts["revoke"] == calls  # Pagero was not asked again


def test_local_removal_without_a_revocation_endpoint(
    user_client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    response = user_client.post(DISCONNECT_PATH, {"next": "/plain/"})
    assert response.status_code == 302
    assert not PageroToken.objects.exists()
    assert pagero_mock.mock.counts["revoke"] == 0


def test_local_removal_works_when_the_token_cannot_be_decrypted(
    user_client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    """The encryption key was lost: the stored token is useless, and the user must still be
    able to remove it (and connect again)."""
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    }
    response = user_client.post(DISCONNECT_PATH, {"next": "/plain/", "local_only": "1"})
    assert response.status_code == 302
    assert PageroToken.objects.filter(user=user).count() == 0


def test_disconnect_needs_a_post_with_csrf(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """Another site cannot disconnect the user: GET only asks, a POST needs the CSRF token."""
    token = pagero_token_factory(user)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get(DISCONNECT_PATH).status_code == 200
    assert browser.post(DISCONNECT_PATH, {"local_only": "1"}).status_code == 403
    assert PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.counts["revoke"] == 0


def test_disconnect_requires_login(
    client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    response = client.post(DISCONNECT_PATH, {"local_only": "1"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert PageroToken.objects.filter(pk=token.pk).exists()
