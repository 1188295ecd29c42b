"""Disconnecting (item 16): Pagero confirms (RFC 7009 2.2: HTTP 200) -> the token is gone
locally and at Pagero; Pagero cannot confirm (503, an error, unreachable) -> the token is
kept and the user is told; removing the local copy alone is always possible.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.test import Client

from django_pagero_oauth import get_client
from django_pagero_oauth.exceptions import PageroAuthorizationRequired, PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import revoke

from .conftest import DISCONNECT_PATH, Browser, token_snapshot


@pytest.fixture
def capture(django_capture_on_commit_callbacks: Any) -> Any:
    """``capture(execute=...)``: the on-commit callbacks of the block (the tests run inside a
    transaction that never commits); ``execute=True`` runs them as a commit would."""
    return django_capture_on_commit_callbacks


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


# --- revoke on reconnect and on user delete (issue 9) -----------------------------------------

#: Revocation endpoints that cannot confirm: the login or delete must go through regardless.
BROKEN_REVOCATION = {
    "503": Fault(endpoint="revoke", status=503),
    "invalid_client": Fault(endpoint="revoke", status=401, body='{"error": "invalid_client"}'),
    "dropped": Fault(endpoint="revoke", drop=True),
    "refused": None,  # REVOKE_URL on a port nobody listens on
}


def _break_revocation(name: str, pagero_mock: Any, settings: Any, refused_url: str) -> None:
    fault = BROKEN_REVOCATION[name]
    if fault is None:
        settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": refused_url}
    else:
        pagero_mock.mock.add_fault(
            Fault(**{n: getattr(fault, n) for n in fault.__dataclass_fields__})
        )


def _log_text(caplog: Any) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)


def test_reconnect_revokes_the_previous_refresh_token_after_commit(
    browser: Browser, user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    old = pagero_token_factory(user)
    mock = pagero_mock.mock

    with capture(execute=False) as callbacks:
        assert browser.login().status_code == 302
    assert mock.counts["revoke"] == 0  # not before the new token is committed
    assert mock.is_refresh_token_valid(old.refresh_token)
    for callback in callbacks:  # the commit
        callback()

    assert mock.counts["revoke"] == 1
    assert not mock.is_refresh_token_valid(old.refresh_token)  # really dead at Pagero
    assert not mock.is_access_token_valid(old.access_token)
    new = PageroToken.objects.get(user=user)
    assert new.refresh_token != old.refresh_token
    assert mock.is_refresh_token_valid(new.refresh_token)  # the new login is untouched


@pytest.mark.parametrize("broken", list(BROKEN_REVOCATION))
def test_reconnect_succeeds_when_the_revocation_fails(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    refused_url: str,
    capture: Any,
    caplog: Any,
    broken: str,
) -> None:
    old = pagero_token_factory(user)
    _break_revocation(broken, pagero_mock, settings, refused_url)

    with caplog.at_level("INFO", logger="django_pagero_oauth"), capture(execute=True):
        response = browser.login(next_url="/plain/")

    assert (response.status_code, response["Location"]) == (302, "/plain/")
    new = PageroToken.objects.get(user=user)
    assert pagero_mock.mock.is_refresh_token_valid(new.refresh_token)
    assert f"Pagero revocation of token {old.fingerprint} (reconnect) failed" in _log_text(caplog)
    assert old.refresh_token not in _log_text(caplog)


def test_reconnect_without_revoke_url_revokes_nothing(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    capture: Any,
) -> None:
    old = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    with capture(execute=True):
        assert browser.login().status_code == 302
    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(old.refresh_token)  # documented: Pagero has none


def test_reconnect_after_invalid_grant_revokes_nothing(
    browser: Browser, user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    """A dead token (marked after invalid_grant) has nothing left to revoke."""
    old = pagero_token_factory(user)
    old.mark_reauthorization_required("invalid_grant")
    with capture(execute=True):
        assert browser.login().status_code == 302
    assert pagero_mock.mock.counts["revoke"] == 0


def test_a_rolled_back_reconnect_revokes_nothing(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    capture: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ATOMIC_REQUESTS and a callback that fails after storing: the old token is kept here,
    so it must stay valid at Pagero too."""
    from django.db import connection

    from django_pagero_oauth.signals import token_obtained

    def broken_receiver(**kwargs: Any) -> None:
        raise RuntimeError("a project's receiver fails")

    old = pagero_token_factory(user)
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    browser.client.raise_request_exception = False
    token_obtained.connect(broken_receiver)
    try:
        with capture(execute=True):
            assert browser.login().status_code == 500
    finally:
        token_obtained.disconnect(broken_receiver)
    assert PageroToken.objects.get(user=user).refresh_token == old.refresh_token
    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(old.refresh_token)


