"""What a protected view answers when its user has no valid Pagero token.

The decorator, the mixin and the middleware all call :func:`resolve_token` (or
:func:`aresolve_token`) before the view, and answer in the same way when the view itself
raises one of :data:`GUARDED_ERRORS` (its API call found the connection dead, or Pagero
unreachable): none of them decides anything on its own. An anonymous user goes to
``settings.LOGIN_URL``, a user without a usable connection to ``pagero_oauth:login`` (401 JSON
for JSON or non-GET requests), and Pagero unavailable or this site's client credentials
rejected is a 503 with ``Retry-After``: the whole table is in :doc:`/protecting-views`.

A project changes this with ``PAGERO_OAUTH["RESPONSE_HANDLER"]`` (dotted path to a callable
``(request, exc) -> HttpResponse``, where ``exc`` is None for an anonymous user), or per view by
overriding ``PageroTokenRequiredMixin.handle_no_pagero_token``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.contrib.auth.views import redirect_to_login
from django.db import InterfaceError, OperationalError, connections, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.module_loading import import_string

from .conf import app_settings
from .exceptions import (
    SERVICE_ERRORS,
    PageroAuthorizationRequired,
    PageroOAuthError,
    TransactionEnded,
)
from .tokens import aget_valid_token, get_valid_token

if TYPE_CHECKING:
    from .models import PageroToken

logger = logging.getLogger("django_pagero_oauth")

ResponseHandler = Callable[[HttpRequest, "PageroOAuthError | None"], HttpResponse]

#: The errors the guard answers, before the view (resolving the token) and raised by it (an API
#: call whose forced refresh got ``invalid_grant``, Pagero unreachable): no usable connection,
#: or Pagero unusable for now. Any other exception of a view propagates untouched.
GUARDED_ERRORS: tuple[type[PageroOAuthError], ...] = (PageroAuthorizationRequired, *SERVICE_ERRORS)

#: The front ends of the guard applied in this process, read by check I001 once the URLconf is
#: loaded: ``"decorator"`` when it wraps a view, ``"mixin"`` when ``as_view()`` makes a view of
#: a class with it, ``"HasPageroToken"`` when the DRF permission is imported.
GUARDS_APPLIED: set[str] = set()


def answers(exc: BaseException, request: HttpRequest) -> TypeGuard[PageroOAuthError]:
    """Whether the guard answers ``exc``, raised by a protected view: a
    :data:`GUARDED_ERRORS` that is not a :class:`PageroAuthorizationRequired` about another
    user's connection (that one propagates: a 403, not "log in at Pagero", for the visitor's
    own connection is fine). Service errors are answered whoever's connection they are about:
    Pagero that cannot be used is the same for every connection."""
    if isinstance(exc, PageroAuthorizationRequired) and exc.user_pk is not None:
        user = getattr(request, "user", None)
        return bool(exc.user_pk == getattr(user, "pk", None))
    return isinstance(exc, GUARDED_ERRORS)


def wants_json(request: HttpRequest) -> bool:
    """True for XHR/fetch callers that should get JSON rather than a redirect."""
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    if "application/json" not in request.headers.get("Accept", ""):
        return False
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def pagero_login_url(request: HttpRequest) -> str:
    """The URL that starts a Pagero login and comes back to this request's page."""
    return f"{reverse('pagero_oauth:login')}?{urlencode({'next': request.get_full_path()})}"


