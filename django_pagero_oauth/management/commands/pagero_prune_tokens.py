"""``manage.py pagero_prune_tokens``: delete the connections that are dead for good.

A token is dead when Pagero rejected its refresh token (it needs re-authorization) or when its
refresh token's three-year lifetime ran out. Only a new login at Pagero helps such a user, and
that creates a new token, so the old row is only clutter. The encrypted columns are never read
(pruning works even when the keys that wrote them are gone). Each deletion re-checks the
condition in the ``DELETE`` itself, so a user who logs in again while the command runs keeps the
new connection. ``token_revoked`` is sent (``remote=False``) for every deleted token, with the
encrypted fields not loaded.

``--undecryptable`` also deletes the tokens that cannot be decrypted with the configured keys
(the key that wrote them is gone: their users must connect to Pagero again anyway). They are
found by the key id their values start with, and the few still in the old format by
decrypting them; the ``DELETE`` re-checks that the stored values are the ones found, so a user
who connects again meanwhile keeps the new connection.

Exit codes: 0 done (also when there was nothing to delete), 2 usage error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import reduce
from operator import or_
from typing import Any

from django.core.management.base import CommandParser
from django.db import router, transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ...crypto import Ciphertext
from ...models import PageroToken, PageroTokenQuerySet
from ...signals import token_revoked
from ._common import PageroCommand, Progress

BATCH_SIZE = 500


class Command(PageroCommand):
    help = gettext_lazy(
        "Delete Pagero tokens that need re-authorization or whose refresh token expired. "
        "Exit codes: 0 done, 2 usage error."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Only say what would be deleted."),
        )
        parser.add_argument(
            "--undecryptable",
            action="store_true",
            help=_(
                "Also delete the tokens that cannot be decrypted with the configured keys "
                "(their users must connect to Pagero again)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        verbose = options["verbosity"] >= 2
        dead = PageroToken.objects.needing_reauthorization()
        seen, deleted = self.prune(
            dead.count(), self.dead_batches(dead), dry_run=dry_run, verbose=verbose
        )
        if dry_run:
            message = ngettext(
                "Would delete %(count)d Pagero token that needs re-authorization or whose "
                "refresh token expired.",
                "Would delete %(count)d Pagero tokens that need re-authorization or whose "
                "refresh token expired.",
                seen,
            ) % {"count": seen}
        else:
            message = ngettext(
                "Deleted %(count)d Pagero token that needed re-authorization or whose refresh "
                "token expired.",
                "Deleted %(count)d Pagero tokens that needed re-authorization or whose refresh "
                "token expired.",
                deleted,
            ) % {"count": deleted}
            message += self.kept_note(seen, deleted)
        self.stdout.write(message, self.style.SUCCESS)
        if options["undecryptable"]:
            self.prune_undecryptable(dry_run=dry_run, verbose=verbose)

    def prune_undecryptable(self, *, dry_run: bool, verbose: bool) -> None:
        tokens = PageroToken.objects.all()
        by_key_id = tokens.undecryptable()
        # Disjoint from by_key_id: a legacy value has no key id.
        legacy = list(tokens.undecryptable_in_legacy_format())
        total = by_key_id.count() + len(legacy)

        def batches() -> Iterator[list[PageroToken]]:
            yield from self.dead_batches(by_key_id, with_ciphertexts=True)
            for start in range(0, len(legacy), BATCH_SIZE):
                yield legacy[start : start + BATCH_SIZE]

        seen, deleted = self.prune(
            total,
            batches(),
            dry_run=dry_run,
            verbose=verbose,
            still=self.still_undecryptable,
            why=_("cannot be decrypted with the configured keys"),
        )
        if dry_run:
            message = ngettext(
                "Would delete %(count)d Pagero token that cannot be decrypted with the "
                "configured keys.",
                "Would delete %(count)d Pagero tokens that cannot be decrypted with the "
                "configured keys.",
                seen,
            ) % {"count": seen}
        else:
            message = ngettext(
                "Deleted %(count)d Pagero token that could not be decrypted with the "
                "configured keys.",
                "Deleted %(count)d Pagero tokens that could not be decrypted with the "
                "configured keys.",
                deleted,
            ) % {"count": deleted}
            message += self.kept_note(seen, deleted)
        self.stdout.write(message, self.style.SUCCESS)

    @staticmethod
    def kept_note(seen: int, deleted: int) -> str:
        if deleted >= seen:
            return ""
        kept = seen - deleted
        return " " + ngettext(
            "%(count)d came back to life meanwhile and was kept.",
            "%(count)d came back to life meanwhile and were kept.",
            kept,
        ) % {"count": kept}

    @staticmethod
    def dead_batches(
        selection: PageroTokenQuerySet, *, with_ciphertexts: bool = False
    ) -> Iterator[list[PageroToken]]:
        """``selection`` in batches by pk, with the user; the encrypted columns only as stored
        (never decrypted), and only ``with_ciphertexts``."""
        last_pk: Any = None
        while True:
            query = selection.select_related("user").order_by("pk")
            query = query.defer("id_token") if with_ciphertexts else query.without_secrets()
            if last_pk is not None:
                query = query.filter(pk__gt=last_pk)
            batch = list(query[:BATCH_SIZE])
            if not batch:
                return
            last_pk = batch[-1].pk
            yield batch

    def prune(
        self,
        total: int,
        batches: Iterator[list[PageroToken]],
        *,
        dry_run: bool,
        verbose: bool,
        still: Callable[[PageroTokenQuerySet, list[PageroToken]], PageroTokenQuerySet]
        | None = None,
        why: str | None = None,
    ) -> tuple[int, int]:
        """Delete (or, ``dry_run``, list) the tokens of ``batches``; ``(seen, deleted)``."""
        progress = Progress(self.stdout, total, _("Pruning Pagero tokens:"))
        deleted = seen = 0
        for batch in batches:
            seen += len(batch)
            for token in batch if verbose else []:
                if dry_run:
                    line = _(
                        "Would delete the token of user #%(user)s (fingerprint %(fingerprint)s): "
                        "%(why)s"
                    )
                else:
                    line = _(
                        "Deleting the token of user #%(user)s (fingerprint %(fingerprint)s): "
                        "%(why)s"
                    )
                reason = why or (
                    _("needs re-authorization")
                    if token.status == PageroToken.Status.REAUTHORIZATION_REQUIRED
                    else _("refresh token expired")
                )
                self.stdout.write(
                    line
                    % {
                        "user": token.user_id,
                        "fingerprint": token.fingerprint or "-",
                        "why": reason,
                    }
                )
            if not dry_run:
                deleted += self.delete_batch(batch, still)
            progress.update(seen)
        progress.finish()
        return seen, deleted

    @staticmethod
    def still_dead(queryset: PageroTokenQuerySet, batch: list[PageroToken]) -> PageroTokenQuerySet:
        dead = queryset.needing_reauthorization()
        return dead.filter(pk__in=[token.pk for token in batch])

    @staticmethod
    def still_undecryptable(
        queryset: PageroTokenQuerySet, batch: list[PageroToken]
    ) -> PageroTokenQuerySet:
        """The rows of ``batch`` that still hold the values found undecryptable (the access
        token may be empty: a rotated answer whose access token was dropped)."""
        unchanged = [
            Q(
                pk=token.pk,
                access_token=token.__dict__.get("access_token") or "",
                refresh_token=token.__dict__["refresh_token"],
            )
            for token in batch
            if isinstance(token.__dict__.get("refresh_token"), Ciphertext)
        ]
        if not unchanged:
            return queryset.none()
        return queryset.filter(reduce(or_, unchanged))

    def delete_batch(
        self,
        batch: list[PageroToken],
        still: Callable[[PageroTokenQuerySet, list[PageroToken]], PageroTokenQuerySet]
        | None = None,
    ) -> int:
        """Delete the rows of ``batch`` that still qualify (default: still dead); signal each."""
        using = router.db_for_write(PageroToken)
        pks = [token.pk for token in batch]
        with transaction.atomic(using=using):
            (still or self.still_dead)(
                PageroToken.objects.using(using).all(), batch
            ).without_secrets().delete()
            kept = set(
                PageroToken.objects.using(using).filter(pk__in=pks).values_list("pk", flat=True)
            )
            gone = [token for token in batch if token.pk not in kept]
            for token in gone:
                transaction.on_commit(
                    lambda token=token: token_revoked.send(  # type: ignore[misc]
                        PageroToken, token=token, user=token.user, remote=False
                    ),
                    using=using,
                )
        return len(gone)
