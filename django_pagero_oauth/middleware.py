"""``PageroTokenMiddleware``: ``request.pagero_token`` everywhere, enforced on some paths.

- Every request gets ``request.pagero_token``, a lazy object: no query unless it is used. It
  evaluates to the user's valid token, or ``None`` when the user has no usable connection
  (``PageroUnavailable`` propagates). In async views, ``await aget_valid_token(request.user)``.
- Paths matching ``PROTECTED_PATHS`` (regexes, ``re.match`` against ``request.path_info``)
  require a valid token, answered by :mod:`django_pagero_oauth.guard` otherwise. The app's own
  login, callback and disconnect URLs are never enforced.

Must come after ``AuthenticationMiddleware`` (system check ``django_pagero_oauth.E003``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject

from .conf import app_settings
from .exceptions import PageroAuthorizationRequired
from .guard import resolve_token
from .models import PageroToken
from .tokens import get_valid_token


def _token_or_none(request: HttpRequest) -> PageroToken | None:
    try:
        return get_valid_token(request.user)
    except PageroAuthorizationRequired:
        return None


@lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(pattern) for pattern in patterns)


def _own_paths() -> set[str]:
    paths = set()
    for name in ("login", "callback", "disconnect"):
        with contextlib.suppress(NoReverseMatch):
            paths.add(reverse(f"pagero_oauth:{name}"))
    return paths


def is_protected(request: HttpRequest) -> bool:
    patterns = _compiled(tuple(app_settings.PROTECTED_PATHS))
    if not patterns or not any(pattern.match(request.path_info) for pattern in patterns):
        return False
    return request.path not in _own_paths()


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
        request.pagero_token = SimpleLazyObject(lambda: _token_or_none(request))  # type: ignore[attr-defined]
        if is_protected(request):
            result = resolve_token(request)
            if isinstance(result, HttpResponse):
                return result
        return self.get_response(request)  # type: ignore[no-any-return]

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        request.pagero_token = SimpleLazyObject(lambda: _token_or_none(request))  # type: ignore[attr-defined]
        if is_protected(request):
            result = await sync_to_async(resolve_token, thread_sensitive=True)(request)
            if isinstance(result, HttpResponse):
                return result
        return await self.get_response(request)  # type: ignore[no-any-return]
