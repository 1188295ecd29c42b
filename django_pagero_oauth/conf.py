"""Settings of django-pagero-oauth.

Everything lives in ONE dict, ``settings.PAGERO_OAUTH``. :data:`app_settings` reads it on
every attribute access (never caches, never writes defaults back onto ``django.conf.settings``),
so ``override_settings`` and pytest-django's ``settings`` fixture just work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings

#: Every setting, with its default. The README documents each one.
DEFAULTS: dict[str, Any] = {
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    "AUTHORIZE_URL": "https://sso.pageroonline.com/oauth/v2/oauth-authorize",
    "TOKEN_URL": "https://sso.pageroonline.com/oauth/v2/oauth-token",
    # Pagero documents no RFC 7009 endpoint: empty means "revoke" only deletes locally.
    "REVOKE_URL": "",
    "API_BASE_URL": "https://api.pageroonline.com",
    "SCOPE": "all",
    "REDIRECT_URI": "",
    "CLIENT_AUTH_METHOD": "client_secret_basic",
    # RFC 9700 2.1.1 requires PKCE of every client; Pagero recommends it.
    "PKCE": True,
    "ISSUER": "",
    "TIMEOUT": 10.0,
    "LOGIN_REDIRECT_URL": "",
    "ENCRYPTION_KEYS": [],
    # Read stored values in the old format (not bound to their row); see the README.
    "ACCEPT_UNBOUND_CIPHERTEXTS": True,
    "REFRESH_LEEWAY": 60,
    "REFRESH_FAILURE_BACKOFF": 5,
    "REFRESH_TOKEN_LIFETIME_DAYS": 3 * 365,
    "STATE_MAX_AGE": 600,
    "MAX_PENDING_FLOWS": 5,
    "PROTECTED_PATHS": [],
    "UNAVAILABLE_RETRY_AFTER": 30,
    "RESPONSE_HANDLER": "",
    "ALLOW_MOCK_SERVER": False,
    # OpenID Connect and "Sign in with Pagero" (empty JWKS_URL: discovered from ISSUER).
    "JWKS_URL": "",
    "JWKS_CACHE_SECONDS": 3600,
    "JWKS_REFETCH_INTERVAL": 60,
    "ID_TOKEN_LEEWAY": 60,
    # "Sign in with Pagero" is a second way to log in: off unless the site asks for it.
    "SIGN_IN_ENABLED": False,
    "SIGN_IN_CREATE_USERS": False,
    "SIGN_IN_USER_FACTORY": "django_pagero_oauth.signin.create_user_from_claims",
}

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class PageroOAuthSettings:
    """Typed, lazy view of ``settings.PAGERO_OAUTH``."""

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "PAGERO_OAUTH", None)
        return value if isinstance(value, dict) else {}

    def _get(self, name: str) -> Any:
        return self.user_settings.get(name, DEFAULTS[name])

    @property
    def CLIENT_ID(self) -> str:
        return str(self._get("CLIENT_ID"))

    @property
    def CLIENT_SECRET(self) -> str:
        return str(self._get("CLIENT_SECRET"))

    @property
    def AUTHORIZE_URL(self) -> str:
        return str(self._get("AUTHORIZE_URL"))

    @property
    def TOKEN_URL(self) -> str:
        return str(self._get("TOKEN_URL"))

    @property
    def REVOKE_URL(self) -> str:
        return str(self._get("REVOKE_URL") or "")

    @property
    def API_BASE_URL(self) -> str:
        return str(self._get("API_BASE_URL"))

    @property
    def SCOPE(self) -> str:
        value = self._get("SCOPE")
        if isinstance(value, (list, tuple)):
            return " ".join(str(part) for part in value)
        return str(value)

    @property
    def REDIRECT_URI(self) -> str:
        return str(self._get("REDIRECT_URI") or "")

    @property
    def CLIENT_AUTH_METHOD(self) -> str:
        return str(self._get("CLIENT_AUTH_METHOD"))

    @property
    def PKCE(self) -> bool:
        return bool(self._get("PKCE"))

    @property
    def ISSUER(self) -> str:
        return str(self._get("ISSUER") or "")

    @property
    def TIMEOUT(self) -> float:
        """Seconds for every HTTP call. ``None`` (wait forever) is never allowed."""
        value = self._get("TIMEOUT")
        return float(value) if value is not None else float(DEFAULTS["TIMEOUT"])

    @property
    def LOGIN_REDIRECT_URL(self) -> str:
        """Where the callback lands without a ``next``; falls back to Django's setting."""
        value = self._get("LOGIN_REDIRECT_URL")
        return str(value or settings.LOGIN_REDIRECT_URL)

    @property
    def ENCRYPTION_KEYS(self) -> list[str]:
        value = self._get("ENCRYPTION_KEYS")
        if isinstance(value, (str, bytes)):
            value = [value]
        return [key.decode() if isinstance(key, bytes) else str(key) for key in value or []]

    @property
    def ACCEPT_UNBOUND_CIPHERTEXTS(self) -> bool:
        """Decrypt stored values in the old format, which are bound to no row."""
        return bool(self._get("ACCEPT_UNBOUND_CIPHERTEXTS"))

    @property
    def REFRESH_LEEWAY(self) -> int:
        return int(self._get("REFRESH_LEEWAY"))

    @property
    def REFRESH_FAILURE_BACKOFF(self) -> int:
        """Seconds after a transient refresh failure during which nobody tries again."""
        return max(0, int(self._get("REFRESH_FAILURE_BACKOFF")))

    @property
    def REFRESH_TOKEN_LIFETIME_DAYS(self) -> int:
        return int(self._get("REFRESH_TOKEN_LIFETIME_DAYS"))

    @property
    def STATE_MAX_AGE(self) -> int:
        return int(self._get("STATE_MAX_AGE"))

    @property
    def MAX_PENDING_FLOWS(self) -> int:
        return max(1, int(self._get("MAX_PENDING_FLOWS")))

    @property
    def PROTECTED_PATHS(self) -> Sequence[str]:
        value = self._get("PROTECTED_PATHS")
        return [value] if isinstance(value, str) else list(value or [])

    @property
    def UNAVAILABLE_RETRY_AFTER(self) -> int:
        return int(self._get("UNAVAILABLE_RETRY_AFTER"))

    @property
    def RESPONSE_HANDLER(self) -> str:
        return str(self._get("RESPONSE_HANDLER") or "")

    @property
    def ALLOW_MOCK_SERVER(self) -> bool:
        return bool(self._get("ALLOW_MOCK_SERVER"))

    # --- OpenID Connect and "Sign in with Pagero" -----------------------------------------

    @property
    def JWKS_URL(self) -> str:
        """The issuer's key set; empty: ``jwks_uri`` of ``ISSUER``'s discovery document."""
        return str(self._get("JWKS_URL") or "")

    @property
    def JWKS_CACHE_SECONDS(self) -> int:
        return max(0, int(self._get("JWKS_CACHE_SECONDS")))

    @property
    def JWKS_REFETCH_INTERVAL(self) -> int:
        """At most one key-set fetch for an unknown ``kid`` per this many seconds."""
        return max(0, int(self._get("JWKS_REFETCH_INTERVAL")))

    @property
    def ID_TOKEN_LEEWAY(self) -> int:
        """Seconds of clock skew allowed for ``exp`` and ``iat``."""
        return max(0, int(self._get("ID_TOKEN_LEEWAY")))

    @property
    def SIGN_IN_ENABLED(self) -> bool:
        """Whether ``pagero_oauth:sign_in`` works and identities are linked (else a 404)."""
        return bool(self._get("SIGN_IN_ENABLED"))

    @property
    def SIGN_IN_CREATE_USERS(self) -> bool:
        return bool(self._get("SIGN_IN_CREATE_USERS"))

    @property
    def SIGN_IN_USER_FACTORY(self) -> str:
        return str(self._get("SIGN_IN_USER_FACTORY") or DEFAULTS["SIGN_IN_USER_FACTORY"])

    @property
    def openid_requested(self) -> bool:
        """``openid`` is one of the ``SCOPE`` values: every connect flow is an OIDC flow."""
        return "openid" in self.SCOPE.split()


app_settings = PageroOAuthSettings()
