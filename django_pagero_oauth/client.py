"""``get_client(user)``: a ``requests.Session`` that calls Pagero's API as ``user``
(:doc:`/api-client`).

Every request gets ``Authorization: Bearer`` from :func:`~django_pagero_oauth.get_valid_token`
and, on the API's 401, at most one retry after a forced single-flight refresh
(:class:`ForcedRefreshPolicy`). Every URL goes through :func:`resolve_api_url`: the token goes to
``API_BASE_URL`` and nowhere else. Transport failures raise the ``requests`` exception of the
same class, without the frames of ``requests`` and ``urllib3`` (whose local variables hold the
header). The decisions are ``apirules.ApiRules``', shared with
:mod:`django_pagero_oauth.aclient`; this module sends.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import requests
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter

from .apirules import ApiRules, ForcedRefreshPolicy, rebuilt, resolve_api_url, withheld
from .conf import app_settings
from .tokens import get_valid_token, refresh

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import PageroToken

# The URL rule and the 401 rule are documented under this module's name.
__all__ = ["BearerAuth", "ForcedRefreshPolicy", "PageroSession", "get_client", "resolve_api_url"]


class BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization: Bearer`` (RFC 6750 2.1) on the prepared request, and only there.

    ``repr`` shows no token.
    """

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __repr__(self) -> str:
        return "<BearerAuth>"

    @sensitive_variables()
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        return request


class _RetryingAdapter(HTTPAdapter):
    """The transport for ``API_BASE_URL`` when ``API_RETRIES`` is set: a busy answer is closed
    and the same prepared request (headers, body) sent again after the wait
    ``ApiRules.retry_wait`` decides. A body that is a stream is sent once; transport errors are
    not retried (a read timeout stays a ``ReadTimeout``)."""

    def __init__(self, rules: ApiRules) -> None:
        super().__init__()
        self.rules = rules

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        replayable = isinstance(request.body, (bytes, str, type(None)))
        retry = 1
        while True:
            response = super().send(request, *args, **kwargs)
            wait = self.rules.retry_wait(
                retry, request.method or "", response.status_code, response.headers, response.url
            )
            if wait is None or not replayable:
                return response
            response.close()
            time.sleep(wait)
            retry += 1


def _detached(exc: BaseException) -> BaseException:
    """``exc`` fit to leave this package: no traceback below it, no chained exceptions (their
    frames hold the prepared headers). A ``requests`` exception becomes a new one of its class
    and message (``except requests.ConnectionError`` keeps working) whose ``request`` has no
    ``Authorization``; any other keeps only its class (its message may quote the header)."""
    if not isinstance(exc, requests.RequestException):
        return withheld(exc)
    request = None
    if isinstance(exc.request, requests.PreparedRequest):
        request = exc.request.copy()
        request.headers.pop("Authorization", None)
    return rebuilt(exc, str(exc), request, requests.RequestException)


class PageroSession(requests.Session):
    """A session bound to one Django user. Not shared between threads (like any Session).

    ``base_url`` defaults to ``API_BASE_URL``; ``token``, the token the caller already has (a
    view's ``request.pagero_token``, also the middleware's lazy one), spares a query.
    """

    def __init__(
        self,
        user: AbstractBaseUser,
        *,
        base_url: str | None = None,
        token: PageroToken | None = None,
    ) -> None:
        super().__init__()
        self.rules = ApiRules("PageroSession", user, token, base_url)
        self.user = user
        self.headers["Accept"] = "application/json"
        self.headers["User-Agent"] = "django-pagero-oauth"
        if self.rules.retries:
            # Only for the API: oauth.py's token and revocation requests never get here.
            self.mount(self.rules.base_url, _RetryingAdapter(self.rules))

    def __repr__(self) -> str:
        return f"<PageroSession user_id={self.user.pk} base_url={self.rules.base_url!r}>"

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """A redirect (only with ``allow_redirects=True``) keeps the bearer token only when its
        target passes :func:`resolve_api_url`; ``~/.netrc`` is never consulted."""
        if not self.rules.on_the_api(prepared_request.url or ""):
            prepared_request.headers.pop("Authorization", None)

    @sensitive_variables()
    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if args:
            raise TypeError("PageroSession.request() takes keyword arguments after the URL")
        if kwargs.pop("auth", None) is not None:
            raise TypeError("PageroSession sets the Authorization header itself; pass no auth")
        method = method.decode() if isinstance(method, bytes) else method
        full_url = self.rules.api_url(url.decode() if isinstance(url, bytes) else url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = app_settings.TIMEOUT
        kwargs.setdefault("allow_redirects", False)
        token = self.rules.held_token() or self.rules.hold(get_valid_token(self.user))
        response = self._send_with(token, method, full_url, kwargs)
        if self._rejected(response) and self.rules.forced_refresh.may_refresh(token):
            # RFC 6750 3.1: the access token was rejected; one forced single-flight refresh.
            response.close()
            token = self.rules.hold(refresh(token, force=True))
            self.rules.forced_refresh.refreshed(token)
            response = self._send_with(token, method, full_url, kwargs)
        return response

    def _rejected(self, response: requests.Response) -> bool:
        sent = response.request is not None and "Authorization" in response.request.headers
        return self.rules.rejected_by_the_api(response.status_code, sent, response.url or "")

    @sensitive_variables()
    def _send_with(
        self, token: PageroToken, method: str, url: str, kwargs: dict[str, Any]
    ) -> requests.Response:
        failure: BaseException
        try:
            return super().request(method, url, auth=BearerAuth(token.access_token), **kwargs)
        except Exception as exc:  # any: detached, then raised again below
            failure = _detached(exc)
        raise failure  # outside the except block: no implicit __context__

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """GET without following redirects unless asked (``requests`` follows them for GET)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)

    def options(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """OPTIONS without following redirects unless asked."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("OPTIONS", url, **kwargs)


def get_client(
    user: AbstractBaseUser, *, base_url: str | None = None, token: PageroToken | None = None
) -> PageroSession:
    """A :class:`PageroSession` for ``user`` (relative URLs resolve against ``API_BASE_URL``).

    In a protected view pass ``token=request.pagero_token``: the session starts with the token
    the view already has, instead of reading it again.
    """
    return PageroSession(user, base_url=base_url, token=token)
