"""A read-only admin for Pagero connections, with "Refresh now" and "Revoke" actions.

The changelist never loads the encrypted columns (``without_secrets()``) and computes each
token's status in the database (``with_health()``), so it costs the same few queries for 20
tokens or 100,000. No token value, whole or in part, is ever shown: the short ``fingerprint``
identifies a token. The change view shows the access token's JWT header and payload, decoded
but NOT verified. Both actions go through :mod:`django_pagero_oauth.tokens`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import router
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
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
from .models import (
    REFRESH_TOKEN_WARNING_DAYS,
    PageroIdentity,
    PageroToken,
    PageroTokenQuerySet,
    TokenHealth,
)

#: An action runs one HTTP request per token inside the web request: more is a job for
#: ``manage.py pagero_refresh_tokens``.
MAX_ACTION_ITEMS = 100

#: At most this many tokens still in the old format are decrypted for the changelist's
#: undecryptable-tokens banner (migration 0002 re-encrypted all it could: normally none).
UNDECRYPTABLE_LEGACY_LIMIT = 100

_HEALTH_ICONS = {
    TokenHealth.VALID: "admin/img/icon-yes.svg",
    TokenHealth.ACCESS_TOKEN_EXPIRED: "admin/img/icon-clock.svg",
    TokenHealth.REFRESH_TOKEN_EXPIRING: "admin/img/icon-alert.svg",
    TokenHealth.REFRESH_TOKEN_EXPIRED: "admin/img/icon-no.svg",
    TokenHealth.REAUTHORIZATION_REQUIRED: "admin/img/icon-no.svg",
}


def user_search_fields(user_model: type[Model]) -> list[str]:
    """Search the user's username and, only when the user model has one, its email field."""
    names = [getattr(user_model, "USERNAME_FIELD", "username")]
    get_email_field_name = getattr(user_model, "get_email_field_name", None)
    email = get_email_field_name() if get_email_field_name else "email"
    try:
        user_model._meta.get_field(email)
    except FieldDoesNotExist:
        pass
    else:
        names.append(email)
    return [f"user__{name}" for name in dict.fromkeys(names)]


def _action_description(action: Any) -> str:
    """An action's description: an ``Action`` (Django 6.1) or a ``(func, name, description)``
    tuple (earlier versions)."""
    description = getattr(action, "description", None)
    return str(description if description is not None else action[2])


def relative_time(when: datetime, now: datetime | None = None) -> str:
    """``"in 9 minutes"`` or ``"3 days ago"``."""
    now = now or timezone.now()
    if when > now:
        return gettext("in %(time)s") % {"time": timeuntil(when, now, depth=1)}
    return gettext("%(time)s ago") % {"time": timesince(when, now, depth=1)}


class HealthFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, Any]]:
        choices: list[tuple[str, Any]] = TokenHealth.choices
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() not in TokenHealth.values:
            return None
        filtered: QuerySet[Any] = cast(PageroTokenQuerySet, queryset).filter_health(
            str(self.value())
        )
        return filtered


