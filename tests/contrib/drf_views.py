"""Django REST framework views protected by ``HasPageroToken`` (``tests/contrib/test_rest_framework.py``).

Every kind a project writes: an ``APIView``, a generic view, a viewset, and an async ``APIView``
of adrf. Each answers with the token the permission put on the request.
"""

from __future__ import annotations

from typing import Any

from adrf.views import APIView as AsyncAPIView
from django.contrib.auth import get_user_model
from django.urls import include, path
from rest_framework import generics, serializers, viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from django_pagero_oauth import get_client
from django_pagero_oauth.contrib.rest_framework import HasPageroToken

#: What the project-level exception handler saw (tests.contrib.drf_views.recording_handler).
handled: list[type[BaseException]] = []


def recording_handler(exc: BaseException, context: dict[str, Any]) -> Any:
    handled.append(type(exc))
    return exception_handler(exc, context)


def _answer(request: Any) -> dict[str, Any]:
    token = request.pagero_token
    return {
        "fingerprint": token.fingerprint,
        # The same token on Django's request, for code below DRF (templates, helpers).
        "django_request_has_it": request._request.pagero_token is token,
    }


class Protected:
    renderer_classes = [JSONRenderer]
    permission_classes = [HasPageroToken]


class TokenView(Protected, APIView):
    def get(self, request: Any) -> Response:
        return Response(_answer(request))

    def post(self, request: Any) -> Response:
        return Response(_answer(request))


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["username"]


class GenericTokenView(Protected, generics.ListAPIView):
    serializer_class = UserSerializer

    def get_queryset(self) -> Any:
        return get_user_model().objects.filter(pk=self.request.user.pk)

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        return Response({**_answer(request), "users": response.data})


class TokenViewSet(Protected, viewsets.ViewSet):
    def list(self, request: Any) -> Response:
        return Response(_answer(request))


class AsyncTokenView(Protected, AsyncAPIView):
    async def get(self, request: Any) -> Response:
        return Response(_answer(request))


class PageroApiView(Protected, APIView):
    """Calls Pagero's API with the token the permission guaranteed."""

    def get(self, request: Any) -> Response:
        answer = get_client(request.user, token=request.pagero_token).get("v1/me")
        return Response({"status": answer.status_code, "publicid": answer.json()["publicid"]})


class RaisingView(Protected, APIView):
    """Raises what ``?raise=`` names (tests.views.RAISED): a project's own errors."""

    def get(self, request: Any) -> Response:
        from tests.views import RAISED

        raise RAISED[request.query_params["raise"]]()


urlpatterns = [
    path("pagero/", include("django_pagero_oauth.urls")),
    path("api/view/", TokenView.as_view()),
    path("api/generic/", GenericTokenView.as_view()),
    path("api/viewset/", TokenViewSet.as_view({"get": "list"})),
    path("api/async/", AsyncTokenView.as_view()),
    path("api/pagero/", PageroApiView.as_view()),
    path("api/raises/", RaisingView.as_view()),
]
