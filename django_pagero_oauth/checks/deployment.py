"""The checks of a site in production (tagged ``security`` too): https endpoints, no mock
server or mock settings, PKCE on."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from ..conf import SETTINGS, app_settings
from ..kinds import Url
from ..transport import is_loopback

#: The settings holding Pagero's endpoints.
URL_SETTINGS = tuple(setting.name for setting in SETTINGS if isinstance(setting, Url))
#: The credentials of the mock Pagero server (``testing.mock``), published in its docs.
MOCK_CREDENTIALS = {"CLIENT_ID": "mock-client-id", "CLIENT_SECRET": "mock-client-secret"}


def check_https(**kwargs: Any) -> list[CheckMessage]:
    """Without DEBUG, endpoints are https, except on a loopback address (a local mock)."""
    if settings.DEBUG:
        return []
    errors: list[CheckMessage] = []
    # ISSUER too: the OpenID Connect key set is discovered from it, over https only; and
    # REDIRECT_URI, to which Pagero sends the browser with the authorization code.
    for key in (*URL_SETTINGS, "ISSUER", "REDIRECT_URI"):
        url = getattr(app_settings, key)
        split = urlsplit(url)
        if split.scheme == "http" and split.hostname and not is_loopback(split.hostname):
            errors.append(
                Error(
                    f"PAGERO_OAUTH['{key}'] is not an https URL: {url!r}.",
                    hint="Tokens and the client secret would travel unencrypted. Use https "
                    "(only DEBUG, or a loopback address such as a local mock server, allows "
                    "http).",
                    id="django_pagero_oauth.E002",
                )
            )
    return errors


def check_mock_in_production(**kwargs: Any) -> list[CheckMessage]:
    """Without DEBUG, Pagero's endpoints on a loopback address (``mock_settings`` of a local
    mock pasted into production settings) or the mock's published credentials (``W005``)."""
    if settings.DEBUG:
        return []
    reasons = [
        f"{key} is on a loopback address"
        for key in (*URL_SETTINGS, "ISSUER")
        if is_loopback(urlsplit(getattr(app_settings, key)).hostname)
    ]
    reasons += [
        f"{key} is the mock's"
        for key, value in MOCK_CREDENTIALS.items()
        if app_settings.user_settings.get(key) == value
    ]
    if not reasons:
        return []
    return [
        Warning(
            "DEBUG is False, but PAGERO_OAUTH looks like a mock Pagero server's: "
            f"{', '.join(reasons)}.",
            hint="The site would trust whatever listens there as Pagero (any local process "
            "can bind a loopback port): send it the client secret and take its id_tokens as "
            "Pagero's. Use Pagero's https endpoints and your client's own credentials in "
            "production, or add this id to SILENCED_SYSTEM_CHECKS for a local proxy to Pagero "
            "that you trust.",
            id="django_pagero_oauth.W005",
        )
    ]


def check_mock_server(**kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG or not app_settings.ALLOW_MOCK_SERVER:
        return []
    return [
        Error(
            "The mock Pagero server is allowed to run while DEBUG is False.",
            hint="The mock hands out tokens to anyone. Remove 'django_pagero_oauth.testing.urls' "
            "and ALLOW_MOCK_SERVER from production settings.",
            id="django_pagero_oauth.E007",
        )
    ]


def check_pkce(**kwargs: Any) -> list[CheckMessage]:
    """PKCE is the default; turning it off is possible (Pagero's flow without it) but flagged."""
    if app_settings.PKCE:
        return []
    return [
        Warning(
            "PAGERO_OAUTH['PKCE'] is off: logins do not use PKCE (RFC 7636).",
            hint="RFC 9700 (OAuth 2.0 Security Best Current Practice) requires PKCE of every "
            "client and Pagero recommends it: without it a stolen authorization code can be "
            "redeemed. Remove 'PKCE': False unless your Pagero client cannot use PKCE.",
            id="django_pagero_oauth.W004",
        )
    ]
