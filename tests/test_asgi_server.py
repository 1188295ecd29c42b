"""The decorator, the mixin and the middleware on async views under a real ASGI server.

uvicorn serves ``get_asgi_application()`` of the test settings from a thread of this process,
on a socket the test binds first (so the port is known and connections queue in the kernel
until uvicorn accepts them; readiness is the first answer, not a sleep). It uses the test
database through its own connections: an SQLite file or the PostgreSQL test database, so the
data is committed (``transactional_db``). Requests go over real sockets with a real session
cookie; the strict mock Pagero server answers the refreshes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.test import Client

from django_pagero_oauth import oauth
from django_pagero_oauth.models import PageroToken

uvicorn = pytest.importorskip("uvicorn")

#: A bound for waits that only end early when the code is right; never reached when it is.
PATIENCE = 30.0


@dataclass
class AsgiSite:
    url: str

    def get(
        self,
        path: str,
        cookies: dict[str, str] | None = None,
        timeout: float = PATIENCE,
        **kwargs: Any,
    ) -> Any:
        url = f"{self.url}{path}"
        return requests.get(url, cookies=cookies, allow_redirects=False, timeout=timeout, **kwargs)


@pytest.fixture
def asgi_site(transactional_db: None) -> Iterator[AsgiSite]:
    from django.core.asgi import get_asgi_application

    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        get_asgi_application(), lifespan="off", log_level="warning", loop="asyncio", http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, daemon=True, name="uvicorn"
    )
    thread.start()
    site = AsgiSite(f"http://127.0.0.1:{port}")
    try:
        assert site.get("/plain/").status_code == 200  # ready: the socket answers
        yield site
    finally:
        server.should_exit = True
        thread.join(PATIENCE)
        listener.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def session_cookie(user: Any) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


PROTECTED_ASYNC = {
    "decorator": "/protected-async/",
    "mixin": "/protected-cbv-async/",
    "middleware": "/protected-by-middleware/async/",
}


@pytest.mark.parametrize("path", PROTECTED_ASYNC.values(), ids=PROTECTED_ASYNC.keys())
def test_an_expired_token_is_refreshed_for_an_async_view(
    path, asgi_site, session_cookie, user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user, expired=True)
    response = asgi_site.get(path, session_cookie)
    assert response.status_code == 200, response.text
    stored = PageroToken.objects.get(user=user)
    assert response.json() == {"ok": True, "fingerprint": stored.fingerprint}
    assert not stored.access_token_needs_refresh()
    assert pagero_mock.mock.counts["refresh_token"] == 1


@pytest.mark.parametrize("path", PROTECTED_ASYNC.values(), ids=PROTECTED_ASYNC.keys())
def test_without_a_connection_an_async_view_answers_for_a_login(
    path, asgi_site, session_cookie, user, pagero_mock
):
    page = asgi_site.get(path, session_cookie)
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/pagero/login/?next=")
    api = asgi_site.get(path, session_cookie, headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.json()["error"] == "pagero_authorization_required"


@pytest.mark.parametrize("path", PROTECTED_ASYNC.values(), ids=PROTECTED_ASYNC.keys())
def test_a_busy_pagero_is_a_503_with_retry_after(
    path, asgi_site, session_cookie, user, pagero_mock, pagero_token_factory
):
    from django_pagero_oauth.testing.mock import Fault

    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503, headers=[("Retry-After", "7")]))
    response = asgi_site.get(path, session_cookie, headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


@pytest.mark.parametrize("path", PROTECTED_ASYNC.values(), ids=PROTECTED_ASYNC.keys())
def test_concurrent_async_requests_refresh_once(
    path, asgi_site, session_cookie, user, pagero_mock, pagero_token_factory
):
    """Single-flight under the ASGI server: one refresh for a burst on an expired token."""
    pagero_token_factory(user, expired=True)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: asgi_site.get(path, session_cookie), range(8)))
    assert [response.status_code for response in responses] == [200] * 8
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert pagero_mock.mock.counts["refresh_token_failed"] == 0
    assert len({response.json()["fingerprint"] for response in responses}) == 1


@pytest.fixture
def held_refresh(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Refreshes reach Pagero only once ``release`` is set; ``started`` is set when one waits.

    The server runs in this process, so patching ``oauth`` here holds its refreshes.
    """
    started, release = threading.Event(), threading.Event()
    real = oauth.refresh_access_token

    def held(refresh_token: str) -> Any:
        started.set()
        release.wait(PATIENCE)
        return real(refresh_token)

    monkeypatch.setattr(oauth, "refresh_access_token", held)
    return started, release


@pytest.mark.parametrize("path", PROTECTED_ASYNC.values(), ids=PROTECTED_ASYNC.keys())
def test_an_unrelated_async_view_answers_while_a_refresh_waits_for_pagero(
    path, asgi_site, session_cookie, user, pagero_mock, pagero_token_factory, held_refresh
):
    started, release = held_refresh
    pagero_token_factory(user, expired=True)
    with ThreadPoolExecutor(1) as pool:
        protected = pool.submit(asgi_site.get, path, session_cookie)
        try:
            assert started.wait(PATIENCE)
            # The refresh is waiting for Pagero; another request's ORM call is answered now.
            unrelated = asgi_site.get("/user-count-async/", timeout=PATIENCE / 2)
            assert not release.is_set() and not protected.done()
        finally:
            release.set()
        assert protected.result().status_code == 200
    assert unrelated.status_code == 200
    assert unrelated.json() == {"users": 1}
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_an_async_view_calls_the_api_with_aget_client(
    asgi_site, session_cookie, user, pagero_mock, pagero_token_factory
):
    """The whole async chain under the server: decorator, refresh, ``aget_client``, a 401 from
    the API, its one forced refresh, and the retry."""
    from django_pagero_oauth.testing.mock import Fault

    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    response = asgi_site.get("/api-data-async/", session_cookie)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": 200,
        "body": {
            "publicid": "demo-company",
            "name": "Demo Company AB",
            "client_id": "mock-client-id",
        },
    }
    assert pagero_mock.mock.counts["refresh_token"] == 2  # the expiry's, and the 401's
    assert pagero_mock.mock.counts["api"] == 2
