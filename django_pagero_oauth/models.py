"""Storage: one :class:`PageroToken` per Django user, tokens encrypted at rest."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import IntegrityError, models, router, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from .conf import DEFAULTS, MAX_REFRESH_TOKEN_LIFETIME_DAYS, app_settings
from .conf import REFRESH_TOKEN_WARNING_DAYS as REFRESH_TOKEN_WARNING_DAYS  # re-exported
from .crypto import Ciphertext, EncryptedTextField, decrypt, fingerprint, unknown_key_condition
from .exceptions import InvalidTokenResponse, TokenDecryptionError
from .locking import write_locked
from .oauth import TokenResponse, decode_jwt_unverified, is_storable_text

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


#: Length of the informational ``scope`` and ``claims`` columns; longer values are cut.
_TEXT_MAX_LENGTH = 1024


class TokenHealth(models.TextChoices):
    """What a token needs, computed from plain columns (never from the encrypted ones).

    In order of precedence: the first that applies is a token's health.
    """

    REAUTHORIZATION_REQUIRED = "reauthorization_required", _("Needs re-authorization")
    REFRESH_TOKEN_EXPIRED = "refresh_token_expired", _("Refresh token expired")
    REFRESH_TOKEN_EXPIRING = "refresh_token_expiring", _("Refresh token expiring")
    ACCESS_TOKEN_EXPIRED = "access_token_expired", _("Access token expired, refreshable")
    VALID = "valid", _("Valid")


def refresh_token_expiry(now: datetime) -> datetime:
    """When a refresh token issued at ``now`` expires: ``REFRESH_TOKEN_LIFETIME_DAYS`` later,
    held to 0..3650 days (the default for a value that is no number), so that the date
    computation cannot raise and lose a refresh token Pagero has just rotated."""
    try:
        days = app_settings.REFRESH_TOKEN_LIFETIME_DAYS
    except (TypeError, ValueError, OverflowError):
        days = DEFAULTS["REFRESH_TOKEN_LIFETIME_DAYS"]
    return now + timedelta(days=min(max(days, 0), MAX_REFRESH_TOKEN_LIFETIME_DAYS))


class PageroTokenQuerySet(models.QuerySet["PageroToken"]):
    def active(self) -> PageroTokenQuerySet:
        """Tokens that can still be refreshed without the user."""
        return self.filter(
            status=PageroToken.Status.ACTIVE, refresh_token_expires_at__gt=timezone.now()
        )

    def needing_reauthorization(self) -> PageroTokenQuerySet:
        """Tokens that are dead: marked so, or past their refresh-token lifetime."""
        return self.filter(
            models.Q(status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
            | models.Q(refresh_token_expires_at__lte=timezone.now())
        )

    def refresh_token_expiring_within(self, delta: timedelta) -> PageroTokenQuerySet:
        """Active tokens whose refresh token dies within ``delta``."""
        return self.active().filter(refresh_token_expires_at__lte=timezone.now() + delta)

    def without_secrets(self) -> PageroTokenQuerySet:
        """Do not load (or decrypt) the encrypted columns: for listings of many tokens."""
        return self.defer("access_token", "refresh_token", "id_token")

    def undecryptable(self) -> PageroTokenQuerySet:
        """Tokens whose refresh token was written with a key that is not configured any more.

        Plain SQL on the key id the value starts with: nothing is loaded or decrypted. Only the
        refresh token is looked at: it is the connection (without it the user must log in
        again anyway), it is short (a scan of 100,000 rows reads a few MB, not the access
        tokens' hundreds), and every write of the tokens (login, refresh, a save after a key
        rotation) writes it with the same key as the access token.
        """
        return self.filter(unknown_key_condition("refresh_token"))

    def undecryptable_in_sample(self) -> bool:
        """A cheap hint: can the least or the most recently written token not be decrypted?

        Two indexed lookups (by ``access_token_expires_at``, set at every write) and one
        ``EXISTS`` on those two rows' key ids, nothing decrypted. Keys are replaced newest
        first, so a lost key makes the tokens written longest ago undecryptable first; the
        newest one catches a wrong key in force. Use :meth:`count_undecryptable` for the count.
        """
        pks = [
            self.order_by(ordering).values_list("pk", flat=True).first()
            for ordering in ("access_token_expires_at", "-access_token_expires_at")
        ]
        sample = self.filter(pk__in=[pk for pk in pks if pk is not None])
        return bool(sample.undecryptable().exists())

    def count_undecryptable(self) -> int:
        """How many tokens cannot be decrypted with the configured keys (one ``COUNT``)."""
        return self.undecryptable().count()

    @staticmethod
    def _health_conditions(
        now: datetime, warn_within: timedelta
    ) -> list[tuple[TokenHealth, models.Q]]:
        """Each health but VALID with its condition, in order of precedence."""
        dead = models.Q(status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
        expiring = models.Q(refresh_token_expires_at__lte=now + warn_within)
        return [
            (TokenHealth.REAUTHORIZATION_REQUIRED, dead),
            (TokenHealth.REFRESH_TOKEN_EXPIRED, models.Q(refresh_token_expires_at__lte=now)),
            (TokenHealth.REFRESH_TOKEN_EXPIRING, expiring),
            (TokenHealth.ACCESS_TOKEN_EXPIRED, models.Q(access_token_expires_at__lte=now)),
        ]

    def with_health(
        self,
        now: datetime | None = None,
        warn_within: timedelta = timedelta(days=REFRESH_TOKEN_WARNING_DAYS),
    ) -> PageroTokenQuerySet:
        """Annotate ``health`` (a :class:`TokenHealth` value) in the database: no decryption."""
        conditions = self._health_conditions(now or timezone.now(), warn_within)
        whens = [models.When(condition, then=models.Value(h.value)) for h, condition in conditions]
        return self.annotate(
            health=models.Case(
                *whens,
                default=models.Value(TokenHealth.VALID.value),
                output_field=models.CharField(max_length=32),
            )
        )

    def filter_health(
        self,
        health: TokenHealth | str,
        now: datetime | None = None,
        warn_within: timedelta = timedelta(days=REFRESH_TOKEN_WARNING_DAYS),
    ) -> PageroTokenQuerySet:
        """Tokens whose health is ``health``, as plain column conditions (indexes apply)."""
        health = TokenHealth(health)
        query = models.Q()
        for candidate, condition in self._health_conditions(now or timezone.now(), warn_within):
            if candidate == health:
                return self.filter(query & condition)
            query &= ~condition
        return self.filter(query)


class PageroToken(models.Model):
    """A Django user's connection to Pagero Online.

    ``access_token``, ``refresh_token`` and ``id_token`` are Fernet-encrypted in the database,
    each bound to its column and to the user (:mod:`django_pagero_oauth.crypto`), and decrypted
    on first access; ``fingerprint`` is a short keyed hash of the refresh token that is safe to
    show.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REAUTHORIZATION_REQUIRED = "reauthorization_required", _("Needs re-authorization")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="pagero_token",
        verbose_name=_("user"),
    )
    access_token = EncryptedTextField(_("access token"))
    refresh_token = EncryptedTextField(_("refresh token"))
    id_token = EncryptedTextField(_("ID token"), blank=True, default="")
    token_type = models.CharField(_("token type"), max_length=32, default="bearer")
    scope = models.CharField(_("scope"), max_length=_TEXT_MAX_LENGTH, blank=True, default="")
    claims = models.CharField(_("claims"), max_length=_TEXT_MAX_LENGTH, blank=True, default="")
    publicid = models.CharField(
        _("Pagero public ID"),
        max_length=255,
        blank=True,
        default="",
        db_index=True,
        help_text=_("Read from the access token when it is a JWT; used for searching."),
    )
    fingerprint = models.CharField(
        _("fingerprint"),
        max_length=12,
        blank=True,
        default="",
        help_text=_("12 hex digits of a keyed hash (HMAC) of the refresh token. Reveals nothing."),
    )
    access_token_issued_at = models.DateTimeField(_("access token issued at"))
    access_token_expires_at = models.DateTimeField(_("access token expires at"), db_index=True)
    refresh_token_expires_at = models.DateTimeField(
        _("refresh token expires at"),
        db_index=True,
        help_text=_("Rolling: every refresh starts a new lifetime."),
    )
    status = models.CharField(
        _("status"),
        max_length=32,
        choices=Status.choices,
        default=Status.ACTIVE,
        db_index=True,
    )
    status_reason = models.CharField(_("status reason"), max_length=255, blank=True, default="")
    last_refreshed = models.DateTimeField(_("last refreshed"), null=True, blank=True)
    refresh_lease_until = models.DateTimeField(
        _("refresh in progress until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Set while one process refreshes the token; nobody else refreshes it then."),
    )
    refresh_lease_owner = models.CharField(
        _("refresh lease owner"), max_length=32, blank=True, default="", editable=False
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = PageroTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("Pagero token")
        verbose_name_plural = _("Pagero tokens")
        ordering = ("-updated",)

    def __str__(self) -> str:
        return str(_("Pagero connection of user #%(user_id)s") % {"user_id": self.user_id})

    def __repr__(self) -> str:
        return (
            f"<PageroToken pk={self.pk} user_id={self.user_id} status={self.status} "
            f"fingerprint={self.fingerprint}>"
        )

    # --- state ----------------------------------------------------------------------------

    def is_access_token_expired(self, now: datetime | None = None) -> bool:
        return self.access_token_expires_at <= (now or timezone.now())

    def access_token_expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        return self.access_token_expires_at <= (now or timezone.now()) + timedelta(seconds=seconds)

    def access_token_needs_refresh(
        self, leeway: int | None = None, now: datetime | None = None
    ) -> bool:
        """True when the access token is valid for less than ``leeway`` seconds.

        The leeway (default ``REFRESH_LEEWAY``) is capped at half the token's lifetime, so a
        server that issues very short-lived tokens does not make every fresh token "expiring"
        (which would defeat single-flight refreshing).
        """
        if leeway is None:
            leeway = app_settings.REFRESH_LEEWAY
        lifetime = (self.access_token_expires_at - self.access_token_issued_at).total_seconds()
        return self.access_token_expires_within(min(leeway, max(lifetime, 0) / 2), now)

    def is_refresh_token_expired(self, now: datetime | None = None) -> bool:
        return self.refresh_token_expires_at <= (now or timezone.now())

    @property
    def needs_reauthorization(self) -> bool:
        """True when only a new login at Pagero can restore the connection."""
        return (
            self.status == self.Status.REAUTHORIZATION_REQUIRED or self.is_refresh_token_expired()
        )

    @sensitive_variables()
    def holds_refresh_token(self, refresh_token: str) -> bool:
        """The row holds ``refresh_token``; not so for one written with a key this process
        lacks (whatever it holds, it is not a token this process knows)."""
        try:
            return bool(self.refresh_token == refresh_token)
        except TokenDecryptionError:
            return False

    @sensitive_variables()
    def is_decryptable(self) -> bool:
        """True when the access and refresh token decrypt with the configured keys.

        Checks the stored values (nothing is logged or kept); values already decrypted or set
        count as decryptable.
        """
        for name in ("access_token", "refresh_token"):
            field = cast(EncryptedTextField, self._meta.get_field(name))
            value = self.__dict__[name] if name in self.__dict__ else field.load_raw(self)
            if isinstance(value, Ciphertext):
                try:
                    decrypt(value, field.context_for(self))
                except TokenDecryptionError:
                    return False
        return True

    @sensitive_variables()
    def jwt_header_and_claims(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The access token's JWT header and payload, decoded but NOT verified (for display)."""
        return decode_jwt_unverified(self.access_token)

    # --- writing ----------------------------------------------------------------------------

    @sensitive_variables()
    def apply_token_response(self, response: TokenResponse, *, now: datetime | None = None) -> None:
        """Take the tokens from a token-endpoint answer. The only place token data is written.

        A response without a refresh token keeps the old one (RFC 6749 6: the server MAY issue
        a new one); the refresh token's rolling lifetime restarts either way. Does not save.
        """
        now = now or timezone.now()
        self.access_token = response.access_token
        self.token_type = response.token_type
        if response.refresh_token:
            self.refresh_token = response.refresh_token
            self.fingerprint = fingerprint(response.refresh_token)
        if response.id_token:
            self.id_token = response.id_token
        # Informational columns: a server that sends more than fits must not break the login.
        self.scope = response.scope[:_TEXT_MAX_LENGTH]
        self.claims = response.claims[:_TEXT_MAX_LENGTH]
        decoded = decode_jwt_unverified(response.access_token)
        publicid = decoded[1].get("publicid") if decoded is not None else None
        if isinstance(publicid, str) and is_storable_text(publicid):
            self.publicid = publicid[:255]
        self.access_token_issued_at = now
        # An answer whose access token was dropped (not a bearer token) is stored expired:
        # the next use refreshes.
        lifetime = response.expires_in if response.has_access_token else 0
        self.access_token_expires_at = now + timedelta(seconds=lifetime)
        self.refresh_token_expires_at = refresh_token_expiry(now)
        self.status = self.Status.ACTIVE
        self.status_reason = ""

    def mark_reauthorization_required(self, reason: str) -> None:
        """Record that the refresh token is dead. Saves only the status columns."""
        self.status = self.Status.REAUTHORIZATION_REQUIRED
        self.status_reason = reason[:255]
        self.save(update_fields=["status", "status_reason", "updated"])

    @classmethod
    @sensitive_variables()
    def store_for_user(
        cls, user: AbstractBaseUser, response: TokenResponse, *, now: datetime | None = None
    ) -> PageroToken:
        """Create or replace ``user``'s token from a code exchange. Call inside a transaction.

        A replaced token starts afresh (no ID token or public id of the previous login is kept).
        Two logins of one user finishing at the same moment both succeed; the later one wins.
        The stored tokens are replaced without being read (or decrypted): a row whose key was
        lost is simply overwritten.
        """
        if not response.refresh_token:
            # Without a refresh token the connection would die with the access token.
            raise InvalidTokenResponse("the token response has no refresh_token")
        using = router.db_for_write(cls)
        manager = cls.objects.db_manager(using)
        current = manager.filter(user=user).without_secrets()
        token: PageroToken | None = write_locked(current).first()
        if token is None:
            # The stubs take AUTH_USER_MODEL as the test settings' User; any user model is fine.
            token = cls(user=user)  # type: ignore[misc]
            token.apply_token_response(response, now=now)
            try:
                with transaction.atomic(using=using):  # a savepoint, for the IntegrityError
                    token.save(using=using, force_insert=True)
            except IntegrityError:
                # Another login of this user inserted the row after our read: replace it.
                token = write_locked(current).get()
            else:
                return token
        token.id_token = ""
        token.publicid = ""
        token.apply_token_response(response, now=now)
        token.last_refreshed = None
        token.save(using=using)
        return token


class PageroIdentity(models.Model):
    """A Pagero user (``issuer`` and ``subject`` of a verified ``id_token``) linked to a user.

    One identity belongs to one user, and a user has at most one identity per issuer. Rows are
    written only by :meth:`link`, after an ``id_token`` was verified; never from an e-mail
    address or any other claim that a second account could also carry.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="pagero_identities",
        verbose_name=_("user"),
    )
    issuer = models.CharField(_("issuer"), max_length=255)
    subject = models.CharField(
        _("subject"),
        max_length=255,
        help_text=_("The sub claim: Pagero's identifier of the user, never reused."),
    )
    created = models.DateTimeField(_("linked"), auto_now_add=True)
    last_signed_in = models.DateTimeField(_("last signed in"), null=True, blank=True)

    class Meta:
        verbose_name = _("Pagero identity")
        verbose_name_plural = _("Pagero identities")
        ordering = ("-created",)
        constraints = [
            models.UniqueConstraint(
                fields=("issuer", "subject"), name="django_pagero_oauth_identity_unique"
            ),
            models.UniqueConstraint(
                fields=("user", "issuer"), name="django_pagero_oauth_identity_one_per_user"
            ),
        ]

    def __str__(self) -> str:
        return str(
            _("Pagero identity %(subject)s of user #%(user_id)s")
            % {"subject": self.subject, "user_id": self.user_id}
        )

    @classmethod
    def link(
        cls, user: AbstractBaseUser, *, issuer: str, subject: str
    ) -> tuple[PageroIdentity, bool]:
        """Link (issuer, subject) to ``user``; return ``(identity, created)``. Call in a transaction.

        Raises :class:`~.exceptions.IdentityRefused` when the identity belongs to another user
        (``identity_taken``) or ``user`` already has another identity of this issuer
        (``other_identity_linked``); concurrent links of one identity cannot both win.
        """
        from .exceptions import IdentityRefused

        using = router.db_for_write(cls)
        manager = cls.objects.db_manager(using)
        existing = write_locked(manager.filter(issuer=issuer, subject=subject)).first()
        if existing is None:
            try:
                with transaction.atomic(using=using):  # a savepoint, for the IntegrityError
                    return manager.create(user=user, issuer=issuer, subject=subject), True
            except IntegrityError:
                existing = manager.filter(issuer=issuer, subject=subject).first()
                if existing is None:  # the user has another identity of this issuer
                    raise IdentityRefused(error="other_identity_linked") from None
        if existing.user_id != user.pk:
            raise IdentityRefused(error="identity_taken")
        return existing, False
