"""The authorization code flow: login (step 1), callback (steps 2-3), disconnect.

Each view is small and has hook methods a project can override in a subclass.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.handlers.exception import response_for_exception
from django.db import router, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    QueryDict,
)
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_variables

from . import flows, oauth, oidc
from .conf import app_settings
from .exceptions import (
    SERVICE_ERRORS,
    CallbackError,
    IdentityRefused,
    IdTokenError,
    OAuthErrorResponse,
    PageroOAuthError,
    TokenDecryptionError,
)
from .explain import Place, explain, explain_authorization_error, status_for
from .guard import EVERY_DATABASE, roll_back_the_handlers_transactions
from .models import PageroIdentity, PageroToken
from .revocation import (
    revocable_refresh_token,
    revoke,
    revoke_after_commit,
    revoke_after_response,
    revoke_unstored,
)
from .signals import token_obtained
from .signin import LinkNeedsConfirmation, SignInCallbackMixin, SignInOutcome, pending_link

logger = logging.getLogger("django_pagero_oauth")


#: The parameters of an authorization response (RFC 6749 4.1.2, 4.1.2.1; RFC 9207 2).
RESPONSE_PARAMETERS = ("code", "state", "iss", "error", "error_description", "error_uri")

#: ``Referrer-Policy`` of every answer of the callback, whose URL holds the code and the state:
#: neither the next page nor another site learns that URL (RFC 6749 10.5, RFC 6819 4.4.1.1).
SECRET_URL_REFERRER_POLICY = "no-referrer"
#: ``Referrer-Policy`` of the views with POST forms (disconnect, link): a POST to this site
#: carries its origin (and over HTTPS a same-origin ``Referer``), which Django's CSRF check
#: requires (under ``no-referrer`` a browser sends ``Origin: null``, refused with a 403); a
#: request to another site carries no referrer at all. Their URLs hold no secret.
FORM_PAGE_REFERRER_POLICY = "same-origin"


def form_page_referrer_policy(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    """Send :data:`FORM_PAGE_REFERRER_POLICY` with ``view``'s answers, unless one has its own
    (a refusal page keeps ``no-referrer``)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Referrer-Policy", FORM_PAGE_REFERRER_POLICY)
        return response

    return wrapper


def safe_next_url(request: HttpRequest, candidate: str | None) -> str:
    """``candidate`` if it stays on this site (no open redirect), else ``LOGIN_REDIRECT_URL``.
    Stripped first, as Django's check does: what is checked is what is used."""
    candidate = (candidate or "").strip()
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(app_settings.LOGIN_REDIRECT_URL)


class LoginView(LoginRequiredMixin, View):
    """Step 1: send the logged-in user to Pagero's login page (RFC 6749 4.1.1)."""

    http_method_names = ["get", "head"]
    #: "Sign in with Pagero" (:class:`SignInView`): ask for ``openid``, log the visitor in.
    sign_in = False

    def get_redirect_uri(self) -> str:
        """The ``redirect_uri``: ``REDIRECT_URI`` if set, else this site's callback URL."""
        return app_settings.REDIRECT_URI or self.request.build_absolute_uri(
            reverse("pagero_oauth:callback")
        )

    def get_prompt(self) -> str | None:
        return "login" if self.request.GET.get("prompt") == "login" else None

    @method_decorator(never_cache)
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        flow = flows.start_flow(
            request,
            redirect_uri=self.get_redirect_uri(),
            next_url=safe_next_url(request, request.GET.get("next")),
            sign_in=self.sign_in,
        )
        url = oauth.build_authorization_url(
            redirect_uri=flow.redirect_uri,
            state=flow.state,
            code_verifier=flow.code_verifier,
            prompt=self.get_prompt(),
            nonce=flow.nonce,
            scope=oidc.authorization_scope(openid=flow.nonce is not None),
        )
        return HttpResponseRedirect(url)


class SignInView(LoginView):
    """ "Sign in with Pagero": the login flow with ``openid``, open to anonymous visitors.

    The callback verifies the ``id_token`` and logs the visitor in as the user linked to their
    Pagero identity (see :mod:`django_pagero_oauth.signin`). A logged-in user links theirs,
    after confirming it. A 404 unless ``SIGN_IN_ENABLED``: a site that only connects accounts
    has no second way to log in.
    """

    sign_in = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not app_settings.SIGN_IN_ENABLED:
            raise Http404("Sign in with Pagero is not enabled")
        # Skips LoginRequiredMixin: signing in is for visitors who are not logged in.
        return View.dispatch(self, request, *args, **kwargs)


