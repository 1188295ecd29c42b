"""Template context shared by every page of the example project."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def demo(request: HttpRequest) -> dict[str, Any]:
    return {"use_mock_pagero": settings.USE_MOCK_PAGERO}
