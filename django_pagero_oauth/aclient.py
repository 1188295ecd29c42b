"""``aget_client(user)``: an ``httpx.AsyncClient`` that calls Pagero's API as ``user``, for async
views and tasks (optional extra ``async``: ``pip install django-pagero-oauth[async]``)::

    user = await request.auser()
    async with aget_client(user, token=request.pagero_token) as client:
        response = await client.get("v1/documents")  # relative to API_BASE_URL

The same guarantees as :func:`~django_pagero_oauth.get_client`, from the same pieces of
:mod:`django_pagero_oauth.client`:

- every URL, and again the URL actually sent (also with ``build_request()`` + ``send()``),
  passes :func:`~django_pagero_oauth.client.resolve_api_url`; redirects are not followed unless
  asked, and a hop off ``API_BASE_URL`` is sent without the token (checked for each request on
  the wire, where no setting of ``event_hooks`` removes it);
- ``Authorization: Bearer`` is set by :class:`AsyncBearerAuth` while the request is sent, and
  taken off every request object afterwards (each followed hop's, ``next_request``); no
  ``repr`` shows a token;
- a token given to the client is not used for an inactive user or a connection that needs
  re-authorization (:class:`~django_pagero_oauth.exceptions.PageroAuthorizationRequired`);
- a valid token comes from :func:`~django_pagero_oauth.aget_valid_token`; a 401 of the API to a
  request that carried the token (not another server's, after a redirect) causes at most one
  forced refresh per access token (:class:`~django_pagero_oauth.client.ForcedRefreshPolicy`)
  through :func:`~django_pagero_oauth.tokens.arefresh`: single-flight, on a worker thread and a
  database connection of its own, not in Django's shared sync thread;
- the configured ``TIMEOUT`` unless one is given (``None`` is not "forever");
- transport failures raise the ``httpx`` exception of the same class, without the frames of
  ``httpx`` and ``httpcore`` and without the ``Authorization`` header on its ``request``; an
  exception that may quote the header (h11's ``LocalProtocolError``, any not from httpx) keeps
  its class but not its message;
- with ``API_RETRIES``, the same opt-in retries of idempotent requests as the sync client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, cast

try:
    import httpx
except ImportError as exc:
    raise ImportError("aget_client needs httpx: pip install 'django-pagero-oauth[async]'") from exc
from django.utils.functional import LazyObject, empty
from django.views.decorators.debug import sensitive_variables

from .client import (
    RETRY_BACKOFF_FACTOR,
    RETRY_BACKOFF_MAX,
    RETRY_METHODS,
    RETRY_STATUSES,
    ForcedRefreshPolicy,
    _may_use,
    _withheld,
    resolve_api_url,
)
from .conf import app_settings
from .exceptions import PageroAuthorizationRequired
from .tokens import aget_valid_token, arefresh
from .transport import retry_after_seconds

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import PageroToken


class AsyncBearerAuth(httpx.Auth):
    """Sets ``Authorization: Bearer`` (RFC 6750 2.1) on the request being sent. No token in
    ``repr``."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __repr__(self) -> str:
        return "<AsyncBearerAuth>"

    @sensitive_variables()
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        yield request


def _backoff(retry: int) -> float:
    """As urllib3's ``Retry``: no wait before the first retry, then exponential."""
    if retry <= 1:
        return 0.0
    return float(min(RETRY_BACKOFF_MAX, RETRY_BACKOFF_FACTOR * 2 ** (retry - 1)))


#: ``request.extensions`` key: did this request go on the wire with the bearer token?
BEARER_SENT = "django_pagero_oauth.bearer_sent"


def _without_authorization(request: httpx.Request) -> httpx.Request:
    headers = [
        (name, value)
        for name, value in request.headers.multi_items()
        if name.lower() != "authorization"
    ]
    return httpx.Request(request.method, request.url, headers=headers)


def _strip_token(response: httpx.Response) -> None:
    """Take ``Authorization`` off every request object ``response`` leads to: its own, each
    followed redirect's (httpx builds one per hop, copying the header on the same origin) and
    the unfollowed redirect's ``next_request``."""
    for hop in (response, *response.history):
        hop.request.headers.pop("Authorization", None)
    if response.next_request is not None:
        response.next_request.headers.pop("Authorization", None)


