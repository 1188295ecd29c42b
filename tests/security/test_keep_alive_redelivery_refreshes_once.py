"""What this proves: a keep-alive chunk delivered twice spends no refresh token twice, also for
an ``--all`` run (``within_days=None``), whose selection skips nothing.

``refresh_pagero_token_chunk`` is ``acks_late``: a chunk whose worker died after refreshing (or
a broker that redelivers after a visibility timeout) runs again. ``refresh_pagero_tokens``
puts its fan-out time into every chunk's message, and a chunk skips the tokens refreshed at or
after it. Each redundant refresh would be one more single-use refresh token exchanged for
nothing, and a lost answer to any of them kills that user's connection (PAGERO_OAUTH.md).

Found by a security review (low): 6 refreshes instead of 3 for a redelivered ``--all`` chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.signals import task_prerun
from django.contrib.auth import get_user_model

from django_pagero_oauth.contrib.celery import (
    REFRESH_CHUNK_TASK,
    refresh_pagero_token_chunk,
    refresh_pagero_tokens,
)
from django_pagero_oauth.models import PageroToken


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    app = Celery("pagero-redelivery-tests", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend="cache+memory://",
        task_always_eager=True,
        task_eager_propagates=False,
    )
    app.set_current()
    app.set_default()
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def three_tokens(user: Any, pagero_token_factory: Any) -> list[Any]:
    users = [user] + [get_user_model().objects.create_user(f"u{i}", password="pw") for i in (1, 2)]
    return [pagero_token_factory(each).pk for each in users]


def _stored(pks: list[Any]) -> dict[Any, str]:
    return {pk: PageroToken.objects.get(pk=pk).refresh_token for pk in pks}


@pytest.mark.parametrize("within_days", [None, 3 * 365 + 1])
def test_a_redelivered_chunk_does_not_refresh_its_tokens_again(
    celery_app: Celery, three_tokens: list[Any], pagero_mock: Any, within_days: int | None
) -> None:
    delivered: list[tuple[Any, ...]] = []

    def record(sender: Any = None, args: Any = None, **kwargs: Any) -> None:
        if sender is not None and sender.name == REFRESH_CHUNK_TASK:
            delivered.append(tuple(args))

    task_prerun.connect(record, weak=False)
    try:
        assert refresh_pagero_tokens.delay(within_days).get() == {"tokens": 3, "chunks": 1}
    finally:
        task_prerun.disconnect(record)
    assert pagero_mock.mock.counts["refresh_token"] == 3
    first = _stored(three_tokens)
    (message,) = delivered
    # The same message again (acks_late redelivery after the worker died).
    assert refresh_pagero_token_chunk.apply(args=message).get() == {"skipped": 3}
    assert pagero_mock.mock.counts["refresh_token"] == 3, "tokens were refreshed twice"
    assert _stored(three_tokens) == first


def test_a_message_without_a_fan_out_time_still_refreshes(
    celery_app: Celery, three_tokens: list[Any], pagero_mock: Any
) -> None:
    """A chunk queued by an older version (no fan-out time) works as before."""
    assert refresh_pagero_token_chunk.delay(three_tokens, None).get() == {"refreshed": 3}
