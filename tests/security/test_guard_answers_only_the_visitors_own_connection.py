"""The guard's answer is about the VISITOR's connection: an error about another connection that
a protected view uses (an organisation's service account, a colleague's shared connection, the
owner of a document) must not send the visitor to reconnect their own account.

``run_guarded``/``arun_guarded`` and the middleware's ``process_exception`` catch every
``PageroAuthorizationRequired`` the view raises, whoever's token it is about, and answer as if
the visitor's own connection were dead: a redirect to ``pagero_oauth:login``. The visitor, whose
token is perfectly valid, reconnects (and, with ``REVOKE_URL``, revokes their own good token on
reconnect), comes back, and is sent to reconnect again: a loop that cannot be left, while the
real fault (the organisation's connection) is never reported.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from django_pagero_oauth import aget_client, get_client
from django_pagero_oauth.contrib.rest_framework import HasPageroToken
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.models import PageroToken

ORG = "organisation"


def _org_user() -> Any:
    return get_user_model().objects.get(username=ORG)


@pagero_token_required
def uses_the_organisations_connection(request: HttpRequest) -> HttpResponse:
    answer = get_client(_org_user()).get("v1/me")
    return JsonResponse({"status": answer.status_code})


@pagero_token_required
async def uses_the_organisations_connection_async(request: HttpRequest) -> HttpResponse:
    from asgiref.sync import sync_to_async

    org = await sync_to_async(_org_user)()
    async with aget_client(org) as client:
        answer = await client.get("v1/me")
    return JsonResponse({"status": answer.status_code})


def middleware_protected(request: HttpRequest) -> HttpResponse:
    answer = get_client(_org_user()).get("v1/me")
    return JsonResponse({"status": answer.status_code})


class OrganisationApiView(APIView):
    """DRF: ``HasPageroToken`` wraps this instance's ``handle_exception``."""

    renderer_classes = [JSONRenderer]
    permission_classes = [HasPageroToken]

    def get(self, request: Any) -> Response:
        answer = get_client(_org_user()).get("v1/me")
        return Response({"status": answer.status_code})


urlpatterns = [
    path("api/org/", OrganisationApiView.as_view()),
    path("pagero/", include("django_pagero_oauth.urls")),
    path("org/decorator/", uses_the_organisations_connection),
    path("org/decorator-async/", uses_the_organisations_connection_async),
    path("protected-by-middleware/org/", middleware_protected),
]

pytestmark = pytest.mark.urls(__name__)

PATHS = {
    "decorator": ("/org/decorator/", "wsgi"),
    "decorator, async view": ("/org/decorator-async/", "asgi"),
    "middleware": ("/protected-by-middleware/org/", "wsgi"),
    "DRF HasPageroToken": ("/api/org/", "wsgi"),
}


@pytest.mark.parametrize("where", list(PATHS))
def test_another_connections_revocation_does_not_send_the_visitor_to_reconnect(
    where: str,
    client: Any,
    async_client: Any,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
) -> None:
    org = get_user_model().objects.create_user(ORG, "org@example.com", "pw")
    mine = pagero_token_factory(user, publicid="visitor-company")  # valid, untouched
    pagero_token_factory(org, publicid="org-company")
    assert pagero_mock.mock.revoke_grant("org-company") == 2  # the organisation's is dead

    route, runner = PATHS[where]
    if runner == "wsgi":
        client.raise_request_exception = False
        client.force_login(user)
        response = client.get(route)
    else:
        async_client.raise_request_exception = False
        async_client.force_login(user)
        response = async_to_sync(async_client.get)(route)

    # The visitor's own connection is fine: nothing about it needs a new login.
    assert PageroToken.objects.get(pk=mine.pk).needs_reauthorization is False
    assert pagero_mock.mock.is_refresh_token_valid(
        PageroToken.objects.get(pk=mine.pk).refresh_token
    )
    location = response.get("Location", "")
    if response.get("Content-Type", "").startswith("application/json"):
        location = json.loads(response.content).get("login_url", location)
    assert not location.startswith("/pagero/login/"), (
        f"{where}: the visitor (valid token) is sent to reconnect their own account because "
        f"ANOTHER user's connection is dead: {response.status_code} -> {location}"
    )