def _detached(exc: BaseException) -> BaseException:
    """``exc`` fit to leave this package (see :func:`django_pagero_oauth.client._detached`),
    with no traceback below the package and no chained exceptions.

    An ``httpx.RequestError`` becomes a new one of the same class and message whose
    ``request`` carries no ``Authorization`` header; but a ``LocalProtocolError`` (h11 or h2
    refusing what was about to be sent: "Illegal header value b'Bearer ...'") keeps only its
    class. An ``HTTPStatusError`` (a response hook's ``raise_for_status()``) keeps its message,
    and its request and response carry no token. Any other exception keeps its class but
    nothing else (:func:`~django_pagero_oauth.client._withheld`): a ``UnicodeEncodeError``
    holds the header in ``object``. httpx's other own exceptions (``InvalidURL``,
    ``StreamError``), which have no request, stay as they are.
    """
    if isinstance(exc, httpx.RequestError):
        try:
            original: httpx.Request | None = exc.request
        except RuntimeError:  # raised without a request
            original = None
        request = _without_authorization(original) if original is not None else None
        message = str(exc)
        if isinstance(exc, httpx.LocalProtocolError):
            message = f"{type(exc).__name__} while sending the request (its message is withheld)"
        try:
            fresh: BaseException = type(exc)(message, request=request)
        except Exception:  # a subclass with another constructor
            fresh = httpx.RequestError(message, request=request)
        return fresh
    if isinstance(exc, httpx.HTTPStatusError):
        _strip_token(exc.response)
        return httpx.HTTPStatusError(
            str(exc), request=_without_authorization(exc.request), response=exc.response
        )
    if type(exc).__module__.split(".")[0] == "httpx":  # InvalidURL, StreamError: no request
        exc.__cause__ = exc.__context__ = None
        exc.__suppress_context__ = True
        return exc.with_traceback(None)
    return _withheld(exc)


def _given_async_token(token: PageroToken | LazyObject | None) -> PageroToken | None:
    """The token given to the client. The middleware's lazy ``request.pagero_token`` is read
    only if already evaluated (``None`` in it means "no token"); evaluating it here would query
    the database from the event loop: use ``await request.apagero_token()`` instead."""
    if isinstance(token, LazyObject):
        lazy: Any = token  # its _wrapped is Django's, not in the stubs
        if lazy._wrapped is empty:
            raise TypeError(
                "aget_client() got the lazy request.pagero_token: pass "
                "`await request.apagero_token()` (or the token of a protected view) instead."
            )
        return cast("PageroToken | None", lazy._wrapped)
    return token


class AsyncPageroClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` bound to one Django user; one event loop at a time."""

    def __init__(
        self,
        user: AbstractBaseUser,
        *,
        base_url: str | None = None,
        token: PageroToken | LazyObject | None = None,
    ) -> None:
        token = _given_async_token(token)
        if token is not None and token.user_id != user.pk:
            raise ValueError("The token given to AsyncPageroClient belongs to another user.")
        super().__init__(
            headers={"Accept": "application/json", "User-Agent": "django-pagero-oauth"},
            timeout=app_settings.TIMEOUT,
            follow_redirects=False,
        )
        self.user = user
        self._token = token
        self.forced_refresh = ForcedRefreshPolicy()
        self.retries = app_settings.API_RETRIES
        self.retry_after_cap = app_settings.API_RETRY_AFTER_MAX
        base = base_url if base_url is not None else app_settings.API_BASE_URL
        self.pagero_base_url = base if base.endswith("/") else f"{base}/"

    def __repr__(self) -> str:
        return f"<AsyncPageroClient user_id={self.user.pk} base_url={self.pagero_base_url!r}>"

    def api_url(self, url: str) -> str:
        """``url`` resolved against the API base by :func:`resolve_api_url` (which see)."""
        return resolve_api_url(url, self.pagero_base_url)

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        """Every request (``get``, ``request``, ``stream``) is built here: the URL rule first,
        then the configured timeout unless one is given."""
        if isinstance(url, httpx.URL):
            url = str(url)
        if kwargs.get("timeout", httpx.USE_CLIENT_DEFAULT) in (httpx.USE_CLIENT_DEFAULT, None):
            kwargs["timeout"] = app_settings.TIMEOUT
        return super().build_request(method, self.api_url(url), **kwargs)

    async def _send_single_request(self, request: httpx.Request) -> httpx.Response:
        """Each request on the wire, every followed redirect hop included: off the API, no
        token; and whether it went with the token is noted (:data:`BEARER_SENT`) for the 401
        rule of :meth:`send`.

        Here, and not in a request event hook, because ``event_hooks`` is a public property
        that replaces all hooks; an ``httpx.Auth`` flow sees only the first request.
        """
        try:
            resolve_api_url(str(request.url), self.pagero_base_url)
        except ValueError:
            request.headers.pop("Authorization", None)
        request.extensions = {**request.extensions, BEARER_SENT: "Authorization" in request.headers}
        return await super()._send_single_request(request)

    @sensitive_variables()
    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if auth is not httpx.USE_CLIENT_DEFAULT and auth is not None:
            raise TypeError("AsyncPageroClient sets the Authorization header itself; pass no auth")
        self.api_url(str(request.url))  # the URL as httpx will send it (ValueError if not)
        options = {"stream": stream, "follow_redirects": follow_redirects}
        token = await self._current_token()
        response = await self._send_with(token, request, options)
        if (
            response.status_code == 401
            and self._rejected_by_the_api(response)
            and await self.forced_refresh.amay_refresh(token)
        ):
            # RFC 6750 3.1: the access token was rejected; one forced single-flight refresh.
            await response.aclose()
            token = self._token = await arefresh(token, force=True)
            await self.forced_refresh.arefreshed(token)
            response = await self._send_with(token, request, options)
        return response

    @sensitive_variables()
    async def _send_with(
        self, token: PageroToken, request: httpx.Request, options: dict[str, Any]
    ) -> httpx.Response:
        """Send ``request`` with ``token``, retried as ``API_RETRIES`` allows."""
        retry = 0
        while True:
            response = await self._send_once(token, request, options)
            wait = self._retry_wait(request, response, retry + 1)
            if wait is None:
                return response
            retry += 1
            await response.aclose()
            await asyncio.sleep(wait)

    def _rejected_by_the_api(self, response: httpx.Response) -> bool:
        """Was the 401 the API's answer to the token? After a redirect off the API (which
        dropped the header) it is another server's, and must not cost a refresh token."""
        if response.request.extensions.get(BEARER_SENT) is not True:
            return False
        try:
            resolve_api_url(str(response.url), self.pagero_base_url)
        except ValueError:
            return False
        return True

    def _retry_wait(
        self, request: httpx.Request, response: httpx.Response, retry: int
    ) -> float | None:
        """Seconds to wait before retry number ``retry``, or None: no retry."""
        if (
            retry > self.retries
            or request.method not in RETRY_METHODS
            or response.status_code not in RETRY_STATUSES
            or not isinstance(request.stream, httpx.ByteStream)  # a body that can be sent again
        ):
            return None
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if retry_after is None:
            return _backoff(retry)
        return retry_after if retry_after <= self.retry_after_cap else None

    @sensitive_variables()
    async def _send_once(
        self, token: PageroToken, request: httpx.Request, options: dict[str, Any]
    ) -> httpx.Response:
        failure: BaseException
        try:
            response = await super().send(
                request, auth=AsyncBearerAuth(token.access_token), **options
            )
        except Exception as exc:  # any: detached, then raised again below
            failure = _detached(exc)
        else:
            _strip_token(response)  # on a request object only while it is sent
            return response
        finally:
            request.headers.pop("Authorization", None)
        raise failure  # outside the except block: no implicit __context__

    async def _current_token(self) -> PageroToken:
        """The token this client holds while it is not expiring; else a valid one, fetched.

        As :meth:`PageroSession._current_token <django_pagero_oauth.client.PageroSession>`: a
        token the client holds is not used for an inactive user or a connection that needs
        re-authorization, as far as the objects in hand say; a fetched one is checked against
        the database (:func:`~django_pagero_oauth.aget_valid_token`).
        """
        token = self._token
        if token is None or token.access_token_needs_refresh():
            token = self._token = await aget_valid_token(self.user)
        elif not _may_use(self.user, token):
            self._token = None
            raise PageroAuthorizationRequired(
                "The user is inactive, or the Pagero connection must be renewed.",
                user_pk=self.user.pk,
            )
        return token


def aget_client(
    user: AbstractBaseUser,
    *,
    base_url: str | None = None,
    token: PageroToken | LazyObject | None = None,
) -> AsyncPageroClient:
    """An :class:`AsyncPageroClient` for ``user``; use it as ``async with aget_client(user) as
    client:`` (it makes no call until the first request, so creating it needs no ``await``).

    In a protected async view pass ``token=request.pagero_token``.
    """
    return AsyncPageroClient(user, base_url=base_url, token=token)
