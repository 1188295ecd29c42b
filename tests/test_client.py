"""``get_client(user)``: calling the (mock) Pagero API as a user, over a real socket."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from django.utils import timezone

from django_pagero_oauth import get_client
from django_pagero_oauth.client import BearerAuth, PageroSession
from django_pagero_oauth.exceptions import PageroAuthorizationRequired, PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import revoke_token
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token, refresh_now


def counts(pagero_mock: Any) -> tuple[int, int]:
    """(API calls, refresh calls) the mock has seen."""
    return pagero_mock.mock.counts["api"], pagero_mock.mock.counts["refresh_token"]


def test_relative_urls_and_the_bearer_token_reach_the_api(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, publicid="acme")
    session = get_client(user)
    assert isinstance(session, PageroSession)

    response = session.get("v1/me")

    assert response.status_code == 200
    assert response.json()["publicid"] == "acme"  # the mock accepted this user's access token
    assert response.url == f"{pagero_mock.url}/api/v1/me"
    assert response.request.headers["Authorization"] == f"Bearer {stored.access_token}"
    assert session.get("/v1/documents").json()["documents"][0]["id"] == "acme-1"
    assert counts(pagero_mock) == (2, 0)
    assert "Authorization" not in session.headers  # per request, never stored on the session
    assert stored.access_token not in repr(session)


def test_absolute_urls_must_stay_under_the_api_base_url(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    session = get_client(user)
    assert session.get(f"{pagero_mock.url}/api/v1/me").status_code == 200
    for url in (f"{pagero_mock.url}/oauth/v2/oauth-token", "https://evil.example/api/v1/me"):
        with pytest.raises(ValueError, match="only to URLs under API_BASE_URL"):
            session.get(url)
    assert counts(pagero_mock) == (1, 0)


def test_an_expiring_token_is_refreshed_before_sending(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, expired=True)
    response = get_client(user).get("v1/me")
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert response.status_code == 200
    assert response.request.headers["Authorization"] == f"Bearer {fresh.access_token}"
    assert fresh.access_token != stored.access_token
    assert counts(pagero_mock) == (1, 1)  # no 401 round trip


def test_a_revoked_access_token_is_refreshed_once_and_the_request_retried(
    user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user)
    revoke_token(stored.access_token, token_type_hint="access_token")  # Pagero forgot it

    response = get_client(user).get("v1/me")

    assert response.status_code == 200
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert response.request.headers["Authorization"] == f"Bearer {fresh.access_token}"
    assert fresh.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]
    assert counts(pagero_mock) == (2, 1)


def test_a_401_after_someone_else_refreshed_uses_their_token(
    user, pagero_mock, pagero_token_factory
):
    """The forced refresh after a 401 is single-flight: a token rotated meanwhile is reused."""
    stored = pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    rotated: list[PageroToken] = []

    def another_worker_refreshes(response: requests.Response, **kwargs: Any) -> None:
        if response.status_code == 401 and not rotated:  # between the 401 and the retry
            rotated.append(refresh_now(PageroToken.objects.get(pk=stored.pk)))

    response = get_client(user).get("v1/me", hooks={"response": another_worker_refreshes})

    assert response.status_code == 200
    assert response.request.headers["Authorization"] == f"Bearer {rotated[0].access_token}"
    assert counts(pagero_mock) == (2, 1)  # the other worker's refresh only


def test_a_second_401_is_returned_without_a_loop(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401, times=2))

    response = get_client(user).get("v1/me")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert counts(pagero_mock) == (2, 1)


def test_a_token_from_a_forced_refresh_is_never_force_refreshed_again(
    user, pagero_mock, pagero_token_factory
):
    """Issue 9, part 6: an API that keeps answering 401 (it refuses this user something)
    used to cost one single-use refresh token per call. One forced refresh per access token:
    the token that came out of it is not forced again, its 401 goes back as it is."""
    stored = pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401, times=100))
    session = get_client(user)

    statuses = [session.get("v1/me").status_code for _ in range(10)]

    assert statuses == [401] * 10
    assert counts(pagero_mock) == (11, 1)  # the first call's retry, then one request per call
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert fresh.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]
    assert session.get("v1/me").request.headers["Authorization"] == f"Bearer {fresh.access_token}"


def test_other_sessions_do_not_force_that_token_either(user, pagero_mock, pagero_token_factory):
    """Views and jobs make a session each: the rule holds across them (Django's cache)."""
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401, times=100))

    statuses = [get_client(user).get("v1/documents").status_code for _ in range(10)]

    assert statuses == [401] * 10
    assert counts(pagero_mock) == (11, 1)


def test_a_token_from_an_expiry_refresh_may_be_forced_once(user, pagero_mock, pagero_token_factory):
    """The rule is about tokens a forced refresh produced: a token from the ordinary expiry
    refresh that the API rejects still gets its one forced refresh."""
    stored = pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401, times=2))
    session = get_client(user)
    assert session.get("v1/me").status_code == 401  # forced once, the retry refused too
    PageroToken.objects.filter(pk=stored.pk).update(access_token_expires_at=timezone.now())
    session = get_client(user)  # reads the expired token: an ordinary refresh first

    response = session.get("v1/me")

    assert response.status_code == 200
    assert counts(pagero_mock) == (3, 2)
    revoke_token(PageroToken.objects.get(pk=stored.pk).access_token, token_type_hint="access_token")
    assert session.get("v1/me").status_code == 200  # its 401 forced one refresh
    assert counts(pagero_mock) == (5, 3)