class CallbackView(SignInCallbackMixin, View):
    """Steps 2 and 3: check the redirect back, exchange the code, store the token.

    The flow's session entry is consumed first, on every path, so a replayed callback fails.
    No token request is made unless state (and ``iss``, when ``ISSUER`` is set) check out.
    """

    http_method_names = ["get"]
    error_template_name = "django_pagero_oauth/error.html"
    #: The flow this callback completes, once its state checked out (for the failure page).
    flow: flows.Flow | None = None
    #: The redirect's query parameters as received; ``request.GET`` holds them masked.
    params: QueryDict

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        self.params = request.GET
        flows.hide_callback_secrets(request)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """Every answer at this URL, which holds the code and the state, sends
        :data:`SECRET_URL_REFERRER_POLICY`, also the page of an exception (a project's
        ``token_obtained`` receiver, a database error): Django's ``response_for_exception``
        (logging, ``got_request_exception``, ``handler403``/``handler500``) makes it here, and
        the ``ATOMIC_REQUESTS`` transactions roll back. ``process_exception`` never sees it."""
        try:
            response = super().dispatch(request, *args, **kwargs)
        except Exception as exc:
            roll_back_the_handlers_transactions(request)
            response = response_for_exception(request, exc)
        response["Referrer-Policy"] = SECRET_URL_REFERRER_POLICY
        return response

    @method_decorator(never_cache)
    @sensitive_variables("params", "code", "flow")
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        params = self.params
        repeated = [name for name in RESPONSE_PARAMETERS if len(params.getlist(name)) > 1]
        if repeated:
            # RFC 6749 3.1: no parameter may appear twice; which "iss" or "code" would count?
            # Every state named is spent all the same.
            for state in params.getlist("state"):
                with contextlib.suppress(CallbackError):
                    flows.pop_flow(request, state)
            logger.warning("Pagero callback rejected: repeated parameter %s", repeated[0])
            return self.failure(_("The answer from Pagero is malformed."), status=400)
        try:
            flow = self.flow = flows.pop_flow(request, params.get("state"))
        except CallbackError as exc:
            logger.warning("Pagero callback rejected: %s", exc.error)
            return self.failure(exc.description, status=400)
        if app_settings.ISSUER and params.get("iss") != app_settings.ISSUER:
            # RFC 9207 2.4: exact string comparison, error responses included; a missing iss
            # is a mismatch too.
            logger.warning("Pagero callback rejected: iss does not match ISSUER")
            return self.failure(
                _("The answer did not come from the expected Pagero server."), status=400
            )
        if "error" in params:
            return self.authorization_error(params.get("error", ""))
        code = params.get("code")
        if not code:
            return self.failure(_("The answer from Pagero has no authorization code."), status=400)
        return self.exchange(flow, code)

    @sensitive_variables("code", "flow", "obtained", "response", "token")
    def exchange(self, flow: flows.Flow, code: str) -> HttpResponse:
        """Step 3: exchange the code, verify the ``id_token`` (OpenID Connect) before anything
        is stored, store the token; send ``token_obtained``."""
        obtained = ""  # the refresh token of the exchange, until it is stored
        verified = None
        try:
            response = oauth.exchange_code(
                code, redirect_uri=flow.redirect_uri, code_verifier=flow.code_verifier
            )
            obtained = response.refresh_token or ""
            response, verified = self.verify_id_token(flow, response)
            token, outcome = self.store_token(flow, response, verified)
        except LinkNeedsConfirmation:
            return self.discard(obtained, self.confirm_link(flow, verified), why="link to confirm")
        except IdentityRefused as exc:
            answer = self.identity_refused(exc, verified)
            return self.discard(obtained, answer, why="identity refused")
        except (IdTokenError, OAuthErrorResponse, *SERVICE_ERRORS) as exc:
            # Whatever was obtained is stored nowhere: revoked (with REVOKE_URL) once answered.
            answer = self.failure(explain(Place.LOGIN, exc), status=status_for(Place.LOGIN, exc))
            why = "id_token refused" if isinstance(exc, IdTokenError) else "sign-in failed"
            return self.discard(obtained, answer, why=why)
        except Exception:
            # Obtained and stored nowhere (unusable ENCRYPTION_KEYS, the database, a bug): left
            # alone it would stay valid at Pagero for three years. The error goes on as it is.
            if app_settings.REVOKE_REPLACED_TOKEN:  # off: see discard()
                revoke_unstored(obtained, why="not stored")
            raise
        self.finish_sign_in(outcome)  # OpenID Connect: signals, and the login of a sign-in
        token_obtained.send(PageroToken, token=token, user=self.request.user, request=self.request)
        if outcome.link_pending:  # a connect found a new identity: the user confirms the link
            return self.confirm_link(flow, verified)
        return self.success(flow)

    @sensitive_variables("refresh_token")
    def discard(self, refresh_token: str, answer: HttpResponse, *, why: str) -> HttpResponse:
        """Nothing keeps the tokens of this exchange: revoke them at Pagero (with
        ``REVOKE_URL``) once ``answer`` is sent, so they do not stay valid for three years.

        Not with ``REVOKE_REPLACED_TOKEN`` off, the setting of a server that revokes the whole
        grant on a revocation: there it would also end a stored connection of the same Pagero
        account (the user's own, when they link their identity, or another user's). Stored
        nowhere, the tokens left valid reach nobody."""
        if app_settings.REVOKE_REPLACED_TOKEN:
            revoke_after_response(answer, refresh_token, why=why)  # nothing without a token
        return answer

    @sensitive_variables("response", "previous")
    def store_token(
        self, flow: flows.Flow, response: oauth.TokenResponse, verified: oidc.IdTokenClaims | None
    ) -> tuple[PageroToken, SignInOutcome]:
        """Create or replace the user's token atomically (with the identity, when verified).

        A replaced token that is still alive is revoked at Pagero (with ``REVOKE_URL``, unless
        ``REVOKE_REPLACED_TOKEN`` is off) once the new one is committed: a reconnect leaves no
        second valid refresh token behind.
        """
        using = router.db_for_write(PageroToken)
        with transaction.atomic(using=using):
            outcome = self.get_token_user(flow, verified)
            previous = None
            if app_settings.REVOKE_REPLACED_TOKEN:
                previous = revocable_refresh_token(outcome.user.pk, using=using)
            token = PageroToken.store_for_user(outcome.user, response)
            if previous is not None and previous[0] != response.refresh_token:
                revoke_after_commit(
                    previous[0], fingerprint=previous[1], using=using, why="reconnect"
                )
            return token, outcome

    def success(self, flow: flows.Flow) -> HttpResponse:
        return HttpResponseRedirect(safe_next_url(self.request, flow.next_url))

    def authorization_error(self, error: str) -> HttpResponse:
        """The user came back with an OAuth error (RFC 6749 4.1.2.1) instead of a code."""
        logger.info("Pagero login ended with error %r", error[:64])
        return self.failure(explain_authorization_error(error), status=400)

    def get_retry_url(self) -> str:
        """ "Try again" starts a new login that still leads to the page the user asked for."""
        sign_in = self.flow is not None and self.flow.sign_in
        retry_url = reverse("pagero_oauth:sign_in" if sign_in else "pagero_oauth:login")
        if self.flow is not None:
            retry_url = f"{retry_url}?{urlencode({'next': self.flow.next_url})}"
        return retry_url

    def failure(self, message: str, *, status: int) -> HttpResponse:
        context = {"message": message, "retry_url": self.get_retry_url()}
        return TemplateResponse(self.request, self.error_template_name, context, status=status)


