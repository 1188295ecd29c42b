"""``PageroTokenRequiredMixin`` for class-based views (sync and async)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from .exceptions import PageroOAuthError
from .guard import (
    EVERY_DATABASE,
    aresolve_token,
    call_in_request_transactions,
    handle_missing_token,
    resolve_token,
)


class PageroTokenRequiredMixin:
    """Dispatch only with a valid Pagero token in ``request.pagero_token``.

    Override :meth:`handle_no_pagero_token` to answer differently for one view.
    Put it first among the bases (like Django's ``LoginRequiredMixin``). Under
    ``ATOMIC_REQUESTS`` the token is resolved before the request's transaction begins (as with
    the decorator), unless a subclass overrides ``dispatch``.
    """

    view_is_async: bool

    def handle_no_pagero_token(
        self, request: HttpRequest, exc: PageroOAuthError | None
    ) -> HttpResponse:
        return handle_missing_token(request, exc)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        parent = super().dispatch  # type: ignore[misc]
        if self.view_is_async:

            async def async_dispatch() -> Any:
                result = await aresolve_token(request, self.handle_no_pagero_token)
                if isinstance(result, HttpResponse):
                    return result
                return await parent(request, *args, **kwargs)

            return async_dispatch()
        result = resolve_token(request, self.handle_no_pagero_token)
        if isinstance(result, HttpResponse):
            return result
        return call_in_request_transactions(request, parent, (), request, *args, **kwargs)

    # View.as_view() copies this onto the view function: Django's handler leaves the
    # ATOMIC_REQUESTS transactions to dispatch, which opens them after resolving the token.
    dispatch._non_atomic_requests = EVERY_DATABASE  # type: ignore[attr-defined]