def test_a_401_from_another_origin_after_a_redirect_forces_no_refresh(
    user, pagero_mock, pagero_token_factory
):
    """A followed redirect off the API loses the bearer header; that server's 401 says nothing
    about the token and must not use up a single-use refresh token. A 401 of the API itself
    still forces its one refresh."""
    token = pagero_token_factory(user)
    seen: list[tuple[int, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = self.server.server_address[1]
            seen.append((port, self.path, self.headers.get("Authorization", "")))
            if self.path == "/api/away":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{other_port}/api/x")
            else:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    api_port, other_port = (server.server_address[1] for server in servers)
    try:
        session = get_client(user, base_url=f"http://127.0.0.1:{api_port}/api/", token=token)
        assert session.get("away", allow_redirects=True).status_code == 401
        assert pagero_mock.mock.counts["refresh_token"] == 0
        assert seen[-1] == (other_port, "/api/x", "")  # the header did not follow

        assert session.get("reject").status_code == 401  # the API's own 401
        assert pagero_mock.mock.counts["refresh_token"] == 1
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_the_forced_refresh_policy_holds_no_token(user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user)
    revoke_token(stored.access_token, token_type_hint="access_token")
    session = get_client(user)
    assert session.get("v1/me").status_code == 200
    fresh = PageroToken.objects.get(pk=stored.pk)
    policy = session.rules.forced_refresh
    assert not policy.may_refresh(fresh)
    for secret in (stored.access_token, fresh.access_token):
        assert secret not in repr(policy)
        assert secret not in str(vars(policy))


def test_other_errors_are_returned_as_they_are(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=503))
    response = get_client(user).get("v1/me")
    assert response.status_code == 503
    with pytest.raises(requests.HTTPError) as caught:
        response.raise_for_status()
    assert caught.value.response.status_code == 503
    assert counts(pagero_mock) == (1, 0)


def test_a_refresh_failing_after_a_401_raises_with_the_status_and_keeps_the_token(
    user, pagero_mock, pagero_token_factory, stored_token_state
):
    stored = pagero_token_factory(user)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503, headers=[("Retry-After", "9")]))

    with pytest.raises(PageroUnavailable) as caught:
        get_client(user).get("v1/me")

    assert (caught.value.status_code, caught.value.retry_after) == (503, 9)
    assert stored_token_state(stored) == before
    assert counts(pagero_mock) == (1, 1)


def test_a_dead_refresh_token_after_a_401_raises_authorization_required(
    user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user)
    revoke_token(stored.refresh_token)  # revokes the whole grant at the mock (RFC 7009 2.1)

    with pytest.raises(PageroAuthorizationRequired) as caught:
        get_client(user).get("v1/me")

    assert caught.value.status_code == 400
    assert PageroToken.objects.get(pk=stored.pk).needs_reauthorization
    assert counts(pagero_mock) == (1, 1)


def test_no_token_means_no_api_call(user, pagero_mock):
    with pytest.raises(PageroAuthorizationRequired):
        get_client(user).get("v1/me")
    assert counts(pagero_mock) == (0, 0)


def test_the_configured_timeout_is_the_default(user, pagero_mock, pagero_token_factory, settings):
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 0.2}
    pagero_mock.mock.add_fault(Fault(endpoint="api", delay=5, times=2))
    session = get_client(user)
    with pytest.raises(requests.Timeout):
        session.get("v1/me")
    with pytest.raises(requests.Timeout):
        session.get("v1/me", timeout=None)  # None would wait forever: the default applies


def test_an_explicit_timeout_wins(user, pagero_mock, pagero_token_factory, settings):
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 60}
    pagero_mock.mock.add_fault(Fault(endpoint="api", delay=5))
    with pytest.raises(requests.Timeout):
        get_client(user).get("v1/me", timeout=0.2)


def test_no_token_or_secret_in_logs_or_exceptions(
    user, pagero_mock, pagero_token_factory, settings, caplog
):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests log every request at DEBUG
    stored = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    session = get_client(user)
    assert session.get("v1/me").status_code == 200  # refresh, 401, forced refresh, retry
    fresh = PageroToken.objects.get(pk=stored.pk)
    PageroToken.objects.filter(pk=stored.pk).update(access_token_expires_at=timezone.now())
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=500))
    with pytest.raises(PageroUnavailable) as caught:
        get_client(user).get("v1/me")

    secrets = [
        stored.access_token,
        stored.refresh_token,
        fresh.access_token,
        fresh.refresh_token,
        *pagero_mock.mock.issued_refresh_tokens,
        settings.PAGERO_OAUTH["CLIENT_SECRET"],
    ]
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in logged
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)