class RefreshTokenExpiryFilter(admin.SimpleListFilter):
    title = _("refresh token expiry")
    parameter_name = "refresh_token_expires"
    WITHIN = "30d"
    EXPIRED = "expired"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, Any]]:
        return [
            (
                self.WITHIN,
                ngettext(
                    "Expires within %(days)d day",
                    "Expires within %(days)d days",
                    REFRESH_TOKEN_WARNING_DAYS,
                )
                % {"days": REFRESH_TOKEN_WARNING_DAYS},
            ),
            (self.EXPIRED, _("Expired")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        now = timezone.now()
        if self.value() == self.WITHIN:
            expires = Q(refresh_token_expires_at__gt=now) & Q(
                refresh_token_expires_at__lte=now + timedelta(days=REFRESH_TOKEN_WARNING_DAYS)
            )
        elif self.value() == self.EXPIRED:
            expires = Q(refresh_token_expires_at__lte=now)
        else:
            return None
        filtered: QuerySet[Any] = queryset.filter(expires)
        return filtered


_Q = TypeVar("_Q", bound="QuerySet[Any]")


def _on_primary_for_post(request: HttpRequest, queryset: _Q) -> _Q:
    """A POST (an action, a confirmed delete) selects its rows where it writes: a lagging read
    replica may lack a token connected moments ago, or hold one deleted already."""
    if request.method == "POST":
        return queryset.using(router.db_for_write(queryset.model))
    return queryset


class _WithoutBulkDelete(admin.ModelAdmin):  # type: ignore[type-arg]
    """No "delete selected": deleting a token would not tell Pagero ("Revoke" does, or says
    that it could not), and deleting an identity is what "Unlink" says it is."""

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions are shown (and warns about overrides that do
        # not take it); earlier versions know no such argument.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg]
        actions.pop("delete_selected", None)
        return actions


@admin.register(PageroToken)
class PageroTokenAdmin(_WithoutBulkDelete):
    # Readable at 1280 pixels with the admin's sidebars open: the status says whether the access
    # token is expired, and the change view shows its expiry and the scope. No date hierarchy:
    # the expiry filter answers what it would ("which die soon?"), without a DISTINCT query.
    list_display = (
        "user",
        "health_display",
        "refresh_token_expiry",
        "last_refreshed_display",
        "fingerprint",
    )
    list_filter = (HealthFilter, RefreshTokenExpiryFilter)
    list_select_related = ("user",)
    # A second COUNT(*) over the whole table on every filtered page is not worth it.
    show_full_result_count = False
    # Soonest to die first; the column is indexed.
    ordering = ("refresh_token_expires_at",)
    actions = ("refresh_now", "revoke")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "user",
                    "health_display",
                    "status_reason",
                    "publicid",
                    "fingerprint",
                    "token_type",
                    "scope",
                    "claims",
                )
            },
        ),
        (
            _("Lifetimes"),
            {
                "fields": (
                    "access_token_issued_at",
                    "access_token_expiry",
                    "refresh_token_expiry",
                    "last_refreshed",
                    "created",
                    "updated",
                )
            },
        ),
    )
    jwt_fieldset = (
        _("Access token: decoded, not verified"),
        {"fields": ("decoded_access_token",)},
    )
    # Everything shown is read-only: tokens are never edited here.
    readonly_fields = (
        *(str(name) for _title, options in fieldsets for name in options["fields"]),
        *jwt_fieldset[1]["fields"],
    )
    jwt_template = "admin/django_pagero_oauth/pagerotoken/decoded_jwt.html"

    class Media:
        css = {"all": ("django_pagero_oauth/admin.css",)}

    # --- queries ------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> PageroTokenQuerySet:
        """Plain columns only, the status computed by the database: no per-row decryption."""
        queryset = cast(PageroTokenQuerySet, super().get_queryset(request))
        return (
            _on_primary_for_post(request, queryset)
            .without_secrets()
            .with_health()
            .select_related("user")
        )

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # A fingerprint from a log line finds its token (exact match).
        return [*user_search_fields(get_user_model()), "publicid", "=fingerprint"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "GET":
            self.warn_about_undecryptable_tokens(request)
        return super().changelist_view(request, extra_context)

    # The list is read-only and its actions commit token by token (a refresh is committed the
    # moment Pagero answers): ATOMIC_REQUESTS must not wrap them in one transaction, which a
    # failure half-way would roll back, and on SQLite would hold the lock a refresh needs.
    changelist_view._non_atomic_requests = EVERY_DATABASE  # type: ignore[attr-defined]

    def warn_about_undecryptable_tokens(self, request: HttpRequest) -> None:
        """A banner when stored tokens cannot be decrypted with the configured keys.

        Cheap on every view: the least and most recently written tokens are checked by the key
        id their refresh token starts with (three small indexed queries, nothing loaded or
        decrypted; ``undecryptable_in_sample()``). Only when one of them fails is the count
        taken: a ``COUNT`` on that key id (about 0.1 s for 100,000 tokens on PostgreSQL, 0.4 s
        on SQLite), and at most ``UNDECRYPTABLE_LEGACY_LIMIT`` old-format tokens decrypted.
        ``pagero_check`` counts them all, always.
        """
        tokens = PageroToken.objects.all()
        if not tokens.undecryptable_in_sample():
            return
        count, exact = tokens.count_undecryptable(legacy_limit=UNDECRYPTABLE_LEGACY_LIMIT)
        if not count:
            return
        if exact:
            message = ngettext(
                "%(count)d Pagero token cannot be decrypted with the configured keys: its user "
                "must connect to Pagero again.",
                "%(count)d Pagero tokens cannot be decrypted with the configured keys: their "
                "users must connect to Pagero again.",
                count,
            )
        else:
            message = ngettext(
                "At least %(count)d Pagero token cannot be decrypted with the configured keys: "
                "its user must connect to Pagero again.",
                "At least %(count)d Pagero tokens cannot be decrypted with the configured keys: "
                "their users must connect to Pagero again.",
                count,
            )
        hint = gettext(
            "Put the key they were written with back into ENCRYPTION_KEYS (or "
            "SECRET_KEY_FALLBACKS), or delete them with manage.py pagero_prune_tokens "
            "--undecryptable."
        )
        self.message_user(request, f"{message % {'count': count}} {hint}", messages.WARNING)

    # --- permissions: tokens are read-only ----------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """No token is ever edited; without ``obj`` this is the permission the actions need."""
        if obj is not None:
            return False
        return super().has_change_permission(request)

    # --- columns ------------------------------------------------------------------------

    @admin.display(description=_("status"), ordering="health")
    def health_display(self, obj: PageroToken) -> SafeString:
        health = TokenHealth(self._health(obj))
        return format_html(
            '<img src="{}" alt="" class="pagero-health-icon"> '
            '<span class="pagero-health pagero-health-{}">{}</span>',
            static(_HEALTH_ICONS[health]),
            health.value,
            health.label,
        )

    @admin.display(description=_("access token expires"), ordering="access_token_expires_at")
    def access_token_expiry(self, obj: PageroToken) -> str:
        return relative_time(obj.access_token_expires_at)

    @admin.display(description=_("refresh token expires"), ordering="refresh_token_expires_at")
    def refresh_token_expiry(self, obj: PageroToken) -> SafeString:
        when = obj.refresh_token_expires_at
        date = formats.date_format(timezone.localtime(when), "DATE_FORMAT")
        now = timezone.now()
        if when <= now:
            return format_html(
                '{} <strong class="pagero-expiry-warning">{}</strong>', date, gettext("expired")
            )
        if when - now < timedelta(days=REFRESH_TOKEN_WARNING_DAYS):
            return format_html(
                '{} <img src="{}" alt=""> <strong class="pagero-expiry-warning">{}</strong>',
                date,
                static("admin/img/icon-alert.svg"),
                relative_time(when, now),
            )
        return format_html("{}", date)

    @admin.display(description=_("last refreshed"), ordering="last_refreshed")
    def last_refreshed_display(self, obj: PageroToken) -> str:
        return relative_time(obj.last_refreshed) if obj.last_refreshed else "-"

    @admin.display(description=_("decoded access token"))
    def decoded_access_token(self, obj: PageroToken) -> str | None:
        try:
            decoded = self._decoded(obj)
        except TokenDecryptionError:
            return gettext("The token cannot be decrypted with the configured keys.")
        if decoded is None:
            return None
        header, payload = decoded
        timestamps = []
        for name in ("iat", "nbf", "exp", "auth_time"):
            value = payload.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            try:  # the payload is unverified: a year 10**12 is no date, and no reason for a 500
                when = datetime.fromtimestamp(value, tz=timezone.get_current_timezone())
            except (OverflowError, ValueError, OSError):
                continue
            timestamps.append((name, when))
        return render_to_string(
            self.jwt_template,
            {
                "header": json.dumps(header, indent=2, sort_keys=True),
                "payload": json.dumps(payload, indent=2, sort_keys=True),
                "timestamps": timestamps,
            },
        )

    def _health(self, obj: PageroToken) -> str:
        """The annotated health; objects not from :meth:`get_queryset` cost one query."""
        health = getattr(obj, "health", None)
        if health is None:
            health = (
                PageroToken.objects.with_health()
                .filter(pk=obj.pk)
                .values_list("health", flat=True)  # type: ignore[misc]  # with_health()'s
                .first()
            )
        return str(health or TokenHealth.VALID)

    @staticmethod
    def _decoded(obj: PageroToken) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The decoded JWT, decrypted once per object."""
        if not hasattr(obj, "_pagero_decoded_jwt"):
            obj._pagero_decoded_jwt = obj.jwt_header_and_claims()  # type: ignore[attr-defined]
        return obj._pagero_decoded_jwt  # type: ignore[attr-defined, no-any-return]

    # --- change view --------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """The decoded JWT only for a token that is a JWT (or cannot be decrypted)."""
        fieldsets: list[Any] = list(super().get_fieldsets(request, obj))
        if obj is not None:
            try:
                show = self._decoded(obj) is not None
            except TokenDecryptionError:
                show = True
            if show:
                fieldsets.append(self.jwt_fieldset)
        return fieldsets

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        actions = self.get_actions(request)
        context = {
            # Deleting here would not tell Pagero; the "Revoke" button does.
            "show_delete": False,
            "pagero_actions": [
                (name, _action_description(action)) for name, action in actions.items()
            ],
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    # --- deleting: only through a revocation --------------------------------------------

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
        try:
            result = revocation.revoke(token)
        except (TokenDecryptionError, OAuthErrorResponse, *SERVICE_ERRORS) as exc:
            self._tell(request, Place.ADMIN_REVOKE, exc, token)
            return HttpResponseRedirect(self._admin_url("change", token.pk))
        self._revoked(request, token, result)
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

    # --- actions ------------------------------------------------------------------------

    def _action_tokens(
        self, request: HttpRequest, queryset: QuerySet[PageroToken]
    ) -> list[PageroToken] | None:
        if queryset.count() > MAX_ACTION_ITEMS:
            self.message_user(
                request,
                ngettext(
                    "Select at most %(max)d token at a time; use the management commands "
                    "pagero_refresh_tokens and pagero_prune_tokens for more.",
                    "Select at most %(max)d tokens at a time; use the management commands "
                    "pagero_refresh_tokens and pagero_prune_tokens for more.",
                    MAX_ACTION_ITEMS,
                )
                % {"max": MAX_ACTION_ITEMS},
                messages.ERROR,
            )
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
            try:
                result = revocation.revoke(token)
            except (TokenDecryptionError, OAuthErrorResponse, *SERVICE_ERRORS) as exc:
                self._tell(request, Place.ADMIN_REVOKE, exc, token)
            else:
                self._revoked(request, token, result)

    def _revoked(
        self, request: HttpRequest, token: PageroToken, result: revocation.Revocation
    ) -> None:
        """Say what a successful ``revocation.revoke`` did (and log the deletion)."""
        what = self._describe(token)
        if result.skipped_because == "already_deleted":
            message, level = (
                gettext("%(user)s (%(fingerprint)s): was already deleted."),
                messages.INFO,
            )
        else:
            self.log_deletions(request, [token])  # type: ignore[arg-type]
            if result.remote:
                message, level = (
                    gettext("%(user)s (%(fingerprint)s): revoked at Pagero and deleted."),
                    messages.SUCCESS,
                )
            else:
                message, level = (
                    gettext(
                        "%(user)s (%(fingerprint)s): deleted here only; Pagero was not "
                        "told (no REVOKE_URL is configured)."
                    ),
                    messages.WARNING,
                )
        self.message_user(request, message % what, level)


@admin.register(PageroIdentity)
class PageroIdentityAdmin(_WithoutBulkDelete):
    """Read-only: identities are linked only through a verified ``id_token``. "Unlink" (with
    the delete permission) stops "Sign in with Pagero" from logging in as the user; the
    user's token, if any, stays."""

    list_display = ("user", "issuer", "subject", "created", "last_signed_in")
    list_filter = ("issuer",)
    list_select_related = ("user",)
    ordering = ("-created",)
    actions = ("unlink",)
    fields = list_display
    readonly_fields = list_display

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return [*user_search_fields(get_user_model()), "subject"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PageroIdentity]:
        return _on_primary_for_post(request, super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(
        description=_("Unlink (Sign in with Pagero no longer logs in as the user)"),
        permissions=["delete"],
    )
    def unlink(self, request: HttpRequest, queryset: QuerySet[PageroIdentity]) -> None:
        identities = list(queryset.select_related("user"))
        for identity in identities:
            identity.delete()
        self.log_deletions(request, identities)  # type: ignore[arg-type]
        count = len(identities)
        self.message_user(
            request,
            ngettext(
                "%(count)d Pagero identity unlinked.",
                "%(count)d Pagero identities unlinked.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
