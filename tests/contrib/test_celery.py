"""``django_pagero_oauth.contrib.celery`` in eager mode (tasks run in this process).

The real-worker test (prefork, Redis, PostgreSQL) is ``test_celery_worker.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery, Task
from celery.schedules import crontab
from celery.signals import before_task_publish
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_pagero_oauth.contrib.celery import (
    REFRESH_CHUNK_TASK,
    REFRESH_TOKENS_TASK,
    keep_alive_schedule,
    refresh_pagero_token_chunk,
    refresh_pagero_tokens,
    retry_if_pagero_unavailable,
)
from django_pagero_oauth.exceptions import PageroConfigurationError, PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    """An app whose tasks run eagerly, set as the current app (``shared_task`` binds to it)."""
    app = Celery("pagero-tests", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend="cache+memory://",
        task_always_eager=True,
        # Not propagating lets eager apply() run a retry as a worker would (.get() still
        # raises a task's error).
        task_eager_propagates=False,
    )
    app.set_current()
    app.set_default()
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def tokens(user: Any, pagero_mock: Any, pagero_token_factory: Any) -> dict[str, PageroToken]:
    """Tokens of five users: three expire within 30 days (one of them an inactive user's)."""
    soon = timezone.now() + timedelta(days=5)
    users = [user] + [
        get_user_model().objects.create_user(f"user{index}", password="pw") for index in range(4)
    ]
    made = {
        "soon": pagero_token_factory(users[0], refresh_token_expires_at=soon),
        "soon too": pagero_token_factory(users[1], refresh_token_expires_at=soon),
        "later": pagero_token_factory(users[2]),
        "soon, inactive user": pagero_token_factory(users[3], refresh_token_expires_at=soon),
        "soon, third": pagero_token_factory(users[4], refresh_token_expires_at=soon),
    }
    users[3].is_active = False
    users[3].save()
    return made


def _refreshed(token: PageroToken) -> bool:
    return PageroToken.objects.get(pk=token.pk).refresh_token != token.refresh_token


def test_fan_out_refreshes_the_commands_selection_once(celery_app, tokens, pagero_mock):
    result = refresh_pagero_tokens.delay(chunk_size=2).get()
    assert result == {"tokens": 3, "chunks": 2}
    assert {name for name, token in tokens.items() if _refreshed(token)} == {
        "soon",
        "soon too",
        "soon, third",
    }
    assert pagero_mock.mock.counts["refresh_token"] == 3
    assert pagero_mock.mock.counts["refresh_token_failed"] == 0
    for token in PageroToken.objects.all():
        assert token.user.is_active is False or pagero_mock.mock.is_refresh_token_valid(
            token.refresh_token
        )


def test_all_refreshes_every_active_token(celery_app, tokens, pagero_mock):
    assert refresh_pagero_tokens.delay(within_days=None).get() == {"tokens": 4, "chunks": 1}
    assert pagero_mock.mock.counts["refresh_token"] == 4


def test_a_second_run_refreshes_nothing_again(celery_app, tokens, pagero_mock):
    refresh_pagero_tokens.delay().get()
    assert refresh_pagero_tokens.delay().get() == {"tokens": 0, "chunks": 0}
    assert pagero_mock.mock.counts["refresh_token"] == 3


def test_a_chunk_queued_before_another_run_refreshed_its_tokens_skips_them(
    celery_app, tokens, pagero_mock
):
    """Two overlapping runs queue the same tokens; the later chunk finds them refreshed."""
    stale = [tokens["soon"].pk, tokens["soon too"].pk]
    assert refresh_pagero_token_chunk.delay(stale).get() == {"refreshed": 2}
    assert refresh_pagero_token_chunk.delay(stale).get() == {"skipped": 2}
    assert pagero_mock.mock.counts["refresh_token"] == 2


def test_unavailable_tokens_are_retried_alone_and_none_is_lost(celery_app, tokens, pagero_mock):
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503, headers=[("Retry-After", "9")]))
    chunk = [tokens["soon"].pk, tokens["soon too"].pk, tokens["soon, third"].pk]
    # The chunk is retried with the one token that failed (eager mode: at once).
    assert refresh_pagero_token_chunk.delay(chunk).get() == {"refreshed": 1}
    assert pagero_mock.mock.counts["refresh_token"] == 4
    assert pagero_mock.mock.counts["refresh_token_failed"] == 1
    for name in ("soon", "soon too", "soon, third"):
        stored = PageroToken.objects.get(pk=tokens[name].pk)
        assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token), name
        assert not stored.needs_reauthorization


