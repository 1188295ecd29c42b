"""Views the tests protect in every supported way."""

from __future__ import annotations

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
    response = get_client(request.user).get("v1/me")  # type: ignore[arg-type]
    return JsonResponse({"status": response.status_code, "body": response.json()})