def test_the_client_in_a_view(user_client, user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user, publicid="acme")
    response = user_client.get("/api-data/")
    assert json.loads(response.content) == {
        "status": 200,
        "body": {"publicid": "acme", "name": "Demo Company AB", "client_id": "mock-client-id"},
    }


# --- outside requests, in threads ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_threads_outside_requests_share_one_refresh(
    user, pagero_mock, pagero_token_factory, run_in_threads
):
    """Background jobs: plain threads with a user object, no request anywhere."""
    stored = pagero_token_factory(user, expired=True)

    results = run_in_threads(lambda index: get_client(user).get("v1/documents").status_code, n=8)

    assert results == [200] * 8
    assert counts(pagero_mock) == (8, 1)
    assert (
        PageroToken.objects.get(pk=stored.pk).refresh_token
        == (pagero_mock.mock.issued_refresh_tokens[-1])
    )


@pytest.mark.django_db(transaction=True)
def test_threads_that_get_401_share_one_forced_refresh(
    user, pagero_mock, pagero_token_factory, run_in_threads
):
    stored = pagero_token_factory(user)
    revoke_token(stored.access_token, token_type_hint="access_token")  # the API now says 401
    sessions = [get_client(user) for _ in range(8)]

    results = run_in_threads(lambda index: sessions[index].get("v1/me"), n=8)

    assert [response.status_code for response in results] == [200] * 8
    api_calls, refresh_calls = counts(pagero_mock)
    assert refresh_calls == 1
    # At least one thread was rejected (that caused the refresh), at most all of them, once.
    assert 9 <= api_calls <= 16
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert {r.request.headers["Authorization"] for r in results} == {f"Bearer {fresh.access_token}"}


def test_a_session_given_the_views_token_reads_no_token_again(
    user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    pagero_token_factory(user)
    token = get_valid_token(user)
    session = get_client(user, token=token)
    with django_assert_num_queries(0):
        assert session.get("v1/me").status_code == 200
        assert session.get("v1/documents").status_code == 200
    assert pagero_mock.mock.counts["api"] == 2


def test_a_session_replaces_its_token_when_it_is_expiring(user, pagero_mock, pagero_token_factory):
    stale = pagero_token_factory(user, expired=True)
    session = get_client(user, token=stale)
    assert session.get("v1/me").status_code == 200
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert PageroToken.objects.get(user=user).access_token != stale.access_token


def test_a_session_refuses_another_users_token(user, other_user, pagero_mock, pagero_token_factory):
    with pytest.raises(ValueError, match="another user"):
        get_client(other_user, token=pagero_token_factory(user))


def test_the_bearer_header_is_set_on_the_prepared_request_only(
    user, pagero_mock, pagero_token_factory, monkeypatch
):
    """Not in a headers dict handed through requests (whose frames would hold it), but by an
    auth object applied to the prepared request; its repr shows no token."""
    stored = pagero_token_factory(user)
    handed: list[dict[str, Any]] = []
    original = requests.Session.request

    def spy(self: Any, method: str, url: str, **kwargs: Any) -> requests.Response:
        handed.append(kwargs)
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    response = get_client(user).get("v1/me", headers={"Authorization": "Bearer forged"})

    assert response.request.headers["Authorization"] == f"Bearer {stored.access_token}"
    assert len(handed) == 1
    assert all(
        stored.access_token not in str(value) for value in (handed[0].get("headers") or {}).values()
    )
    assert isinstance(handed[0]["auth"], BearerAuth)
    assert repr(handed[0]["auth"]) == "<BearerAuth>"
    assert stored.access_token not in str(vars(handed[0]["auth"]).keys())


def test_an_auth_argument_is_refused(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    with pytest.raises(TypeError, match="Authorization header itself"):
        get_client(user).get("v1/me", auth=("user", "password"))
    assert counts(pagero_mock) == (0, 0)


def test_a_lazy_token_holding_none_means_no_token(user, pagero_mock, pagero_token_factory):
    """``get_client(user, token=request.pagero_token)`` in a view the guard does not protect:
    the middleware's lazy object holds None for a user without a token; the session treats it
    as no token (raises PageroAuthorizationRequired when used), not as an AttributeError."""
    from django.utils.functional import SimpleLazyObject

    session = get_client(user, token=SimpleLazyObject(lambda: None))
    with pytest.raises(PageroAuthorizationRequired):
        session.get("v1/me")
    assert counts(pagero_mock) == (0, 0)

    # The user connects; a lazy None still means "fetch it".
    pagero_token_factory(user, publicid="acme")
    session = get_client(user, token=SimpleLazyObject(lambda: None))
    assert session.get("v1/me").json()["publicid"] == "acme"


def test_a_lazy_token_is_used_as_the_token_it_holds(user, pagero_mock, pagero_token_factory):
    from django.utils.functional import SimpleLazyObject

    stored = pagero_token_factory(user, publicid="acme")
    session = get_client(user, token=SimpleLazyObject(lambda: stored))
    response = session.get("v1/me")
    assert response.request.headers["Authorization"] == f"Bearer {stored.access_token}"
