"""Django REST framework: ``HasPageroToken``, a permission class (the ``drf`` extra).

The view runs only with a valid token on ``request.pagero_token`` (refreshed single-flight
first when needed). Otherwise DRF's exception handling answers, so a project's
``EXCEPTION_HANDLER`` sees it: 401 with ``login_url`` when there is no usable connection, 503
with ``Retry-After`` when Pagero is unavailable (the bodies: :doc:`/protecting-views`). Once
the permission is granted, the view's own ``PageroAuthorizationRequired`` and
``PageroUnavailable`` get the same two answers through the view's ``handle_exception``; other
exceptions are untouched. An anonymous user is DRF's business (``has_permission`` is False, as
for ``IsAuthenticated``). In async views of ``adrf``, DRF's ``initial()`` runs in a worker
thread, where this synchronous, database-using check belongs.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ..conf import app_settings
from ..exceptions import PageroAuthorizationRequired, PageroOAuthError
from ..guard import GUARDED_ERRORS, GUARDS_APPLIED, answers, pagero_login_url
from ..tokens import get_valid_token

GUARDS_APPLIED.add("HasPageroToken")  # imported by a view module: check I001 counts it


class _PageroAPIException(APIException):
    """The body: ``detail``, ``error`` (the code) and what the client needs to go on;
    ``retry_after`` is also sent as ``Retry-After`` (DRF's handler sends ``wait``)."""

    def __init__(self, **more: Any) -> None:
        super().__init__()
        self.wait = more.get("retry_after")
        self.detail = {
            "detail": ErrorDetail(str(self.default_detail), self.default_code),
            "error": self.default_code,
            **more,
        }


class PageroConnectionRequired(_PageroAPIException):
    """401: the user must connect (again) to Pagero; ``login_url`` in the body says where."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = _("Connect your account to Pagero to use this API.")
    default_code = "pagero_authorization_required"


class PageroServiceUnavailable(_PageroAPIException):
    """503 with ``Retry-After``, and ``retry_after`` in the body."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("Pagero cannot be reached right now. Try again later.")
    default_code = "pagero_unavailable"


def _api_exception(exc: PageroOAuthError, request: Request) -> APIException:
    """The DRF answer for one of :data:`~django_pagero_oauth.guard.GUARDED_ERRORS`."""
    if isinstance(exc, PageroAuthorizationRequired):
        django_request: HttpRequest = request._request
        return PageroConnectionRequired(login_url=pagero_login_url(django_request))
    # PageroUnavailable, and rejected client credentials too: 503, as the guard.
    retry_after = getattr(exc, "retry_after", None) or app_settings.UNAVAILABLE_RETRY_AFTER
    return PageroServiceUnavailable(retry_after=retry_after)


def _answer_the_views_errors(view: Any, request: Request) -> None:
    """Make ``view`` (this request's instance) answer a :data:`GUARDED_ERRORS` it raises as the
    permission does, before DRF's exception handling (and a project's ``EXCEPTION_HANDLER``)."""
    handle_exception = getattr(view, "handle_exception", None)
    if handle_exception is None or getattr(handle_exception, "pagero_guarded", False):
        return

    def guarded_handle_exception(exc: Exception) -> Any:
        if answers(exc, request):
            exc = _api_exception(exc, request)
        return handle_exception(exc)

    guarded_handle_exception.pagero_guarded = True  # type: ignore[attr-defined]
    view.handle_exception = guarded_handle_exception


class HasPageroToken(BasePermission):
    """Allow only users with a valid Pagero token, and put it on ``request.pagero_token``; the
    view's own errors get the same answers (see the module's documentation)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        try:
            token = get_valid_token(user)
        except GUARDED_ERRORS as exc:
            raise _api_exception(exc, request) from None
        # On DRF's request and on Django's, which DRF's proxies to (and the middleware set).
        setattr(request, "pagero_token", token)  # noqa: B010 (not an attribute of Request)
        setattr(request._request, "pagero_token", token)  # noqa: B010
        _answer_the_views_errors(view, request)
        return True


__all__ = ["HasPageroToken", "PageroConnectionRequired", "PageroServiceUnavailable"]
