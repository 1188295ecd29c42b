"""The example project's pages: what a site using django-pagero-oauth writes itself.

- ``home``: who is logged in, and whether they are connected to Pagero (read from the database
  only: showing a status never calls Pagero).
- ``invoices``: protected by ``@pagero_token_required``; calls the Pagero API as the user.
- ``invoices_json``: the same data for ``fetch()``; without a connection it answers 401 JSON
  with a ``login_url`` (the decorator's answer for JSON callers).
"""

from __future__ import annotations

from typing import Any

import requests
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from django_pagero_oauth import get_client
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.exceptions import PageroAuthorizationRequired, PageroUnavailable
from django_pagero_oauth.guard import handle_missing_token
from django_pagero_oauth.models import PageroToken


class PageroApiError(Exception):
    """The Pagero API answered, but not with data (an HTTP error, or not JSON)."""


def fetch_json(request: HttpRequest, path: str) -> Any:
    """GET ``path`` from the Pagero API as the request's user; the parsed JSON body.

    ``get_client`` adds a valid bearer token (refreshed single-flight when needed) and, when
    the API answers 401, refreshes once and retries; if the connection cannot be renewed it
    raises ``PageroAuthorizationRequired``.
    """
    try:
        client = get_client(request.user, token=request.pagero_token)  # type: ignore[arg-type, attr-defined]
        response = client.get(path)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as exc:
        raise PageroApiError(type(exc).__name__) from exc


def home(request: HttpRequest) -> HttpResponse:
    token = None
    if request.user.is_authenticated:
        token = PageroToken.objects.filter(user_id=request.user.pk).first()
    return render(request, "demo_app/home.html", {"token": token})


@pagero_token_required
def invoices(request: HttpRequest) -> HttpResponse:
    try:
        me = fetch_json(request, "v1/me")
        documents = fetch_json(request, "v1/documents")
    except (PageroAuthorizationRequired, PageroUnavailable) as exc:
        # The connection died (or Pagero is down) between the decorator's check and now:
        # answer exactly as the decorator would have.
        return handle_missing_token(request, exc)
    except PageroApiError:
        return render(
            request,
            "demo_app/invoices.html",
            {"error": _("The Pagero API did not answer as expected. Please try again.")},
            status=502,
        )
    return render(
        request,
        "demo_app/invoices.html",
        {
            "me": me,
            "documents": documents.get("documents", []),
            "token": request.pagero_token,  # type: ignore[attr-defined]
        },
    )


@pagero_token_required
def invoices_json(request: HttpRequest) -> HttpResponse:
    try:
        documents = fetch_json(request, "v1/documents")
    except (PageroAuthorizationRequired, PageroUnavailable) as exc:
        return handle_missing_token(request, exc)
    except PageroApiError:
        return JsonResponse({"error": "pagero_api_error"}, status=502)
    return JsonResponse(
        {"publicid": documents.get("publicid", ""), "documents": documents.get("documents", [])}
    )
