"""'Sign in with Pagero': the callback's OpenID Connect half, and the default user factory.

:class:`SignInCallbackMixin` is mixed into :class:`~.views.CallbackView`. After the code
exchange and before anything is stored it verifies the ``id_token`` (when the flow asked for
one); inside the transaction that stores the token it finds, links or creates the user; after
the commit it logs the visitor in. The rules, in the order they apply:

- a flow started by a logged-in user links the identity to that user (refused when it belongs
  to another user, or the user has another identity of this issuer);
- a flow started anonymously logs in the identity's user; an unknown identity is refused, or
  with ``SIGN_IN_CREATE_USERS`` gets a new user from ``SIGN_IN_USER_FACTORY``;
- an inactive user is refused. Nothing is ever matched by e-mail address.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model, load_backend
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from . import flows, oidc
from .conf import app_settings
from .exceptions import IdentityRefused, PageroConfigurationError
from .explain import Place, explain
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
    for _attempt in range(5):
        if not user_model._default_manager.filter(**{field: username}).exists():
            user = user_model(**{field: username})
            user.set_unusable_password()
            try:
                with transaction.atomic():  # a savepoint: a taken name must not spoil the rest
                    user.save()
            except IntegrityError:
                pass
            else:
                return user
        # Taken (by anyone, even a user who chose the name on purpose): never reuse it.
        username = f"pagero-{digest}-{secrets.token_hex(4)}"
    raise IntegrityError("no free username for a new Pagero user")


class SignInCallbackMixin:
    """The OpenID Connect steps of the callback, as hook methods a project can override."""

    request: HttpRequest
    identity_refused_template_name = "django_pagero_oauth/identity_refused.html"
    #: The verified ``id_token`` of this callback, when the flow asked for one.
    verified: oidc.IdTokenClaims | None = None
    identity: PageroIdentity | None = None
    identity_newly_linked = False
    created_user = False
    #: The user to log in once the token is committed (sign-in flows only).
    sign_in_user: Any = None

    def verify_id_token(self, flow: flows.Flow, response: TokenResponse) -> TokenResponse:
        """OpenID Connect Core 3.1.3.7, before anything is stored; returns what to store.

        A flow that sent no ``nonce`` did not ask for an ``id_token``: one that comes anyway
        is dropped, unverified and unused.
        """
        if flow.nonce is None:
            return replace(response, id_token="") if response.id_token else response
        self.verified = oidc.verify_id_token(
            response.id_token, nonce=flow.nonce, access_token=response.access_token
        )
        return response

    def get_token_user(self, flow: flows.Flow) -> Any:
        """Whose token this is: the logged-in user, or the verified identity's. In the
        token's transaction, so that a refusal stores nothing."""
        verified = self.verified
        if verified is None:
            return self.request.user
        # First statement of the transaction: on SQLite, the write lock before any read.
        PageroIdentity.take_write_lock(issuer=verified.issuer, subject=verified.subject)
        user: Any
        if flow.user_id:  # a logged-in user connects: link the identity to them
            user = self.request.user
        else:
            backend = login_backend()
            if backend is None:
                raise PageroConfigurationError("no AUTHENTICATION_BACKENDS entry can sign users in")
            identity = (
                PageroIdentity.objects.select_related("user")
                .filter(issuer=verified.issuer, subject=verified.subject)
                .first()
            )
            if identity is not None:
                user = identity.user
            elif app_settings.SIGN_IN_CREATE_USERS:
                user = self.create_user(verified)
                self.created_user = True
            else:
                raise IdentityRefused(error="unknown_identity")
            if not load_backend(backend).user_can_authenticate(user):  # type: ignore[attr-defined]
                raise IdentityRefused(error="inactive_user")
            user.backend = backend
            self.sign_in_user = user
        self.identity, self.identity_newly_linked = PageroIdentity.link(
            user, issuer=verified.issuer, subject=verified.subject
        )
        if self.sign_in_user is not None:
            self.identity.last_signed_in = timezone.now()
            self.identity.save(update_fields=["last_signed_in"])
        return user

    def create_user(self, verified: oidc.IdTokenClaims) -> Any:
        """A new user for an unknown identity, from ``SIGN_IN_USER_FACTORY``."""
        factory = import_string(app_settings.SIGN_IN_USER_FACTORY)
        return factory(verified, self.request)

    def finish_sign_in(self) -> None:
        """After the commit: log the visitor in (a new session key) and send the signals."""
        identity = self.identity
        if identity is None:
            return
        user: Any = self.sign_in_user or self.request.user
        if self.identity_newly_linked:
            logger.info("Pagero identity linked to user #%s", user.pk)
            identity_linked.send(
                PageroIdentity,
                identity=identity,
                user=user,
                request=self.request,
                created_user=self.created_user,
            )
        if self.sign_in_user is not None:
            auth.login(self.request, user, backend=user.backend)  # rotates the session key
            logger.info("User #%s signed in with Pagero", user.pk)
            user_signed_in.send(PageroIdentity, identity=identity, user=user, request=self.request)

    def identity_refused(self, exc: IdentityRefused) -> HttpResponse:
        """The identity may not be used: say why and how to go on; nothing was stored."""
        verified = self.verified
        logger.warning(
            "Pagero identity refused (%s): issuer %r, subject %r, user #%s",
            exc.error,
            verified.issuer if verified else "",
            verified.subject if verified else "",
            self.request.user.pk,
        )
        message = explain(Place.LOGIN, exc)
        link_url = ""
        if exc.error == "unknown_identity":
            link_url = (
                f"{resolve_url(settings.LOGIN_URL)}?"
                f"{urlencode({'next': reverse('pagero_oauth:sign_in')})}"
            )
        response = TemplateResponse(
            self.request,
            self.identity_refused_template_name,
            {"message": message, "reason": exc.error, "link_url": link_url},
            status=403,
        )
        response["Referrer-Policy"] = "no-referrer"
        return response