@method_decorator(form_page_referrer_policy, name="dispatch")
class DisconnectView(LoginRequiredMixin, View):
    """Disconnect: revoke at Pagero (RFC 7009, when ``REVOKE_URL`` is set), delete locally.

    GET shows a confirmation form; POST (with CSRF) acts. If Pagero cannot confirm the
    revocation the token is kept and the page offers to remove it locally only.
    """

    http_method_names = ["get", "post"]
    template_name = "django_pagero_oauth/disconnect.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return super().dispatch(request, *args, **kwargs)

    # Not inside ATOMIC_REQUESTS: the revocation commits on a connection of its own (a
    # token revoked at Pagero is deleted here whatever follows), and on SQLite the request's
    # transaction, once it has read the token, would hold the lock that connection needs.
    # Nothing here needs the request's transaction: each write commits on its own.
    dispatch._non_atomic_requests = EVERY_DATABASE  # type: ignore[attr-defined]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # The encrypted columns are not loaded: a token that cannot be decrypted any more
        # (a lost key) can still be shown and removed. Read where the revocation and the
        # unlink write: a lagging read replica may not hold a connection made moments ago.
        tokens = PageroToken.objects.db_manager(router.db_for_write(PageroToken))
        identities = PageroIdentity.objects.db_manager(router.db_for_write(PageroIdentity))
        user_pk: Any = self.request.user.pk  # LoginRequiredMixin: never anonymous here
        return {
            "token": tokens.without_secrets().filter(user_id=user_pk).first(),
            "has_identity": identities.filter(user_id=user_pk).exists(),
            "next": safe_next_url(
                self.request, self.request.GET.get("next") or self.request.POST.get("next")
            ),
            "message": "",
            "revocation_failed": False,
            **kwargs,
        }

    @method_decorator(csrf_protect)
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return TemplateResponse(request, self.template_name, self.get_context_data())

    @method_decorator(csrf_protect)
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        context = self.get_context_data()
        token = context["token"]
        unlink_requested = request.POST.get("unlink_identity") == "1"
        # Asked for, it happens whatever becomes of the token (none stored, revocation failed).
        unlinked = unlink_requested and self.unlink_identities()
        result = None
        if token is not None:
            try:
                result = revoke(token, local_only=request.POST.get("local_only") == "1")
            except (PageroOAuthError, TokenDecryptionError) as exc:
                message = explain(Place.DISCONNECT, exc)
                if unlinked:
                    message = f"{message} {self.unlinked_message()}"
                context.update(
                    has_identity=context["has_identity"] and not unlinked,
                    revocation_failed=True,
                    unlink_requested=unlink_requested,
                    message=message,
                )
                return TemplateResponse(request, self.template_name, context, status=503)
        if unlinked:
            messages.success(request, self.unlinked_message(), fail_silently=True)
        if result is not None:
            if result.remote:
                text = _("Disconnected from Pagero: the connection was revoked and removed.")
            else:
                text = _("The connection was removed from this site; Pagero was not told.")
            messages.success(request, text, fail_silently=True)
        elif not unlinked:
            messages.info(
                request, _("There was no Pagero connection to remove."), fail_silently=True
            )
        return HttpResponseRedirect(context["next"])

    def unlink_identities(self) -> bool:
        """Asked for: "Sign in with Pagero" no longer logs in as this user. True when an
        identity was unlinked."""
        user_pk: Any = self.request.user.pk
        deleted, _rows = PageroIdentity.objects.filter(user_id=user_pk).delete()
        if deleted:
            logger.info("Pagero identity unlinked from user #%s", user_pk)
        return bool(deleted)

    @staticmethod
    def unlinked_message() -> str:
        return _("Your Pagero account was unlinked: “Sign in with Pagero” no longer logs you in.")


