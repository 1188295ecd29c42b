"""``PageroTokenRequiredMixin`` for class-based views (sync and async)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from .exceptions import PageroOAuthError
from .guard import EVERY_DATABASE, GUARDS_APPLIED, arun_guarded, handle_missing_token, run_guarded


class PageroTokenRequiredMixin:
    """Dispatch only with a valid Pagero token in ``request.pagero_token``.

    Override :meth:`handle_no_pagero_token` to answer differently for one view; it also answers
    ``PageroAuthorizationRequired`` and ``PageroUnavailable`` raised by the view itself.
    Put it first among the bases (like Django's ``LoginRequiredMixin``). Under
    ``ATOMIC_REQUESTS`` the token is resolved before the request's transaction begins (as with
    the decorator), unless a subclass overrides ``dispatch``.
    """

    view_is_async: bool

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """Django's ``as_view()``; the view is counted as guarded (check ``I001``)."""
        GUARDS_APPLIED.add("mixin")
        return super().as_view(**initkwargs)  # type: ignore[misc]

    def handle_no_pagero_token(
        self, request: HttpRequest, exc: PageroOAuthError | None
    ) -> HttpResponse:
        return handle_missing_token(request, exc)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        parent = super().dispatch  # type: ignore[misc]
        handler = self.handle_no_pagero_token
        if self.view_is_async:
            return arun_guarded(request, handler, parent, args, kwargs)
        return run_guarded(request, handler, parent, (), args, kwargs)

    # View.as_view() copies this onto the view function: Django's handler leaves the
    # ATOMIC_REQUESTS transactions to dispatch, which opens them after resolving the token.
    dispatch._non_atomic_requests = EVERY_DATABASE  # type: ignore[attr-defined]
