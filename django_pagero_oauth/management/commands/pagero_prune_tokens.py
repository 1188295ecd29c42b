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
found by the key id their values start with; the ``DELETE`` re-checks that the stored values
are the ones found, so a user who connects again meanwhile keeps the new connection.

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
from django.utils.translation import gettext_lazy, ngettext, ngettext_lazy

from ...crypto import Ciphertext
from ...models import PageroToken, PageroTokenQuerySet
from ...signals import token_revoked
from ._common import PageroCommand, Progress

BATCH_SIZE = 500

#: Which rows of a batch may still be deleted, re-checked inside the ``DELETE``.
Still = Callable[[PageroTokenQuerySet, list[PageroToken]], PageroTokenQuerySet]


class Command(PageroCommand):
    help = gettext_lazy(
        "Delete Pagero tokens that need re-authorization or whose refresh token expired. "
        "Exit codes: 0 done, 2 usage error."
    )
    requires_system_checks: list[str] = []
    dry_run = verbose = False

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
        self.dry_run = options["dry_run"]
        self.verbose = options["verbosity"] >= 2
        self.prune(
            PageroToken.objects.needing_reauthorization(),
            said=(
                ngettext_lazy(
                    "Would delete %(count)d Pagero token that needs re-authorization or whose "
                    "refresh token expired.",
                    "Would delete %(count)d Pagero tokens that need re-authorization or whose "
                    "refresh token expired.",
                    "count",
                ),
                ngettext_lazy(
                    "Deleted %(count)d Pagero token that needed re-authorization or whose "
                    "refresh token expired.",
                    "Deleted %(count)d Pagero tokens that needed re-authorization or whose "
                    "refresh token expired.",
                    "count",
                ),
            ),
        )
        if options["undecryptable"]:
            self.prune(
                PageroToken.objects.undecryptable(),
                still=self.still_undecryptable,
                why=_("cannot be decrypted with the configured keys"),
                said=(
                    ngettext_lazy(
                        "Would delete %(count)d Pagero token that cannot be decrypted with the "
                        "configured keys.",
                        "Would delete %(count)d Pagero tokens that cannot be decrypted with the "
                        "configured keys.",
                        "count",
                    ),
                    ngettext_lazy(
                        "Deleted %(count)d Pagero token that could not be decrypted with the "
                        "configured keys.",
                        "Deleted %(count)d Pagero tokens that could not be decrypted with the "
                        "configured keys.",
                        "count",
                    ),
                ),
            )

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
        selection: PageroTokenQuerySet,
        *,
        said: tuple[Any, Any],
        still: Still | None = None,
        why: str | None = None,
    ) -> None:
        """Delete (or, with ``--dry-run``, list) the tokens of ``selection``; say how many with
        ``said`` (the words of a dry run, the words of a deletion). With ``still``, which
        compares stored values, the encrypted columns are loaded as stored, never decrypted."""
        progress = Progress(self.stdout, selection.count(), _("Pruning Pagero tokens:"))
        deleted = seen = 0
        for batch in self.dead_batches(selection, with_ciphertexts=still is not None):
            seen += len(batch)
            for token in batch if self.verbose else []:
                self.stdout.write(self.listed(token, why))
            if not self.dry_run:
                deleted += self.delete_batch(batch, still)
            progress.update(seen)
        progress.finish()
        message = said[0] % {"count": seen} if self.dry_run else said[1] % {"count": deleted}
        self.stdout.write(
            message + ("" if self.dry_run else self.kept_note(seen, deleted)), self.style.SUCCESS
        )

    def listed(self, token: PageroToken, why: str | None) -> str:
        """One line of ``--verbosity 2``: whose token, and why it goes."""
        if self.dry_run:
            line = _(
                "Would delete the token of user #%(user)s (fingerprint %(fingerprint)s): %(why)s"
            )
        else:
            line = _("Deleting the token of user #%(user)s (fingerprint %(fingerprint)s): %(why)s")
        reason = why or (
            _("needs re-authorization")
            if token.status == PageroToken.Status.REAUTHORIZATION_REQUIRED
            else _("refresh token expired")
        )
        return line % {
            "user": token.user_id,
            "fingerprint": token.fingerprint or "-",
            "why": reason,
        }

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

    def delete_batch(self, batch: list[PageroToken], still: Still | None = None) -> int:
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
