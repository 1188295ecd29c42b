"""``get_client(user)``: a ``requests.Session`` that calls Pagero's API as ``user``.

Usable anywhere (views, management commands, Celery tasks)::

    session = get_client(user)
    response = session.get("v1/documents")   # relative to API_BASE_URL
    response.raise_for_status()

Every request gets ``Authorization: Bearer`` from :func:`~django_pagero_oauth.get_valid_token`
(refreshed single-flight when expiring), the configured timeout unless one is given, and, if
the API answers 401, exactly one retry after a forced single-flight refresh; a second 401 is
returned as it is. Absolute URLs outside ``API_BASE_URL`` are refused (the token stays with
Pagero). Refresh failures raise :class:`~django_pagero_oauth.exceptions.PageroUnavailable` or
:class:`~django_pagero_oauth.exceptions.PageroAuthorizationRequired`, with ``status_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests

from .conf import app_settings
from .tokens import get_valid_token, refresh

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import PageroToken


class PageroSession(requests.Session):
    """A session bound to one Django user. Not shared between threads (like any Session)."""

    def __init__(
        self,
        user: AbstractBaseUser,
        *,
        base_url: str | None = None,
        token: PageroToken | None = None,
    ) -> None:
        super().__init__()
        if token is not None and token.user_id != user.pk:
            raise ValueError("The token given to PageroSession belongs to another user.")
        self.user = user
        self._token = token
        base = base_url if base_url is not None else app_settings.API_BASE_URL
        self.base_url = base if base.endswith("/") else f"{base}/"
        self.headers["Accept"] = "application/json"
        self.headers["User-Agent"] = "django-pagero-oauth"

    def __repr__(self) -> str:
        return f"<PageroSession user_id={self.user.pk} base_url={self.base_url!r}>"

    def api_url(self, url: str) -> str:
        """``url`` resolved against ``base_url``; an absolute URL must lie under ``base_url``.

        The user's bearer token goes to Pagero's API and nowhere else (RFC 6750 5.3).
        """
        if urlsplit(url).scheme:
            if not url.startswith(self.base_url):
                raise ValueError(
                    "PageroSession sends the bearer token only to URLs under API_BASE_URL; "
                    "use a relative path."
                )
            return url
        return urljoin(self.base_url, url.lstrip("/"))

    def _send_with(
        self, token: PageroToken, method: str, url: str, kwargs: dict[str, Any]
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Authorization"] = f"Bearer {token.access_token}"
        return super().request(method, url, headers=headers, **kwargs)

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if args:
            raise TypeError("PageroSession.request() takes keyword arguments after the URL")
        method = method.decode() if isinstance(method, bytes) else method
        full_url = self.api_url(url.decode() if isinstance(url, bytes) else url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = app_settings.TIMEOUT
        kwargs.setdefault("allow_redirects", False)
        token = self._current_token()
        response = self._send_with(token, method, full_url, dict(kwargs))
        if response.status_code == 401:
            # RFC 6750 3.1: the access token was rejected; one forced single-flight refresh.
            response.close()
            token = self._token = refresh(token, force=True)
            response = self._send_with(token, method, full_url, dict(kwargs))
        return response

    def _current_token(self) -> PageroToken:
        """The token this session holds while it is not expiring; else a valid one, fetched.

        So several calls in one view (or one job) cost one query, not one each.
        """
        token = self._token
        if token is None or token.access_token_needs_refresh():
            token = self._token = get_valid_token(self.user)
        return token


def get_client(
    user: AbstractBaseUser, *, base_url: str | None = None, token: PageroToken | None = None
) -> PageroSession:
    """A :class:`PageroSession` for ``user`` (relative URLs resolve against ``API_BASE_URL``).

    In a protected view pass ``token=request.pagero_token``: the session starts with the token
    the view already has, instead of reading it again.
    """
    return PageroSession(user, base_url=base_url, token=token)
