"""``manage.py pagero_refresh_tokens``: keep three-year Pagero connections alive.

Pagero's refresh tokens die three years after their last use (a rolling lifetime). A user who
does not come back within that time loses the connection, unless a scheduled job refreshes it:
this command forces one refresh of every token whose refresh token expires within
``--within-days`` (or of every active token, with ``--all``). Each refresh goes through
:func:`django_pagero_oauth.tokens.refresh_now`, the single-flight path, so a web request that
refreshes the same token at the same moment cannot make Pagero see a refresh token twice.

Exit codes: 0 all refreshed, 1 some failed (the summary and stderr say which and why), 2 a usage
or configuration error, including Pagero rejecting the client credentials (the run stops).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser
from django.db import connections, router
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ... import tokens
from ...exceptions import FailureReason, nearest_reason
from ...explain import Place, explain
from ...locking import has_row_locks
from ...models import REFRESH_TOKEN_WARNING_DAYS, PageroToken, PageroTokenQuerySet
from ._common import PageroCommand, Progress, SomeFailed, UsageError, preflight

MAX_CONCURRENCY = 64
#: Tokens a thread loads in one query.
MAX_BATCH = 10

logger = logging.getLogger("django_pagero_oauth")


#: What a refresh came to: "refreshed", "gone" (deleted, or its user deactivated, since the run
#: started: nothing to do) or the reason it failed for, one of FAILURE_LABELS.
Outcome = FailureReason | Literal["refreshed"]

#: How each kind of failure is counted in the summary ("Failed: Pagero unavailable (2)"); a
#: failure for another reason is counted as the nearest of these, else as "error".
FAILURE_LABELS: dict[FailureReason, Promise] = {
    "reauthorization_required": gettext_lazy("needs re-authorization"),
    "unavailable": gettext_lazy("Pagero unavailable"),
    "undecryptable": gettext_lazy("cannot be decrypted"),
    "error": gettext_lazy("unexpected error"),
    "configuration": gettext_lazy("client credentials rejected"),
}


def tokens_to_refresh(within_days: int | None) -> PageroTokenQuerySet:
    """The tokens a keep-alive run refreshes: active, of active users, soonest to expire first.

    Those whose refresh token expires within ``within_days`` days, or every active one with
    ``None``. Shared by this command and the Celery task
    (:mod:`django_pagero_oauth.contrib.celery`), which also re-applies it when it loads a
    chunk, so a token refreshed since the selection was made is not refreshed again.
    """
    if within_days is None:
        queryset = PageroToken.objects.active()
    else:
        queryset = PageroToken.objects.refresh_token_expiring_within(timedelta(days=within_days))
    if any(field.name == "is_active" for field in get_user_model()._meta.get_fields()):
        queryset = queryset.filter(user__is_active=True)
    return queryset.order_by("refresh_token_expires_at", "pk")


def refresh_token_by_pk(
    pk: Any, token: PageroToken | None = None
) -> tuple[Outcome, PageroToken | None, BaseException | None]:
    """One forced, single-flight refresh, classified; never raises.

    Returns the outcome, the token (``None`` if it could not be loaded) and the exception of a
    failure. ``token`` is the already loaded row of ``pk``, if any.
    """
    try:
        if token is None:
            token = PageroToken.objects.select_related("user").filter(pk=pk).first()
            if token is None:
                return "gone", None, None
        tokens.refresh_now(token)
    except Exception as exc:  # a database error, a bug: counted as "error"
        outcome = nearest_reason(exc, {*FAILURE_LABELS, "gone"})
        if outcome == "gone" or (
            outcome == "reauthorization_required" and token is not None and not token.user.is_active
        ):
            return "gone", token, None
        if outcome == "error":
            logger.exception("pagero_refresh_tokens: token #%s failed", pk)
        return outcome, token, exc
    return "refreshed", token, None


class Command(PageroCommand):
    help = gettext_lazy(
        "Refresh the Pagero tokens whose refresh token expires soon (or all), so that "
        "connections stay alive. Exit codes: 0 all refreshed, 1 some failed, 2 usage or "
        "configuration error."
    )
    # The configuration is validated by preflight(), which exits with 2 rather than 1.
    requires_system_checks: list[str] = []
    verbosity = 1
    #: Held around each refresh. Without row locks (SQLite) a real lock: the database has one
    #: write lock, so the threads' writes cannot overlap, and queued in SQLite's busy handler
    #: (which polls with growing sleeps) they would leave the released lock idle in between.
    serialized: AbstractContextManager[Any] = nullcontext()

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--within-days",
            type=int,
            default=REFRESH_TOKEN_WARNING_DAYS,
            metavar="N",
            help=_(
                "Refresh tokens whose refresh token expires within N days (default: %(default)s)."
            ),
        )
        which.add_argument(
            "--all",
            action="store_true",
            help=_("Refresh every token that can be refreshed."),
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=4,
            metavar="K",
            help=_("Refresh K tokens at a time, each in its own thread (default: %(default)s)."),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Only say how many tokens would be refreshed."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        within_days: int | None = None if options["all"] else options["within_days"]
        concurrency: int = options["concurrency"]
        if within_days is not None and within_days < 0:
            raise UsageError(_("--within-days must be 0 or more."))
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise UsageError(
                _("--concurrency must be from 1 to %(max)d.") % {"max": MAX_CONCURRENCY}
            )
        preflight(self)

        pks = list(tokens_to_refresh(within_days).values_list("pk", flat=True))
        dead = PageroToken.objects.needing_reauthorization().count()
        if options["dry_run"]:
            self.stdout.write(
                ngettext(
                    "Would refresh %(count)d Pagero token.",
                    "Would refresh %(count)d Pagero tokens.",
                    len(pks),
                )
                % {"count": len(pks)}
                + self._dead_note(dead)
            )
            return
        started = time.monotonic()
        outcomes = self.refresh_all(pks, concurrency)
        elapsed = time.monotonic() - started
        self.report(outcomes, len(pks), elapsed, dead)

    def refresh_all(self, pks: list[Any], concurrency: int) -> Counter[Outcome]:
        """Refresh ``pks`` in ``concurrency`` threads, which take small batches of primary keys
        and load each batch in one query; stops early on invalid_client."""
        pending: Iterator[Any] = iter(pks)
        if not has_row_locks(router.db_for_write(PageroToken)):
            self.serialized = threading.Lock()
        batch_size = max(1, min(MAX_BATCH, len(pks) // (concurrency * 4)))
        lock = threading.Lock()
        stop = threading.Event()
        outcomes: Counter[Outcome] = Counter()
        progress = Progress(self.stdout, len(pks), _("Refreshing Pagero tokens:"))

        def next_batch() -> list[Any]:
            with lock:
                return [] if stop.is_set() else list(itertools.islice(pending, batch_size))

        def worker() -> None:
            try:
                while batch := next_batch():
                    # One query per batch; the tokens are decrypted only when refreshed.
                    loaded = PageroToken.objects.select_related("user").in_bulk(batch)
                    for pk in batch:
                        token = loaded.get(pk)
                        outcome = "gone" if token is None else self.refresh_one(pk, token)
                        if outcome == "configuration":
                            stop.set()  # every other token would fail the same way
                        with lock:
                            outcomes[outcome] += 1
                            done, failed = (
                                outcomes.total(),
                                sum(outcomes[f] for f in FAILURE_LABELS),
                            )
                        progress.update(done, failed=failed)
                        if stop.is_set():
                            break
            finally:
                connections.close_all()  # this thread's connections only

        threads = [
            threading.Thread(target=worker, name=f"pagero-refresh-{index}", daemon=True)
            for index in range(min(concurrency, len(pks)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        progress.finish()
        return outcomes

    def refresh_one(self, pk: Any, token: PageroToken | None = None) -> Outcome:
        """One forced, single-flight refresh; never raises. A failure gets a line on stderr."""
        with self.serialized:
            outcome, token, exc = refresh_token_by_pk(pk, token)
        if exc is not None and self.verbosity >= 1:
            if token is not None:
                who = _("token of user #%(user)s (fingerprint %(fingerprint)s)") % {
                    "user": token.user_id,
                    "fingerprint": token.fingerprint or "-",
                }
            else:
                who = _("token #%(pk)s") % {"pk": pk}
            self.stderr.write(f"{who}: {explain(Place.COMMAND_REFRESH, exc)}")
        return outcome

    def _dead_note(self, dead: int) -> str:
        if not dead:
            return ""
        return " " + ngettext(
            "%(count)d token needs re-authorization or has expired and was not tried "
            "(pagero_prune_tokens deletes it).",
            "%(count)d tokens need re-authorization or have expired and were not tried "
            "(pagero_prune_tokens deletes them).",
            dead,
        ) % {"count": dead}

    def report(self, outcomes: Counter[Outcome], total: int, elapsed: float, dead: int) -> None:
        refreshed = outcomes["refreshed"]
        rate = outcomes.total() / elapsed if elapsed > 0 else 0.0
        failures = {outcome: outcomes[outcome] for outcome in FAILURE_LABELS if outcomes[outcome]}
        summary = ngettext(
            "Refreshed %(refreshed)d of %(total)d Pagero token in %(seconds).1f s "
            "(%(rate).0f tokens/s).",
            "Refreshed %(refreshed)d of %(total)d Pagero tokens in %(seconds).1f s "
            "(%(rate).0f tokens/s).",
            total,
        ) % {"refreshed": refreshed, "total": total, "seconds": elapsed, "rate": rate}
        if failures:
            summary += " " + _("Failed: %(failures)s.") % {
                "failures": ", ".join(
                    _("%(reason)s (%(count)d)") % {"reason": FAILURE_LABELS[o], "count": count}
                    for o, count in failures.items()
                )
            }
        if gone := outcomes["gone"]:
            summary += " " + ngettext(
                "%(count)d token skipped (deleted, or its user deactivated, during the run).",
                "%(count)d tokens skipped (deleted, or their users deactivated, during the run).",
                gone,
            ) % {"count": gone}
        summary += self._dead_note(dead)
        self.stdout.write(summary, self.style.ERROR if failures else self.style.SUCCESS)
        if "configuration" in failures:
            skipped = total - outcomes.total()
            raise UsageError(
                ngettext(
                    "Pagero rejected the client credentials; %(skipped)d token was not tried. "
                    "Check CLIENT_ID, CLIENT_SECRET and CLIENT_AUTH_METHOD "
                    "(manage.py pagero_check).",
                    "Pagero rejected the client credentials; %(skipped)d tokens were not tried. "
                    "Check CLIENT_ID, CLIENT_SECRET and CLIENT_AUTH_METHOD "
                    "(manage.py pagero_check).",
                    skipped,
                )
                % {"skipped": skipped}
            )
        if failures:
            raise SomeFailed(
                ngettext(
                    "%(failed)d of %(total)d Pagero token could not be refreshed.",
                    "%(failed)d of %(total)d Pagero tokens could not be refreshed.",
                    total,
                )
                % {"failed": sum(failures.values()), "total": total}
            )
