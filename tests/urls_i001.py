"""A URLconf that only check I001's test loads: importing it applies the decorator."""

from typing import Any

from django.urls import path

from django_pagero_oauth.decorators import pagero_token_required


def view(request: Any) -> Any:
    raise NotImplementedError


urlpatterns = [path("guarded/", pagero_token_required(view))]
