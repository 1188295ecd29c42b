"""``PageroTokenMiddleware``: ``request.pagero_token`` everywhere, enforced on some paths.

- Every request gets ``request.pagero_token``, a lazy object: no query unless it is used. It
  evaluates to the user's valid token, or to ``None`` when the user has no usable connection
  (``PageroUnavailable`` propagates). Being a proxy, test it with ``if request.pagero_token:``,
  never with ``is None``. Async views use ``await request.apagero_token()`` (like Django's
  ``request.auser()``): the lazy object would query the database from the event loop.
- Paths matching ``PROTECTED_PATHS`` (regexes, ``re.match`` against ``request.path_info``)
  require a valid token, answered by :mod:`django_pagero_oauth.guard` otherwise; their views
  get the same answer when they raise one of :data:`~django_pagero_oauth.guard.GUARDED_ERRORS`
  (``process_exception``). On any path, a view that read ``request.pagero_token`` and whose
  transaction the database then ended answers 503, not 500. The app's own login, sign-in,
  callback, link and disconnect URLs and ``settings.LOGIN_URL`` are never enforced (that would
  lock the user out of the pages that get them a token, or loop).

Must come after ``AuthenticationMiddleware`` (system check ``django_pagero_oauth.E003``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache, partial
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject, empty

from .conf import app_settings
from .exceptions import PageroAuthorizationRequired
from .guard import (
    DATABASE_ERRORS,
    answers,
    aresolve_token,
    handle_missing_token,
    resolve_token,
    transaction_ended,
)
from .models import PageroToken
from .tokens import aget_valid_token, get_valid_token


def _token_or_none(request: HttpRequest) -> PageroToken | None:
    try:
        return get_valid_token(request.user)
    except PageroAuthorizationRequired:
        return None


async def _atoken_or_none(request: HttpRequest) -> PageroToken | None:
    try:
        return await aget_valid_token(await request.auser())
    except PageroAuthorizationRequired:
        return None


def _token_was_read(request: HttpRequest) -> bool:
    lazy = getattr(request, "pagero_token", None)
    return isinstance(lazy, SimpleLazyObject) and vars(lazy).get("_wrapped", empty) is not empty


def _attach_lazy_token(request: HttpRequest) -> None:
    request.pagero_token = SimpleLazyObject(lambda: _token_or_none(request))  # type: ignore[attr-defined]
    request.apagero_token = partial(_atoken_or_none, request)  # type: ignore[attr-defined]


@lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in patterns)


def _exempt_paths() -> set[str]:
    """The app's own flow URLs and ``LOGIN_URL``: enforcing a token there would lock users out."""
    paths = set()
    for name in ("login", "sign_in", "callback", "link_identity", "disconnect"):
        with contextlib.suppress(NoReverseMatch):
            paths.add(reverse(f"pagero_oauth:{name}"))
    with contextlib.suppress(NoReverseMatch):
        login_url = urlsplit(resolve_url(settings.LOGIN_URL))
        if not login_url.netloc:
            paths.add(login_url.path)
    return paths


def is_protected(request: HttpRequest) -> bool:
    patterns = _compiled(tuple(app_settings.PROTECTED_PATHS))
    matched = any(pattern.match(request.path_info) for pattern in patterns)
    return matched and request.path not in _exempt_paths()


class PageroTokenMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        _attach_lazy_token(request)
        result = resolve_token(request) if is_protected(request) else None
        return result if isinstance(result, HttpResponse) else self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        _attach_lazy_token(request)
        result = await aresolve_token(request) if is_protected(request) else None
        return result if isinstance(result, HttpResponse) else await self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """On a protected path, the view's API call found the connection dead (or Pagero
        unusable): the answer the guard gives before the view. Anything else propagates."""
        if answers(exception, request) and is_protected(request):
            return handle_missing_token(request, exception)
        if isinstance(exception, DATABASE_ERRORS) and _token_was_read(request):
            # The view read request.pagero_token inside its ATOMIC_REQUESTS transaction (the
            # refresh, if any, committed on a connection of its own) and the database then
            # ended that transaction: a 503, as under the decorator.
            return transaction_ended(request, exception)
        return None
