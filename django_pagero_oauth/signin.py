"""'Sign in with Pagero': the callback's OpenID Connect half, and the default user factory.

:class:`SignInCallbackMixin` is mixed into :class:`~.views.CallbackView`: after the code
exchange and before anything is stored it verifies the ``id_token`` (when the flow asked for
one); inside the transaction that stores the token it finds, links or creates the user; after
the commit it logs the visitor in. The rules (:doc:`/signin`): nothing is linked or logged in
unless ``SIGN_IN_ENABLED``; a logged-in user's NEW identity is linked only once the user
confirms it with a POST (:class:`LinkIdentityView` in ``views``), never on a session alone;
an identity of another user, or a second one of the same issuer, is refused; an anonymous
visitor's identity logs its user in (an unknown one is refused, or gets a new user with
``SIGN_IN_CREATE_USERS``); an inactive user is refused; nothing is matched by e-mail address;
a password change unlinks (:func:`unlink_on_password_change`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import get_hasher, identify_hasher, is_password_usable
from django.db import IntegrityError, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.debug import sensitive_variables

from . import flows, oidc
from .conf import app_settings
from .exceptions import IdentityRefused, PageroConfigurationError
from .explain import Place, explain
from .locking import write_locked
from .models import PageroIdentity
from .oauth import TokenResponse
from .signals import identity_linked, user_signed_in

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger("django_pagero_oauth")


def login_backend() -> str | None:
    """The first of ``AUTHENTICATION_BACKENDS`` that loads users by primary key (a
    ``ModelBackend``, such as ``PageroModelBackend``): the one a signed-in session names."""
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            backend = import_string(path)
        except ImportError:
            continue
        if isinstance(backend, type) and issubclass(backend, ModelBackend):
            return str(path)
    return None


def create_user_from_claims(claims: oidc.IdTokenClaims, request: HttpRequest) -> AbstractBaseUser:
    """The default ``SIGN_IN_USER_FACTORY``: a user named ``pagero-`` and a hash of (issuer,
    subject), with an unusable password. No claim but ``sub`` is used: names and e-mail
    addresses are the user's to set, not Pagero's to impose (nor to match on)."""
    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    digest = hashlib.sha256(f"{claims.issuer}\n{claims.subject}".encode()).hexdigest()[:20]
    username = f"pagero-{digest}"
    users = user_model._default_manager.db_manager(router.db_for_write(user_model))
    for _attempt in range(5):
        if not users.filter(**{field: username}).exists():
            user = user_model(**{field: username})
            user.set_unusable_password()
            # A savepoint on the users' database: a taken name must not spoil the rest.
            with contextlib.suppress(IntegrityError), transaction.atomic(using=users.db):
                user.save()
                return user
        # Taken (by anyone, even a user who chose the name on purpose): never reuse it.
        username = f"pagero-{digest}-{secrets.token_hex(4)}"
    raise IntegrityError("no free username for a new Pagero user")


#: Session key of the identity link that waits for the user's confirmation.
PENDING_LINK_SESSION_KEY = "_pagero_oauth_pending_link"


class LinkNeedsConfirmation(Exception):
    """A sign-in flow of a logged-in user found a new identity: store nothing, ask first."""


def pending_link(request: HttpRequest, *, pop: bool = False) -> dict[str, Any] | None:
    """The identity link waiting for this user's confirmation, if it is theirs and recent.

    None, and the pending link dropped, while ``SIGN_IN_ENABLED`` is off: a link made before
    the operator switched sign-in off is never confirmed after it.
    """
    if not app_settings.SIGN_IN_ENABLED:
        request.session.pop(PENDING_LINK_SESSION_KEY, None)
        return None
    entry = (request.session.pop if pop else request.session.get)(PENDING_LINK_SESSION_KEY, None)
    if not isinstance(entry, dict) or not request.user.is_authenticated:
        return None
    fresh = time.time() - float(entry.get("created", 0)) <= app_settings.STATE_MAX_AGE
    readable = all(isinstance(entry.get(name), str) for name in ("issuer", "subject", "next_url"))
    return entry if entry.get("user_id") == str(request.user.pk) and fresh and readable else None


def unlink_on_password_change(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """``pre_save`` receiver (of every model; it keeps to the user model and its proxies):
    a new password unlinks the user's identities.

    Django ends every session of a user whose password changes (the session holds a hash of
    it); an identity linked through one of those sessions would otherwise outlive them, a
    login that survives the usual remedy for a compromised account. So a password change ends
    it too; the user links again (log in, "Sign in with Pagero", confirm). A first password of a
    user who had none (created by sign-in) keeps the identity: it is that user's way in.

    A change counts whether it came through ``set_password()`` or as a hash written to
    ``password`` and saved, also with ``update_fields=["password"]`` (imports, directory sync
    jobs, tools that write hashes, ``set_unusable_password()``): the stored hash is compared on
    every save that writes the password. Only Django's own hash upgrade keeps the identities
    (:func:`_is_hash_upgrade`). ``QuerySet.update(password=...)`` sends no signal at all, so it
    unlinks nothing: delete the identities with it.
    """
    user_model = getattr(getattr(instance, "_meta", None), "concrete_model", None)
    if raw or user_model is not get_user_model() or instance.pk is None:
        return  # not a user (of the user model or a proxy of it), or a fixture
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "password" not in update_fields:
        return  # the password is not written
    old = (
        user_model._default_manager.using(kwargs.get("using"))
        .filter(pk=instance.pk)
        .values_list("password", flat=True)
        .first()
    )
    if old is None or old == instance.password or not is_password_usable(old):
        return
    upgrade_save = update_fields == {"password"} and getattr(instance, "_password", None) is None
    if upgrade_save and _is_hash_upgrade(old, instance.password):
        return  # check_password()'s hash upgrade: the same password, re-hashed
    deleted, _rows = PageroIdentity.objects.filter(user_id=instance.pk).delete()
    if deleted:
        logger.info("Pagero identity of user #%s unlinked: the password changed", instance.pk)


def _is_hash_upgrade(old: str, new: str) -> bool:
    """Whether ``old`` -> ``new`` is what ``check_password()`` does when it re-hashes.

    Django upgrades a hash only when it is outdated (another hasher than the preferred one, or
    the preferred one's ``must_update()``: fewer iterations, a changed cost) and writes one of
    the preferred hasher, up to date. A hash written by anything else (a current hash replaced
    by another current hash, an unusable password) is a password change. The upgrade's save
    carries no raw password, so the one case this cannot tell apart is a tool that writes a
    current hash over an outdated one with ``update_fields=["password"]``, and no
    ``set_password()``, in the same save.
    """
    try:
        old_hasher = identify_hasher(old)
        new_hasher = identify_hasher(new)
    except ValueError:  # unusable or unknown: never what an upgrade writes
        return False
    preferred = get_hasher("default")
    outdated = old_hasher.algorithm != preferred.algorithm or preferred.must_update(old)
    current = new_hasher.algorithm == preferred.algorithm and not preferred.must_update(new)
    return outdated and current


@dataclass(frozen=True)
class SignInOutcome:
    """What the callback's OpenID Connect half decided inside the token's transaction, acted on
    once the token is committed (:meth:`SignInCallbackMixin.finish_sign_in`)."""

    #: Whose token this is: the logged-in user, or the verified identity's.
    user: Any
    #: The user's identity of this issuer, when it is (or becomes) linked.
    identity: PageroIdentity | None = None
    #: ``identity`` was linked by this callback (``identity_linked`` is sent).
    newly_linked: bool = False
    #: ``user`` was created by this callback (``SIGN_IN_CREATE_USERS``).
    created_user: bool = False
    #: Log the visitor in as ``user`` (a sign-in flow of an anonymous visitor).
    logs_in: bool = False
    #: A new identity of the logged-in user: linked only once they confirm it.
    link_pending: bool = False


def _identities() -> Any:
    """Identities, read where they are written: a lagging read replica may still hold an
    identity the primary unlinked (which would sign in, and be linked again for good)."""
    return PageroIdentity.objects.db_manager(router.db_for_write(PageroIdentity))


class SignInCallbackMixin:
    """The OpenID Connect steps of the callback, as hook methods a project can override."""

    request: HttpRequest
    identity_refused_template_name = "django_pagero_oauth/identity_refused.html"

    @sensitive_variables()
    def verify_id_token(
        self, flow: flows.Flow, response: TokenResponse
    ) -> tuple[TokenResponse, oidc.IdTokenClaims | None]:
        """OpenID Connect Core 3.1.3.7, before anything is stored: what to store, and the
        verified claims.

        A flow that sent no ``nonce`` did not ask for an ``id_token``: one that comes anyway
        is dropped, unverified and unused.
        """
        if flow.nonce is None:
            return (replace(response, id_token="") if response.id_token else response), None
        verified = oidc.verify_id_token(
            response.id_token, nonce=flow.nonce, access_token=response.access_token
        )
        return response, verified

    def get_token_user(
        self, flow: flows.Flow, verified: oidc.IdTokenClaims | None
    ) -> SignInOutcome:
        """Whose token this is, and what follows the commit. In the token's transaction, so
        that a refusal stores nothing."""
        if verified is None:
            return SignInOutcome(user=self.request.user)
        if not app_settings.SIGN_IN_ENABLED:
            if flow.sign_in:  # started before sign-in was switched off
                raise IdentityRefused(error="sign_in_disabled")
            # A connect with openid: verified, nothing linked.
            return SignInOutcome(user=self.request.user)
        # First statement of the transaction: SQLite's write lock before any read (elsewhere the
        # unique constraints decide between concurrent links; the queryset is not read here).
        write_locked(_identities().filter(issuer=verified.issuer, subject=verified.subject))
        if flow.user_id:
            return self.connect_identity(flow, verified)
        return self.sign_in_identity(verified)

    def connect_identity(self, flow: flows.Flow, verified: oidc.IdTokenClaims) -> SignInOutcome:
        """A logged-in user's flow: the identity is theirs already, or a new link they confirm
        first. Refused when it is another user's, or the user has another of this issuer."""
        user: Any = self.request.user
        identity = _identities().filter(issuer=verified.issuer, subject=verified.subject).first()
        if identity is not None and identity.user_id != user.pk:
            raise IdentityRefused(error="identity_taken")
        if identity is not None:
            return SignInOutcome(user=user, identity=identity)
        if _identities().filter(user_id=user.pk, issuer=verified.issuer).exists():
            raise IdentityRefused(error="other_identity_linked")
        if flow.sign_in:
            raise LinkNeedsConfirmation  # nothing is stored before the user confirms
        # A connect stores its token; the link waits for the user.
        return SignInOutcome(user=user, link_pending=True)

    def sign_in_identity(self, verified: oidc.IdTokenClaims) -> SignInOutcome:
        """An anonymous visitor's flow: the identity's user, or a new one with
        ``SIGN_IN_CREATE_USERS``, logged in after the commit unless inactive."""
        backend = login_backend()
        if backend is None:
            raise PageroConfigurationError("no AUTHENTICATION_BACKENDS entry can sign users in")
        identity = (
            _identities()
            .select_related("user")
            .filter(issuer=verified.issuer, subject=verified.subject)
            .first()
        )
        user: Any
        if identity is not None:
            user, created = identity.user, False
        elif app_settings.SIGN_IN_CREATE_USERS:
            user, created = self.create_user(verified), True
        else:
            raise IdentityRefused(error="unknown_identity")
        if not load_backend(backend).user_can_authenticate(user):  # type: ignore[attr-defined]
            raise IdentityRefused(error="inactive_user")
        user.backend = backend
        identity, newly_linked = PageroIdentity.link(
            user, issuer=verified.issuer, subject=verified.subject
        )
        identity.last_signed_in = timezone.now()
        identity.save(update_fields=["last_signed_in"])
        return SignInOutcome(user, identity, newly_linked, created, logs_in=True)

    def create_user(self, verified: oidc.IdTokenClaims) -> Any:
        """A new user for an unknown identity, from ``SIGN_IN_USER_FACTORY``."""
        factory = import_string(app_settings.SIGN_IN_USER_FACTORY)
        return factory(verified, self.request)

    def finish_sign_in(self, outcome: SignInOutcome) -> None:
        """After the commit: send ``identity_linked`` for a new link, and log a signing-in
        visitor in (a new session key)."""
        user = outcome.user
        if outcome.newly_linked:
            logger.info("Pagero identity linked to user #%s", user.pk)
            identity_linked.send(
                PageroIdentity,
                identity=outcome.identity,
                user=user,
                request=self.request,
                created_user=outcome.created_user,
            )
        if outcome.logs_in:
            auth.login(self.request, user, backend=user.backend)  # rotates the session key
            logger.info("User #%s signed in with Pagero", user.pk)
            user_signed_in.send(
                PageroIdentity, identity=outcome.identity, user=user, request=self.request
            )

    def confirm_link(self, flow: flows.Flow, verified: oidc.IdTokenClaims | None) -> HttpResponse:
        """Ask the logged-in user to confirm the new identity (``pagero_oauth:link_identity``),
        kept in the session until then: the identity, never a token. Only a verified identity
        waits for a link: ``verified`` is set."""
        claims = cast(oidc.IdTokenClaims, verified)
        self.request.session[PENDING_LINK_SESSION_KEY] = {
            "issuer": claims.issuer,
            "subject": claims.subject,
            "user_id": str(self.request.user.pk),
            "next_url": flow.next_url,
            "created": time.time(),
        }
        return HttpResponseRedirect(reverse("pagero_oauth:link_identity"))

    def identity_refused(
        self, exc: IdentityRefused, verified: oidc.IdTokenClaims | None
    ) -> HttpResponse:
        """The refusal page (403): why the identity may not be used and how to go on; nothing
        was stored."""
        request = self.request
        logger.warning(
            "Pagero identity refused (%s): issuer %r, subject %r, user #%s",
            exc.error,
            verified.issuer if verified else "",
            verified.subject if verified else "",
            request.user.pk,
        )
        link_url = ""
        if exc.error == "unknown_identity":
            sign_in = urlencode({"next": reverse("pagero_oauth:sign_in")})
            link_url = f"{resolve_url(settings.LOGIN_URL)}?{sign_in}"
        context = {"message": explain(Place.LOGIN, exc), "reason": exc.error, "link_url": link_url}
        response = TemplateResponse(
            request, self.identity_refused_template_name, context, status=403
        )
        # Mostly answered at the callback's URL, which holds the code; the page has no form.
        response["Referrer-Policy"] = "no-referrer"
        return response