def default_response(request: HttpRequest, exc: PageroOAuthError | None) -> HttpResponse:
    """The built-in answer; see the module docstring."""
    json_wanted = wants_json(request) or request.method not in ("GET", "HEAD")
    if isinstance(exc, SERVICE_ERRORS):
        retry_after = exc.retry_after or app_settings.UNAVAILABLE_RETRY_AFTER
        response: HttpResponse
        if json_wanted:
            response = JsonResponse(
                {"error": "pagero_unavailable", "retry_after": retry_after}, status=503
            )
        else:
            # Rendered here: a middleware's answer is never rendered by Django's handler.
            response = render(
                request,
                "django_pagero_oauth/unavailable.html",
                {"retry_after": retry_after},
                status=503,
            )
        response["Retry-After"] = str(retry_after)
        return response
    if exc is None:
        redirect = redirect_to_login(request.get_full_path())
    else:
        redirect = HttpResponseRedirect(pagero_login_url(request))
    if json_wanted:
        error = "login_required" if exc is None else "pagero_authorization_required"
        return JsonResponse({"error": error, "login_url": redirect["Location"]}, status=401)
    return redirect


def handle_missing_token(request: HttpRequest, exc: PageroOAuthError | None) -> HttpResponse:
    """Answer for a request that has no valid token (``exc`` None: the user is anonymous)."""
    path = app_settings.RESPONSE_HANDLER
    handler: ResponseHandler = import_string(path) if path else default_response
    return handler(request, exc)


def resolve_token(
    request: HttpRequest, handler: ResponseHandler | None = None
) -> PageroToken | HttpResponse:
    """The request user's valid token (also set as ``request.pagero_token``), or the answer."""
    handler = handler or handle_missing_token
    if not request.user.is_authenticated:
        return handler(request, None)
    try:
        token = get_valid_token(request.user)
    except GUARDED_ERRORS as exc:
        return handler(request, exc)
    request.pagero_token = token  # type: ignore[attr-defined]
    return token


async def aresolve_token(
    request: HttpRequest, handler: ResponseHandler | None = None
) -> PageroToken | HttpResponse:
    """:func:`resolve_token` for async views.

    A refresh runs on a thread and a database connection of its own
    (:func:`~django_pagero_oauth.tokens.aget_valid_token`), not in Django's shared sync thread.
    """
    handler = handler or handle_missing_token
    auser = getattr(request, "auser", None)
    user = await auser() if auser is not None else request.user
    if not user.is_authenticated:
        return await sync_to_async(handler, thread_sensitive=True)(request, None)
    try:
        token = await aget_valid_token(user)
    except GUARDED_ERRORS as exc:
        return await sync_to_async(handler, thread_sensitive=True)(request, exc)
    request.pagero_token = token  # type: ignore[attr-defined]
    return token


