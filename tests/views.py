"""Views the tests protect in every supported way."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View

from django_pagero_oauth import get_client
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.mixins import PageroTokenRequiredMixin


def _describe(request: HttpRequest) -> JsonResponse:
    token = request.pagero_token  # type: ignore[attr-defined]
    return JsonResponse({"ok": True, "fingerprint": token.fingerprint if token else None})


@pagero_token_required
def protected(request: HttpRequest) -> HttpResponse:
    return _describe(request)


@pagero_token_required
async def protected_async(request: HttpRequest) -> HttpResponse:
    return _describe(request)


class ProtectedView(PageroTokenRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _describe(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        return _describe(request)


class ProtectedAsyncView(PageroTokenRequiredMixin, View):
    async def get(self, request: HttpRequest) -> HttpResponse:
        return _describe(request)


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain")


@pagero_token_required
def api_data(request: HttpRequest) -> HttpResponse:
    """Calls the (mock) Pagero API as the user: the whole chain, token to bearer header."""
    client = get_client(request.user, token=request.pagero_token)  # type: ignore[arg-type, attr-defined]
    response = client.get("v1/me")
    return JsonResponse({"status": response.status_code, "body": response.json()})


# --- used by test_decorators, test_mixins and test_middleware -------------------------------


def teapot_handler(request: HttpRequest, exc: object) -> HttpResponse:
    """A per-view answer for a missing token: 418 and the error code."""
    return HttpResponse(getattr(exc, "error", "anonymous"), status=418)


@pagero_token_required(response_handler=teapot_handler)
def protected_with_handler(request: HttpRequest) -> HttpResponse:
    return _describe(request)


class ProtectedAsyncPostView(PageroTokenRequiredMixin, View):
    async def post(self, request: HttpRequest) -> HttpResponse:
        return _describe(request)


class ProtectedCustomAnswerView(PageroTokenRequiredMixin, View):
    def handle_no_pagero_token(self, request: HttpRequest, exc: object) -> HttpResponse:
        return teapot_handler(request, exc)

    def get(self, request: HttpRequest) -> HttpResponse:
        return _describe(request)


def lazy_token_info(request: HttpRequest) -> HttpResponse:
    """Reads the middleware's lazy ``request.pagero_token`` only when asked to (``?use=1``)."""
    if request.GET.get("use") != "1":
        return JsonResponse({"used": False})
    return _describe(request)


async def lazy_token_info_async(request: HttpRequest) -> HttpResponse:
    token = await request.apagero_token()  # type: ignore[attr-defined]
    return JsonResponse({"ok": True, "fingerprint": token.fingerprint if token else None})


async def user_count_async(request: HttpRequest) -> HttpResponse:
    """An unrelated async view with one ORM call (tests/test_asgi_server.py)."""
    from django.contrib.auth import get_user_model

    return JsonResponse({"users": await get_user_model().objects.acount()})


@pagero_token_required
async def api_data_async(request: HttpRequest) -> HttpResponse:
    """Calls the (mock) Pagero API as the user with ``aget_client`` (test_asgi_server.py)."""
    from django_pagero_oauth import aget_client

    user = await request.auser()  # type: ignore[attr-defined]
    async with aget_client(user, token=request.pagero_token) as client:  # type: ignore[attr-defined]
        response = await client.get("v1/me")
    return JsonResponse({"status": response.status_code, "body": response.json()})


# --- used by test_guard: views that call Pagero's API, the way a project's views do ------------

#: ``?raise=<name>``: the view raises this instead of calling the API (not the guard's business).
RAISED = {
    "permission_denied": lambda: PermissionDenied("a project's own refusal"),
    "value_error": lambda: ValueError("a bug in the view"),
}


def _call_pagero(request: HttpRequest) -> HttpResponse:
    if name := request.GET.get("raise"):
        raise RAISED[name]()
    token = request.pagero_token  # type: ignore[attr-defined]
    response = get_client(request.user, token=token).get("v1/me")  # type: ignore[arg-type]
    return JsonResponse({"status": response.status_code})


async def _acall_pagero(request: HttpRequest) -> HttpResponse:
    from django_pagero_oauth import aget_client

    if name := request.GET.get("raise"):
        raise RAISED[name]()
    user = await request.auser()  # type: ignore[attr-defined]
    async with aget_client(user, token=request.pagero_token) as client:  # type: ignore[attr-defined]
        response = await client.get("v1/me")
    return JsonResponse({"status": response.status_code})


@pagero_token_required
def calls_pagero(request: HttpRequest) -> HttpResponse:
    return _call_pagero(request)


@pagero_token_required
async def calls_pagero_async(request: HttpRequest) -> HttpResponse:
    return await _acall_pagero(request)


class CallsPageroView(PageroTokenRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _call_pagero(request)


class CallsPageroAsyncView(PageroTokenRequiredMixin, View):
    async def get(self, request: HttpRequest) -> HttpResponse:
        return await _acall_pagero(request)


def calls_pagero_unguarded(request: HttpRequest) -> HttpResponse:
    """Protected by nothing but the middleware's ``PROTECTED_PATHS``."""
    return _call_pagero(request)


async def calls_pagero_unguarded_async(request: HttpRequest) -> HttpResponse:
    return await _acall_pagero(request)
