"""The views the benchmarks call. Each answers the same small JSON body."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse

from django_pagero_oauth import get_client
from django_pagero_oauth.conf import app_settings
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.models import PageroToken


def _answer(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "user": request.user.pk})


def _api_answer(status: int) -> JsonResponse:
    return JsonResponse({"api_status": status}, status=200 if status == 200 else 502)


@login_required
def login_only(request: HttpRequest) -> HttpResponse:
    """The baseline: Django's own login check, nothing else."""
    return _answer(request)


@pagero_token_required
def pagero_protected(request: HttpRequest) -> HttpResponse:
    """The same view, requiring a valid Pagero token (which implies a logged-in user)."""
    return _answer(request)


@pagero_token_required
def pagero_api(request: HttpRequest) -> HttpResponse:
    """One call to Pagero's API as the user, through this package."""
    client = get_client(request.user, token=request.pagero_token)  # type: ignore[arg-type, attr-defined]
    response = client.get("v1/me")
    return _api_answer(response.status_code)


@login_required
def authlib_api(request: HttpRequest) -> HttpResponse:
    """The same call the way Django projects do it today with Authlib: refresh-on-call.

    The stored token goes into Authlib's ``OAuth2Session``, which refreshes it when it has
    expired and hands the new one to ``update_token``, which saves it (the pattern of Authlib's
    documentation). Nothing coordinates concurrent refreshes. The token lives in the same
    ``PageroToken`` row as in :func:`pagero_api`, so only the refresh logic differs.
    """
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    row = PageroToken.objects.get(user_id=request.user.pk)

    def update_token(
        token: dict[str, Any], refresh_token: Any = None, access_token: Any = None
    ) -> None:
        row.access_token = token["access_token"]
        row.refresh_token = token.get("refresh_token") or row.refresh_token
        row.access_token_expires_at = datetime.fromtimestamp(token["expires_at"], tz=timezone.utc)
        row.save()

    session = OAuth2Session(
        client_id=app_settings.CLIENT_ID,
        client_secret=app_settings.CLIENT_SECRET,
        token={
            "token_type": row.token_type,
            "access_token": row.access_token,
            "refresh_token": row.refresh_token,
            "expires_at": int(row.access_token_expires_at.timestamp()),
        },
        token_endpoint=app_settings.TOKEN_URL,
        update_token=update_token,
        default_timeout=app_settings.TIMEOUT,
    )
    try:
        response = session.get(f"{app_settings.API_BASE_URL.rstrip('/')}/v1/me")
    except OAuthError as exc:  # invalid_grant: another process used the refresh token first
        return JsonResponse({"error": exc.error}, status=502)
    finally:
        session.close()
    return _api_answer(response.status_code)


@pagero_token_required
async def pagero_protected_async(request: HttpRequest) -> HttpResponse:
    """An async view requiring a valid Pagero token (the ``asgi`` benchmark refreshes here)."""
    user = await request.auser()
    return JsonResponse({"ok": True, "user": user.pk})


async def unrelated_async(request: HttpRequest) -> HttpResponse:
    """An async view that has nothing to do with Pagero: one ORM call (``asgi`` benchmark)."""
    from django.contrib.auth import get_user_model

    return JsonResponse({"ok": True, "users": await get_user_model().objects.acount()})
