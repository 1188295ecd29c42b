"""``manage.py pagero_prune_tokens``: delete the connections that are dead for good.

A token is dead when Pagero rejected its refresh token (it needs re-authorization) or when its
refresh token's three-year lifetime ran out. Only a new login at Pagero helps such a user, and
that creates a new token, so the old row is only clutter. The encrypted columns are never read
(pruning works even when the keys that wrote them are gone). Each deletion re-checks the
condition in the ``DELETE`` itself, so a user who logs in again while the command runs keeps the
new connection. ``token_revoked`` is sent (``remote=False``) for every deleted token, with the
encrypted fields not loaded.

Exit codes: 0 done (also when there was nothing to delete), 2 usage error.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.db import router, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ...models import PageroToken
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

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        dead = PageroToken.objects.needing_reauthorization()
        total = dead.count()
        progress = Progress(self.stdout, total, _("Pruning Pagero tokens:"))
        deleted = seen = 0
        last_pk: Any = None
        while True:
            batch_query = dead.without_secrets().select_related("user").order_by("pk")
            if last_pk is not None:
                batch_query = batch_query.filter(pk__gt=last_pk)
            batch = list(batch_query[:BATCH_SIZE])
            if not batch:
                break
            last_pk = batch[-1].pk
            seen += len(batch)
            for token in batch if options["verbosity"] >= 2 else []:
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
                self.stdout.write(
                    line
                    % {
                        "user": token.user_id,
                        "fingerprint": token.fingerprint or "-",
                        "why": _("needs re-authorization")
                        if token.status == PageroToken.Status.REAUTHORIZATION_REQUIRED
                        else _("refresh token expired"),
                    }
                )
            if not dry_run:
                deleted += self.delete_batch(batch)
            progress.update(seen)
        progress.finish()
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
            if deleted < seen:
                kept = seen - deleted
                message += " " + ngettext(
                    "%(count)d came back to life meanwhile and was kept.",
                    "%(count)d came back to life meanwhile and were kept.",
                    kept,
                ) % {"count": kept}
        self.stdout.write(message, self.style.SUCCESS)

    def delete_batch(self, batch: list[PageroToken]) -> int:
        """Delete the rows of ``batch`` that are still dead; signal each deleted one."""
        using = router.db_for_write(PageroToken)
        pks = [token.pk for token in batch]
        with transaction.atomic(using=using):
            PageroToken.objects.using(using).needing_reauthorization().filter(
                pk__in=pks
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
