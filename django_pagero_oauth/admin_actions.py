"""What the token admin does to tokens at Pagero: the "Refresh now" and "Revoke" actions, and
the delete page, which revokes instead of deleting. Each goes through
:mod:`django_pagero_oauth.tokens`, token by token, and says in a message how it went.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import revocation, tokens
from .exceptions import (
    SERVICE_ERRORS,
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroConfigurationError,
    TokenDecryptionError,
)
from .explain import Place, explain, is_warning
from .guard import EVERY_DATABASE
from .models import PageroToken

#: An action runs one HTTP request per token inside the web request: more is a job for
#: ``manage.py pagero_refresh_tokens``.
MAX_ACTION_ITEMS = 100


class TokenActionsAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The actions and the revoking delete page of :class:`~.admin.PageroTokenAdmin`."""

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The delete page's POST revokes the token (``revocation.revoke``) instead of deleting it.

        Deleting here alone would leave the refresh token valid at Pagero for years. So the
        confirmed delete does what "Revoke" does: Pagero is told first (with ``REVOKE_URL``),
        and if it cannot confirm (a network failure, a 503) the token is KEPT and the change
        page says so. A token Pagero reports as already invalid is deleted (RFC 7009 2.2:
        such a token is answered 200). The confirmation page (GET) is Django's own.
        """
        token = self.get_object(request, unquote(object_id))
        if request.method != "POST" or token is None:  # Django's page, or its "not found"
            return super().delete_view(request, object_id, extra_context)
        if not self.has_delete_permission(request, token):
            raise PermissionDenied
        if not self._revoke_one(request, token):
            return HttpResponseRedirect(self._admin_url("change", token.pk))
        return HttpResponseRedirect(self._admin_url("changelist"))

    def _admin_url(self, view: str, *args: Any) -> str:
        opts = self.opts
        name = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_{view}"
        return reverse(name, args=args, current_app=self.admin_site.name)

    # The revocation commits on its own (as the actions do): not inside ATOMIC_REQUESTS, which
    # on SQLite would hold the lock the revocation needs.
    delete_view._non_atomic_requests = EVERY_DATABASE  # type: ignore[attr-defined]

    def delete_model(self, request: HttpRequest, obj: PageroToken) -> None:
        """Never a local delete alone: revoke (raises, keeping the token, when Pagero cannot
        confirm)."""
        revocation.revoke(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PageroToken]) -> None:
        """As :meth:`delete_model`, token by token."""
        for token in queryset:
            revocation.revoke(token)

    def _action_tokens(
        self, request: HttpRequest, queryset: QuerySet[PageroToken]
    ) -> list[PageroToken] | None:
        if queryset.count() > MAX_ACTION_ITEMS:
            message = ngettext(
                "Select at most %(max)d token at a time; use the management commands "
                "pagero_refresh_tokens and pagero_prune_tokens for more.",
                "Select at most %(max)d tokens at a time; use the management commands "
                "pagero_refresh_tokens and pagero_prune_tokens for more.",
                MAX_ACTION_ITEMS,
            )
            self.message_user(request, message % {"max": MAX_ACTION_ITEMS}, messages.ERROR)
            return None
        return list(queryset.order_by("pk"))

    @staticmethod
    def _describe(token: PageroToken) -> dict[str, Any]:
        return {"user": token.user, "fingerprint": token.fingerprint or "-"}

    def _refresh_one(self, request: HttpRequest, token: PageroToken, remaining: int) -> bool:
        """Refresh one token and say how it went; False when the rest need not be tried."""
        try:
            fresh = tokens.refresh_now(token)
        except (TokenDecryptionError, PageroAuthorizationRequired, *SERVICE_ERRORS) as exc:
            # Rejected client credentials: every other token would fail the same way.
            stop = isinstance(exc, PageroConfigurationError)
            self._tell(request, Place.ADMIN_REFRESH, exc, token, skipped=remaining if stop else 0)
            return not stop
        self.log_change(request, fresh, gettext("Refreshed the Pagero token."))
        self.message_user(
            request,
            gettext("%(user)s: refreshed, new fingerprint %(fingerprint)s.")
            % self._describe(fresh),
            messages.SUCCESS,
        )
        return True

    def _tell(
        self,
        request: HttpRequest,
        place: Place,
        exc: BaseException,
        token: PageroToken,
        **params: Any,
    ) -> None:
        """One message about ``token`` failing, in the words of :mod:`.explain`."""
        level = messages.WARNING if is_warning(place, exc) else messages.ERROR
        self.message_user(request, explain(place, exc, **self._describe(token), **params), level)

    @admin.action(description=_("Refresh now"), permissions=["change"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[PageroToken]) -> None:
        """Force a refresh of each token, single-flight (``tokens.refresh_now``)."""
        selected = self._action_tokens(request, queryset) or []
        for index, token in enumerate(selected):
            if not self._refresh_one(request, token, remaining=len(selected) - index - 1):
                break

    @admin.action(description=_("Revoke"), permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[PageroToken]) -> None:
        """Revoke each token at Pagero (RFC 7009) and delete it (``revocation.revoke``)."""
        for token in self._action_tokens(request, queryset) or []:
            self._revoke_one(request, token)

    def _revoke_one(self, request: HttpRequest, token: PageroToken) -> bool:
        """Revoke one token (:func:`revocation.revoke`) and say how it went; False when it is kept."""
        try:
            result = revocation.revoke(token)
        except (TokenDecryptionError, OAuthErrorResponse, *SERVICE_ERRORS) as exc:
            self._tell(request, Place.ADMIN_REVOKE, exc, token)
            return False
        what = self._describe(token)
        if result.skipped_because == "already_deleted":
            message = gettext("%(user)s (%(fingerprint)s): was already deleted.")
            self.message_user(request, message % what, messages.INFO)
            return True
        self.log_deletions(request, [token])  # type: ignore[arg-type]
        if result.remote:
            message = gettext("%(user)s (%(fingerprint)s): revoked at Pagero and deleted.")
            self.message_user(request, message % what, messages.SUCCESS)
        else:
            message = gettext(
                "%(user)s (%(fingerprint)s): deleted here only; Pagero was not "
                "told (no REVOKE_URL is configured)."
            )
            self.message_user(request, message % what, messages.WARNING)
        return True
