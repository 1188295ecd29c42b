"""Template context shared by every page of the example project."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from django_pagero_oauth.conf import app_settings


def demo(request: HttpRequest) -> dict[str, Any]:
    return {
        "use_mock_pagero": settings.USE_MOCK_PAGERO,
        # "Sign in with Pagero" buttons only where the site enabled it (else its URL is a 404).
        "pagero_sign_in_enabled": app_settings.SIGN_IN_ENABLED,
    }