@method_decorator([form_page_referrer_policy, never_cache], name="dispatch")
class LinkIdentityView(LoginRequiredMixin, SignInCallbackMixin, View):
    """Confirm linking a new Pagero identity to the logged-in user (a POST with CSRF).

    The callback of a logged-in user's flow that found an identity not linked to anyone sends
    the user here instead of linking it (``SignInCallbackMixin.confirm_link``): "Link your Pagero
    account X to this site's account Y?". Only a POST with ``confirm`` links it (and sends
    ``identity_linked``); anything else drops the pending link. The pending link belongs to the
    user and session that started the flow and expires after ``STATE_MAX_AGE``.
    """

    http_method_names = ["get", "post"]
    template_name = "django_pagero_oauth/link_identity.html"

    @method_decorator(csrf_protect)
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        entry = pending_link(request)
        if entry is None:
            return self.nothing_to_confirm()
        context = {
            "subject": entry["subject"],
            "issuer": entry["issuer"],
            "username": request.user.get_username(),
            "next": safe_next_url(request, entry["next_url"]),
        }
        return TemplateResponse(request, self.template_name, context)

    @method_decorator(csrf_protect)
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        entry = pending_link(request, pop=True)
        if entry is None:
            return self.nothing_to_confirm()
        next_url = safe_next_url(request, entry["next_url"])
        if request.POST.get("confirm") != "1":
            messages.info(request, _("Nothing was linked."), fail_silently=True)
            return HttpResponseRedirect(next_url)
        claims = oidc.IdTokenClaims(issuer=entry["issuer"], subject=entry["subject"], claims={})
        user: Any = request.user
        try:
            with transaction.atomic(using=router.db_for_write(PageroIdentity)):
                identity, created = PageroIdentity.link(
                    user, issuer=claims.issuer, subject=claims.subject
                )
        except IdentityRefused as exc:  # the callback's refusal page, for the same reasons
            return self.identity_refused(exc, claims)
        self.finish_sign_in(SignInOutcome(user, identity, newly_linked=created))
        text = _("Your Pagero account is linked: you can now sign in with Pagero.")
        messages.success(request, text, fail_silently=True)
        return HttpResponseRedirect(next_url)

    def nothing_to_confirm(self) -> HttpResponse:
        text = _("There is no Pagero account waiting to be linked.")
        messages.info(self.request, text, fail_silently=True)
        return HttpResponseRedirect(resolve_url(app_settings.LOGIN_REDIRECT_URL))
