"""Celery: keep Pagero connections alive from workers, and retry when Pagero is down (the
``celery`` extra; the layout, the schedule and the guarantees: :doc:`/background-jobs`).

The tasks are ``shared_task``\\ s that the project's app registers (``autodiscover_tasks()``
does not look in ``contrib``: list this module in ``app.conf.imports``). Messages carry primary
keys and the run's start time only, never a token; results are counts. A chunk re-applies the
selection, skips every token refreshed since its run fanned out and refreshes through the
single-flight path, so overlapping runs and a redelivered chunk refresh nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from celery.schedules import crontab
from django.utils import timezone

from ..conf import REFRESH_TOKEN_WARNING_DAYS, app_settings
from ..exceptions import PageroUnavailable

if TYPE_CHECKING:
    from ..models import PageroToken

# The models and the command (which imports them) are imported inside the tasks: a Celery app
# module (``proj/celery.py``, imported by ``proj/__init__.py``) imports this module before
# ``django.setup()``, when no model can be imported yet.

logger = logging.getLogger("django_pagero_oauth")

#: Tokens per chunk task: small enough to spread over the workers, large enough that the
#: messages and the per-chunk query do not dominate.
DEFAULT_CHUNK_SIZE = 50
#: Task names (a contract: beat schedules and ``send_task`` refer to them).
REFRESH_TOKENS_TASK = "django_pagero_oauth.refresh_tokens"
REFRESH_CHUNK_TASK = "django_pagero_oauth.refresh_token_chunk"


def _retry_countdown(exc: PageroUnavailable) -> int:
    return exc.retry_after or app_settings.UNAVAILABLE_RETRY_AFTER


@contextmanager
def retry_if_pagero_unavailable(task: Task, **retry_options: Any) -> Iterator[None]:
    """In a bound task, retry it later when Pagero is unavailable::

        @shared_task(bind=True, max_retries=5)
        def send_invoice(self, invoice_id):
            with retry_if_pagero_unavailable(self):
                get_client(invoice.owner).post("v1/invoices", json=...)

    The countdown is Pagero's ``Retry-After`` or ``UNAVAILABLE_RETRY_AFTER``. Rejected client
    credentials (:class:`~django_pagero_oauth.exceptions.PageroConfigurationError`) are not
    retried: nothing will work until a person fixes the settings. When the task has used up
    ``max_retries``, Celery raises the original exception.
    """
    try:
        yield
    except PageroUnavailable as exc:  # not PageroConfigurationError, which is not one
        raise task.retry(exc=exc, countdown=_retry_countdown(exc), **retry_options) from None


@shared_task(name=REFRESH_TOKENS_TASK, ignore_result=False)
def refresh_pagero_tokens(
    within_days: int | None = REFRESH_TOKEN_WARNING_DAYS, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> dict[str, int]:
    """Queue one :func:`refresh_pagero_token_chunk` per ``chunk_size`` selected tokens.

    ``within_days=None`` selects every active token (the command's ``--all``). Returns how many
    tokens and chunks were queued; the chunks report their own outcomes.
    """
    if within_days is not None and within_days < 0:
        raise ValueError("within_days must be 0 or more")
    if chunk_size < 1:
        raise ValueError("chunk_size must be 1 or more")
    from ..management.commands.pagero_refresh_tokens import tokens_to_refresh

    fanned_out = timezone.now().isoformat()
    pks = list(tokens_to_refresh(within_days).values_list("pk", flat=True))
    chunks = [pks[start : start + chunk_size] for start in range(0, len(pks), chunk_size)]
    for chunk in chunks:
        refresh_pagero_token_chunk.delay(chunk, within_days, fanned_out)
    return {"tokens": len(pks), "chunks": len(chunks)}


@shared_task(bind=True, name=REFRESH_CHUNK_TASK, acks_late=True, max_retries=3)
def refresh_pagero_token_chunk(
    self: Task,
    pks: list[Any],
    within_days: int | None = REFRESH_TOKEN_WARNING_DAYS,
    fanned_out: str | None = None,
) -> dict[str, int]:
    """Refresh the tokens of ``pks`` that are still selected; returns outcome counts.

    ``fanned_out`` (ISO 8601, from :func:`refresh_pagero_tokens`): tokens refreshed at or after
    it are skipped, so a second delivery of this message spends no refresh token twice. The
    tokens Pagero could not refresh right now are retried (only those) after its
    ``Retry-After``; rejected client credentials stop the chunk (nothing else would work).
    """
    from ..management.commands.pagero_refresh_tokens import refresh_token_by_pk, tokens_to_refresh

    selected = tokens_to_refresh(within_days).select_related("user")
    since = _parse_time(fanned_out)
    if since is not None:
        selected = selected.exclude(last_refreshed__gte=since)
    # One query; a token is decrypted only when refreshed (an undecryptable one is counted so).
    loaded: dict[Any, PageroToken] = selected.in_bulk(pks)
    outcomes: Counter[str] = Counter()
    unavailable: list[Any] = []
    failure: PageroUnavailable | None = None
    for pk in pks:
        token = loaded.get(pk)
        if token is None:
            outcomes["skipped"] += 1  # refreshed by another run, deleted, or deactivated
            continue
        outcome, _, exc = refresh_token_by_pk(pk, token)
        outcomes[outcome] += 1
        if outcome == "configuration":
            break
        if outcome == "unavailable":
            unavailable.append(pk)
            failure = exc if isinstance(exc, PageroUnavailable) else failure
    logger.info("Pagero keep-alive chunk of %d tokens: %s", len(pks), dict(outcomes))
    if unavailable and failure is not None and self.request.retries < (self.max_retries or 0):
        # The retry carries only the tokens that failed; this run's other outcomes are logged.
        raise self.retry(
            args=(unavailable, within_days, fanned_out), countdown=_retry_countdown(failure)
        )
    return dict(outcomes)


def _parse_time(value: str | None) -> datetime | None:
    """The fan-out time of a message; ``None`` when it has none (nothing is skipped)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)  # as timezone.now() wrote it (aware with USE_TZ)
    except (TypeError, ValueError):
        logger.warning("Pagero keep-alive chunk: ignoring a fan-out time that is not ISO 8601")
        return None


def keep_alive_schedule(**crontab_fields: Any) -> dict[str, Any]:
    """A ``beat_schedule`` entry that runs :func:`refresh_pagero_tokens` daily (03:17 UTC by
    default; ``crontab_fields`` as for :class:`celery.schedules.crontab`)::

        app.conf.beat_schedule = {"pagero-keep-alive": keep_alive_schedule()}
    """
    fields = {"hour": "3", "minute": "17", **crontab_fields}
    return {"task": REFRESH_TOKENS_TASK, "schedule": crontab(**fields)}


__all__ = [
    "keep_alive_schedule",
    "refresh_pagero_token_chunk",
    "refresh_pagero_tokens",
    "retry_if_pagero_unavailable",
]
