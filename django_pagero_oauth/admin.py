"""A read-only admin for Pagero connections, with "Refresh now" and "Revoke" actions
(:mod:`.admin_actions`).

The changelist never loads the encrypted columns (``without_secrets()``) and computes each
token's status in the database (``with_health()``), so it costs the same few queries for 20
tokens or 100,000. No token value, whole or in part, is ever shown: the short ``fingerprint``
identifies a token. The change view shows the access token's JWT header and payload, decoded
but NOT verified. Both actions go through :mod:`django_pagero_oauth.tokens`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import router
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .admin_actions import TokenActionsAdmin
from .exceptions import TokenDecryptionError
from .guard import EVERY_DATABASE
from .models import (
    REFRESH_TOKEN_WARNING_DAYS,
    PageroIdentity,
    PageroToken,
    PageroTokenQuerySet,
    TokenHealth,
)

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
    with contextlib.suppress(FieldDoesNotExist):
        user_model._meta.get_field(email)
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
        return TokenHealth.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() not in TokenHealth.values:
            return None
        return cast(PageroTokenQuerySet, queryset).filter_health(str(self.value()))


class RefreshTokenExpiryFilter(admin.SimpleListFilter):
    title = _("refresh token expiry")
    parameter_name = "refresh_token_expires"
    WITHIN = "30d"
    EXPIRED = "expired"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, Any]]:
        days = REFRESH_TOKEN_WARNING_DAYS
        within = ngettext("Expires within %(days)d day", "Expires within %(days)d days", days)
        return [(self.WITHIN, within % {"days": days}), (self.EXPIRED, _("Expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        now = timezone.now()
        soon = now + timedelta(days=REFRESH_TOKEN_WARNING_DAYS)
        expires = {
            self.WITHIN: Q(refresh_token_expires_at__gt=now, refresh_token_expires_at__lte=soon),
            self.EXPIRED: Q(refresh_token_expires_at__lte=now),
        }.get(str(self.value()))
        return None if expires is None else queryset.filter(expires)


class _ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Nothing is added here, and a POST (an action, a confirmed delete) selects its rows where
    it writes: a lagging read replica may lack a token connected moments ago, or hold one
    deleted already.

    No "delete selected": deleting a token would not tell Pagero ("Revoke" does, or says
    that it could not), and deleting an identity is what "Unlink" says it is."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.method == "POST":
            return queryset.using(router.db_for_write(queryset.model))
        return queryset

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

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
class PageroTokenAdmin(TokenActionsAdmin, _ReadOnlyAdmin):
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
    jwt_fieldset = (_("Access token: decoded, not verified"), {"fields": ("decoded_access_token",)})
    # Everything shown is read-only: tokens are never edited here.
    readonly_fields = (
        *(str(name) for _title, options in fieldsets for name in options["fields"]),
        *jwt_fieldset[1]["fields"],
    )
    jwt_template = "admin/django_pagero_oauth/pagerotoken/decoded_jwt.html"

    class Media:
        css = {"all": ("django_pagero_oauth/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> PageroTokenQuerySet:
        """Plain columns only, the status computed by the database: no per-row decryption."""
        queryset = cast(PageroTokenQuerySet, super().get_queryset(request))
        return queryset.without_secrets().with_health().select_related("user")

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
        on SQLite).
        """
        tokens = PageroToken.objects.all()
        count = tokens.count_undecryptable() if tokens.undecryptable_in_sample() else 0
        if not count:
            return
        message = ngettext(
            "%(count)d Pagero token cannot be decrypted with the configured keys: its user "
            "must connect to Pagero again.",
            "%(count)d Pagero tokens cannot be decrypted with the configured keys: their "
            "users must connect to Pagero again.",
            count,
        )
        hint = gettext(
            "Put the key they were written with back into ENCRYPTION_KEYS (or "
            "SECRET_KEY_FALLBACKS), or delete them with manage.py pagero_prune_tokens "
            "--undecryptable."
        )
        self.message_user(request, f"{message % {'count': count}} {hint}", messages.WARNING)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """No token is ever edited; without ``obj`` this is the permission the actions need."""
        return obj is None and super().has_change_permission(request)

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
        context = {
            # Deleting here would not tell Pagero; the "Revoke" button does.
            "show_delete": False,
            "pagero_actions": [
                (name, _action_description(action))
                for name, action in self.get_actions(request).items()
            ],
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)


@admin.register(PageroIdentity)
class PageroIdentityAdmin(_ReadOnlyAdmin):
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
        message = ngettext(
            "%(count)d Pagero identity unlinked.", "%(count)d Pagero identities unlinked.", count
        )
        self.message_user(request, message % {"count": count}, messages.SUCCESS)