def test_rejected_client_credentials_stop_the_chunk(celery_app, tokens, pagero_mock, settings):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_SECRET": "wrong"}
    chunk = [tokens["soon"].pk, tokens["soon too"].pk]
    assert refresh_pagero_token_chunk.delay(chunk).get() == {"configuration": 1}
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert not _refreshed(tokens["soon"])


def test_messages_carry_primary_keys_only(tokens, pagero_mock):
    """What goes to the broker (and to a result backend, or a monitoring tool) is no secret."""
    app = Celery("pagero-publish-test", set_as_current=False)
    app.conf.update(broker_url="memory://", task_always_eager=False)
    app.set_current()
    published: list[Any] = []

    def record(sender: Any = None, body: Any = None, **kwargs: Any) -> None:
        published.append((sender, body))

    before_task_publish.connect(record, weak=False)
    try:
        result = refresh_pagero_tokens.apply(kwargs={"chunk_size": 2}).get()
    finally:
        before_task_publish.disconnect(record)
        app.close()
    assert result == {"tokens": 3, "chunks": 2}
    assert [sender for sender, _ in published] == [REFRESH_CHUNK_TASK] * 2
    sent_pks = [pk for _, (args, kwargs, _) in published for pk in args[0]]
    assert sorted(sent_pks) == sorted(
        tokens[name].pk for name in ("soon", "soon too", "soon, third")
    )
    text = repr(published)
    for token in tokens.values():
        for secret in (token.access_token, token.refresh_token):
            assert secret not in text
    assert pagero_mock.mock.counts["refresh_token"] == 0  # nothing ran: only queued


# --- retry_if_pagero_unavailable ----------------------------------------------------------


class RecordingTask(Task):
    """Records the options of each ``retry`` (eager mode runs retries without waiting)."""

    abstract = True
    retries_asked: list[dict[str, Any]] = []

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        RecordingTask.retries_asked.append(kwargs)
        return super().retry(*args, **kwargs)


@pytest.fixture
def flaky_task(celery_app: Celery, request: Any) -> Any:
    """A bound task that fails with ``failures`` (popped one by one), then returns "sent"."""
    RecordingTask.retries_asked = []
    failures: list[BaseException] = []

    sent: list[int] = []

    @celery_app.task(
        bind=True, base=RecordingTask, max_retries=2, name=f"tests.{request.node.name}"
    )
    def flaky(self: Task) -> str:
        with retry_if_pagero_unavailable(self):
            if failures:
                raise failures.pop(0)
        sent.append(self.request.retries)
        return "sent"

    flaky.failures = failures  # type: ignore[attr-defined]
    flaky.sent = sent  # type: ignore[attr-defined]
    return flaky


def test_retry_uses_pageros_retry_after(flaky_task, settings):
    flaky_task.failures.append(PageroUnavailable("down", status_code=503, retry_after=42))
    flaky_task.delay()
    assert flaky_task.sent == [1]  # sent on the first retry
    assert [asked["countdown"] for asked in RecordingTask.retries_asked] == [42]


def test_retry_falls_back_to_unavailable_retry_after(flaky_task, settings):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "UNAVAILABLE_RETRY_AFTER": 11}
    flaky_task.failures.append(PageroUnavailable("timeout"))
    flaky_task.delay()
    assert flaky_task.sent == [1]
    assert [asked["countdown"] for asked in RecordingTask.retries_asked] == [11]


def test_rejected_credentials_are_not_retried(flaky_task):
    flaky_task.failures.append(PageroConfigurationError("invalid client"))
    with pytest.raises(PageroConfigurationError):
        flaky_task.delay().get()
    assert RecordingTask.retries_asked == []


def test_after_max_retries_the_error_is_raised(flaky_task):
    flaky_task.failures.extend(PageroUnavailable("down", retry_after=1) for _ in range(3))
    with pytest.raises(PageroUnavailable):
        flaky_task.delay().get()
    assert len(RecordingTask.retries_asked) == 3


def test_keep_alive_schedule(celery_app):
    entry = keep_alive_schedule()
    assert entry["task"] == REFRESH_TOKENS_TASK
    assert entry["schedule"] == crontab(hour="3", minute="17")
    assert keep_alive_schedule(hour="4")["schedule"] == crontab(hour="4", minute="17")
    assert {REFRESH_TOKENS_TASK, REFRESH_CHUNK_TASK} <= set(celery_app.tasks)