def test_a_server_revoking_the_whole_grant_ends_the_new_connection_on_reconnect(
    browser: Browser, user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    """Why ``REVOKE_REPLACED_TOKEN`` exists: RFC 7009 2.1 lets a server revoke every token of
    the grant when one refresh token is revoked, and then the reconnect's revocation of the
    replaced token kills the connection just made."""
    pagero_token_factory(user, publicid="acme-ab")
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="revoke", revoke_grant=True))

    with capture(execute=True):
        assert browser.login(publicid="acme-ab").status_code == 302

    assert mock.counts["revoke"] == 1
    new = PageroToken.objects.get(user=user)
    assert not mock.is_refresh_token_valid(new.refresh_token)
    with pytest.raises(PageroAuthorizationRequired):
        get_client(user).get("v1/me")  # 401, then invalid_grant: the user must log in again


def test_revoke_replaced_token_off_keeps_the_new_connection_and_the_old_token(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    capture: Any,
) -> None:
    old = pagero_token_factory(user, publicid="acme-ab")
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_REPLACED_TOKEN": False}
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="revoke", revoke_grant=True))

    with capture(execute=True):
        assert browser.login(publicid="acme-ab").status_code == 302

    assert mock.counts["revoke"] == 0
    new = PageroToken.objects.get(user=user)
    assert get_client(user).get("v1/me").status_code == 200
    assert mock.is_refresh_token_valid(new.refresh_token)
    # The price: the replaced refresh token stays valid at the server until used or expired.
    assert mock.is_refresh_token_valid(old.refresh_token)


def test_deleting_a_user_revokes_their_refresh_token_after_commit(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    token = pagero_token_factory(user)
    mock = pagero_mock.mock

    with capture(execute=False) as callbacks:
        user.delete()
    assert mock.counts["revoke"] == 0  # not before the delete is committed
    for callback in callbacks:
        callback()

    assert mock.counts["revoke"] == 1
    assert not mock.is_refresh_token_valid(token.refresh_token)
    assert not mock.is_access_token_valid(token.access_token)
    assert not PageroToken.objects.filter(pk=token.pk).exists()


def test_deleting_users_in_bulk_revokes_each_token(
    user: Any, other_user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    tokens = [pagero_token_factory(user), pagero_token_factory(other_user)]
    with capture(execute=True):
        get_user_model().objects.filter(pk__in=[user.pk, other_user.pk]).delete()
    assert pagero_mock.mock.counts["revoke"] == 2
    assert not any(pagero_mock.mock.is_refresh_token_valid(t.refresh_token) for t in tokens)


@pytest.mark.parametrize("broken", list(BROKEN_REVOCATION))
def test_a_failing_revocation_never_blocks_the_user_delete(
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    refused_url: str,
    capture: Any,
    caplog: Any,
    broken: str,
) -> None:
    token = pagero_token_factory(user)
    _break_revocation(broken, pagero_mock, settings, refused_url)

    with caplog.at_level("INFO", logger="django_pagero_oauth"), capture(execute=True):
        user.delete()

    assert not get_user_model().objects.filter(pk=user.pk).exists()
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert f"Pagero revocation of token {token.fingerprint} (user deleted) failed" in _log_text(
        caplog
    )
    assert token.refresh_token not in _log_text(caplog)


def test_a_rolled_back_user_delete_revokes_nothing(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    from django.db import transaction

    token = pagero_token_factory(user)

    class Undo(Exception):
        pass

    with capture(execute=True), pytest.raises(Undo), transaction.atomic():
        user.delete()
        raise Undo

    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert PageroToken.objects.filter(pk=token.pk).exists()


def test_a_user_whose_token_cannot_be_decrypted_can_still_be_deleted(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any, capture: Any
) -> None:
    token = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    }
    with capture(execute=True):
        user.delete()
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert pagero_mock.mock.counts["revoke"] == 0


def test_deleting_a_user_without_revoke_url_revokes_nothing(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any, capture: Any
) -> None:
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    with capture(execute=True):
        user.delete()
    assert pagero_mock.mock.counts["revoke"] == 0


def test_disconnect_then_delete_revokes_once(
    user_client: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any, capture: Any
) -> None:
    """Disconnecting revokes by itself; deleting the token there, or the user later, must not
    revoke a second time."""
    pagero_token_factory(user)
    with capture(execute=True):
        assert user_client.post(DISCONNECT_PATH, {"next": "/plain/"}).status_code == 302
    assert pagero_mock.mock.counts["revoke"] == 1
    with capture(execute=True):
        user.delete()
    assert pagero_mock.mock.counts["revoke"] == 1
