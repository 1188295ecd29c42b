"""Connect Django users to Pagero Online through OAuth 2.0 and keep their tokens valid.

The public entry points are importable from here lazily (importing this package does not import
Django models, so it is safe in settings files)::

    from django_pagero_oauth import get_valid_token, get_client

``aget_client`` (an ``httpx.AsyncClient``) needs the optional extra ``async``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .aclient import AsyncPageroClient, aget_client
    from .client import PageroSession, get_client
    from .tokens import aget_valid_token, get_valid_token

__all__ = [
    "AsyncPageroClient",
    "PageroSession",
    "aget_client",
    "aget_valid_token",
    "get_client",
    "get_valid_token",
]

_LAZY = {
    "get_valid_token": "tokens",
    "aget_valid_token": "tokens",
    "get_client": "client",
    "PageroSession": "client",
    "aget_client": "aclient",
    "AsyncPageroClient": "aclient",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