def run_guarded(
    request: HttpRequest,
    handler: ResponseHandler | None,
    view: Callable[..., Any],
    non_atomic: Container[str],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``view(request, *args, **kwargs)`` with a valid token, else the guard's answer.

    The token is resolved first (:func:`resolve_token`); the view then runs in the request's
    transactions (:func:`call_in_request_transactions`). One of :data:`GUARDED_ERRORS` raised
    by the view gets the same answer as before it, and the view's writes are rolled back.
    """
    handler = handler or handle_missing_token
    result = resolve_token(request, handler)
    if isinstance(result, HttpResponse):
        return result
    try:
        return call_in_request_transactions(request, view, non_atomic, request, *args, **kwargs)
    except GUARDED_ERRORS as exc:
        if not answers(exc, request):
            raise
        roll_back_the_handlers_transactions(request)
        return handler(request, exc)


def roll_back_the_handlers_transactions(request: HttpRequest) -> None:
    """The view raised, but its answer is a response: the ``ATOMIC_REQUESTS`` transactions that
    Django's handler opened around the guard (when the view's ``_non_atomic_requests`` is not
    :data:`EVERY_DATABASE`) must roll back, as they would have for the exception. Those the
    guard opened itself were left by the exception and rolled back already."""
    resolved = getattr(getattr(request, "resolver_match", None), "func", None)
    non_atomic: Container[str] = getattr(resolved, "_non_atomic_requests", frozenset())
    if resolved is None or non_atomic is EVERY_DATABASE:
        return
    for alias in _request_transactions(non_atomic):
        if connections[alias].in_atomic_block:
            transaction.set_rollback(True, using=alias)


def _request_transactions(non_atomic: Container[str]) -> list[str]:
    """The databases whose ``ATOMIC_REQUESTS`` wraps a view, but those in ``non_atomic``."""
    return [
        alias
        for alias, settings_dict in connections.settings.items()
        if settings_dict.get("ATOMIC_REQUESTS") and alias not in non_atomic
    ]


async def arun_guarded(
    request: HttpRequest,
    handler: ResponseHandler | None,
    view: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """:func:`run_guarded` for async views (Django refuses ``ATOMIC_REQUESTS`` for them)."""
    handler = handler or handle_missing_token
    result = await aresolve_token(request, handler)
    if isinstance(result, HttpResponse):
        return result
    try:
        return await view(request, *args, **kwargs)
    except GUARDED_ERRORS as exc:
        # request.user may still be lazy: reading its pk may query the database.
        if not await sync_to_async(answers, thread_sensitive=True)(exc, request):
            raise
        return await sync_to_async(handler, thread_sensitive=True)(request, exc)


class _EveryDatabase(frozenset):  # type: ignore[type-arg]
    """The ``_non_atomic_requests`` of a protected view: "do not wrap me, I wrap myself".

    Django's handler wraps a view in ``atomic()`` for each database with ``ATOMIC_REQUESTS``
    unless the alias is in the view's ``_non_atomic_requests``; this set contains every alias.
    A plain set (e.g. after ``transaction.non_atomic_requests`` added an alias) has no such
    meaning, and then the handler's wrapping applies as usual.
    """

    def __contains__(self, alias: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "EVERY_DATABASE"


#: Set as ``_non_atomic_requests`` on the views the decorator and the mixin protect.
EVERY_DATABASE = _EveryDatabase()


def call_in_request_transactions(
    request: HttpRequest,
    view: Callable[..., Any],
    non_atomic: Container[str],
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Call ``view`` inside the ``ATOMIC_REQUESTS`` transactions Django left to the guard.

    The token is resolved (and refreshed) *before* the request's transactions begin, so on
    every database the refresh is committed on its own and the view keeps its atomicity. Only
    when the handler really skipped the view (it found :data:`EVERY_DATABASE` on it) are the
    transactions opened here, except for the aliases in ``non_atomic`` (the view's own
    ``transaction.non_atomic_requests``). If the database ends one of them while the view runs
    (``OperationalError``, ``InterfaceError``), the answer is the 503 of
    :class:`~.exceptions.TransactionEnded`, not a server error.
    """
    resolved = getattr(getattr(request, "resolver_match", None), "func", None)
    skipped = getattr(resolved, "_non_atomic_requests", None) is EVERY_DATABASE
    opened = _request_transactions(non_atomic) if skipped else []
    for alias in opened:
        view = transaction.atomic(using=alias)(view)
    if not opened:
        return view(*args, **kwargs)
    try:
        return view(*args, **kwargs)
    except DATABASE_ERRORS as exc:
        return transaction_ended(request, exc)


#: What the database raises when it ends a request's transaction under it (a terminated
#: backend, a failover, a serialization failure, a timeout).
DATABASE_ERRORS = (OperationalError, InterfaceError)


def transaction_ended(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The answer to a request whose transaction the database ended: nothing of the view was
    committed, so "not now" (the 503 of :class:`~.exceptions.TransactionEnded`, as for an
    unavailable Pagero) rather than a server error. The error is logged with its traceback."""
    logger.warning(
        "The request's transaction ended in the database: %s", type(exc).__name__, exc_info=exc
    )
    return handle_missing_token(
        request, TransactionEnded("the database ended the request's transaction; try again")
    )


__all__ = [
    "DATABASE_ERRORS",
    "EVERY_DATABASE",
    "GUARDED_ERRORS",
    "GUARDS_APPLIED",
    "aresolve_token",
    "arun_guarded",
    "call_in_request_transactions",
    "default_response",
    "handle_missing_token",
    "pagero_login_url",
    "resolve_token",
    "run_guarded",
    "transaction_ended",
    "wants_json",
]
