"""The mock Pagero server mounted inside a Django project (the example project uses this).

``path("mock-pagero/", include("django_pagero_oauth.testing.urls"))`` serves a process-wide
:class:`~django_pagero_oauth.testing.mock.MockPagero` whose client id and secret are the
project's own ``CLIENT_ID`` and ``CLIENT_SECRET``. It answers 404 unless ``DEBUG`` is True or
``PAGERO_OAUTH["ALLOW_MOCK_SERVER"]`` is set (system check ``E007`` flags the latter when
``DEBUG`` is False): it hands out tokens to anyone and must never run in production.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..conf import app_settings
from .mock import MockPagero, MockRequest

_lock = threading.Lock()
_mock: MockPagero | None = None


def get_mock() -> MockPagero:
    """The process-wide mock, created on first use with the project's client credentials."""
    global _mock
    with _lock:
        if _mock is None:
            _mock = MockPagero(
                client_id=app_settings.CLIENT_ID or "mock-client-id",
                client_secret=app_settings.CLIENT_SECRET or "mock-client-secret",
                issuer=app_settings.ISSUER or None,
            )
        return _mock


@csrf_exempt
def mock_pagero(request: HttpRequest, path: str = "") -> HttpResponse:
    if not (settings.DEBUG or app_settings.ALLOW_MOCK_SERVER):
        raise Http404("The mock Pagero server runs only with DEBUG or ALLOW_MOCK_SERVER.")
    prefix = request.path[: len(request.path) - len(path)].rstrip("/")
    query = request.META.get("QUERY_STRING", "")
    answer = get_mock().handle(
        MockRequest.build(
            method=request.method or "GET",
            target=f"/{path}?{query}" if query else f"/{path}",
            headers=list(request.headers.items()),
            body=request.body,
            base_url=request.build_absolute_uri(prefix),
        )
    )
    if answer.delay:
        time.sleep(answer.delay)  # fault injection: the mock answers slowly on purpose
    if answer.drop_connection:
        return HttpResponse(status=502)
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    return response
