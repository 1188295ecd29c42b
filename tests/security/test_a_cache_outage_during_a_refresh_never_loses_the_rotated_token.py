"""What this proves broken: a failure of Django's default cache (where the refresh back-off
lives) while Pagero answers a refresh loses the rotated refresh token. ``tokens._refresh_with_lease``
ends the back-off (``lease.end_backoff``: a cache ``delete``) in the ``else`` clause of its
``try``, BEFORE ``store.store_answer``; an exception there is caught by nothing: the answer, the only
copy of the new refresh token, is dropped, the lease is left to run out, and the stored refresh
token is dead at Pagero. A Redis restart, failover or network blip during a refresh (a second
or more) is enough; the refresh itself needs nothing from the cache once Pagero has answered.

Real sockets: the default cache is Django's ``RedisCache`` on a redis-server of the test's own;
the mock spends the refresh token and holds its answer while the test stops that server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

from . import refresh_helpers
from .refresh_helpers import DEADLINE

pytestmark = pytest.mark.django_db(transaction=True)


class PrivateRedis:
    """A redis-server of this test's own (no data kept), stopped by :meth:`stop`."""

    def __init__(self, binary: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(  # noqa: S603 (a fixed binary, fixed arguments)
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "notice",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # its log, until it is ready
            if "Ready to accept connections" in line:
                break
        else:
            self.stop()
            pytest.fail("redis-server did not start")
        self.process.stdout.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_cache(settings: Any, pagero_mock: Any) -> Iterator[PrivateRedis]:
    pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: CI must run this test", pytrace=False)
        pytest.skip("no redis-server")
    server = PrivateRedis(binary)
    original = settings.CACHES
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{server.port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    try:
        yield server
    finally:
        server.stop()
        caches["default"].close()
        settings.CACHES = original


class Caller(refresh_helpers.Caller):
    def close(self) -> None:
        super().close()
        caches["default"].close()


def test_a_cache_outage_during_a_refresh_never_loses_the_rotated_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, redis_cache: PrivateRedis
) -> None:
    token = pagero_token_factory(user, expired=True)
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="token", grant_type="refresh_token", hold=True, process=True))

    refresher = Caller(user)
    refresher.start()
    assert mock.wait_held(timeout=DEADLINE), "no refresh reached Pagero"
    redis_cache.stop()  # Redis goes away while Pagero answers
    mock.release_held()
    result = refresher.outcome()

    assert mock.counts["refresh_token"] == 1
    stored = PageroToken.objects.get(pk=token.pk)
    assert mock.is_refresh_token_valid(stored.refresh_token), (
        f"Pagero rotated; the new refresh token was dropped ({result!r})"
    )
