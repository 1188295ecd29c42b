"""The plain site's own pages: what a project writes itself after the quick start."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_pagero_oauth import get_client
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.models import PageroIdentity, PageroToken


def home(request: HttpRequest) -> HttpResponse:
    """Who is logged in, whether they are connected and linked (from the database only)."""
    context = {"connected": False, "linked": False}
    if request.user.is_authenticated:
        context = {
            "connected": PageroToken.objects.filter(user_id=request.user.pk).exists(),
            "linked": PageroIdentity.objects.filter(user_id=request.user.pk).exists(),
        }
    return render(request, "plain_site/home.html", context)


@pagero_token_required
def invoices(request: HttpRequest) -> HttpResponse:
    """Protected: calls the Pagero API as the user."""
    client = get_client(request.user, token=request.pagero_token)  # type: ignore[arg-type, attr-defined]
    response = client.get("v1/me")
    response.raise_for_status()
    return render(request, "plain_site/invoices.html", {"me": response.json()})
