"""``PageroTokenRequiredMixin`` for class-based views (sync and async)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from .exceptions import PageroOAuthError
from .guard import aresolve_token, handle_missing_token, resolve_token


class PageroTokenRequiredMixin:
    """Dispatch only with a valid Pagero token in ``request.pagero_token``.

    Override :meth:`handle_no_pagero_token` to answer differently for one view.
    Put it first among the bases (like Django's ``LoginRequiredMixin``).
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
        return parent(request, *args, **kwargs)
