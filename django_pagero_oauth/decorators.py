"""``@pagero_token_required``: the view runs only with a valid token in ``request.pagero_token``."""

from __future__ import annotations

from collections.abc import Callable, Container
from functools import wraps
from typing import Any, TypeVar, overload

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest

from .guard import EVERY_DATABASE, GUARDS_APPLIED, ResponseHandler, arun_guarded, run_guarded

View = TypeVar("View", bound=Callable[..., Any])


@overload
def pagero_token_required(view: View) -> View: ...


@overload
def pagero_token_required(
    view: None = None, *, response_handler: ResponseHandler | None = None
) -> Callable[[View], View]: ...


def pagero_token_required(
    view: View | None = None, *, response_handler: ResponseHandler | None = None
) -> View | Callable[[View], View]:
    """Require a valid Pagero token; works on sync and async function views.

    Without one, the answer comes from :mod:`django_pagero_oauth.guard` (or from
    ``response_handler``, a callable ``(request, exc) -> HttpResponse``). The view gets the
    same answer when it raises ``PageroAuthorizationRequired`` (its API call found the
    connection revoked) or ``PageroUnavailable``; other exceptions propagate.

    Under ``ATOMIC_REQUESTS`` the token is resolved before the request's transaction begins
    and the view runs inside it as usual: a refresh is never part of a transaction that may
    roll back.
    """

    def decorator(view_func: View) -> View:
        GUARDS_APPLIED.add("decorator")
        if iscoroutinefunction(view_func):

            @wraps(view_func)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                return await arun_guarded(request, response_handler, view_func, args, kwargs)

            return async_wrapper  # type: ignore[return-value]

        non_atomic: Container[str] = getattr(view_func, "_non_atomic_requests", frozenset())

        @wraps(view_func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return run_guarded(request, response_handler, view_func, non_atomic, args, kwargs)

        wrapper._non_atomic_requests = EVERY_DATABASE  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator(view) if view is not None else decorator
