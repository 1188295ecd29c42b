"""``aget_client(user)``: an ``httpx.AsyncClient`` that calls Pagero's API as ``user``, for async
views and tasks (the ``async`` extra; usage: :doc:`/api-client`).

The guarantees of :func:`~django_pagero_oauth.get_client`, by the same rules (``apirules``): the
URL rule (:func:`~django_pagero_oauth.client.resolve_api_url`) on every request on the wire,
redirect hops included; the check of a given token; the 401 rule
(:class:`~django_pagero_oauth.client.ForcedRefreshPolicy`); ``TIMEOUT`` unless one is given
(``None`` is not "forever"); ``API_RETRIES``; a refresh single-flight on a worker thread. The
header is on a request object only while it is sent; transport failures raise the ``httpx``
exception of the same class, without the frames of ``httpx`` and ``httpcore``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

try:
    import httpx
except ImportError as exc:
    raise ImportError("aget_client needs httpx: pip install 'django-pagero-oauth[async]'") from exc
from django.views.decorators.debug import sensitive_variables

from .apirules import ApiRules, rebuilt, withheld, withheld_message
from .conf import app_settings
from .tokens import aget_valid_token, arefresh

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.utils.functional import LazyObject

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
    """``exc`` fit to leave this package, as :func:`django_pagero_oauth.client._detached`.

    A ``LocalProtocolError`` (h11 or h2 quoting the header it refused: "Illegal header value
    b'Bearer ...'") keeps only its class; an ``HTTPStatusError`` (a response hook's
    ``raise_for_status()``) keeps its message; httpx's own exceptions without a request
    (``InvalidURL``, ``StreamError``) stay as they are.
    """
    if isinstance(exc, httpx.RequestError):
        try:
            original: httpx.Request | None = exc.request
        except RuntimeError:  # raised without a request
            original = None
        request = _without_authorization(original) if original is not None else None
        quotable = isinstance(exc, httpx.LocalProtocolError)
        message = withheld_message(exc) if quotable else str(exc)
        return rebuilt(exc, message, request, httpx.RequestError)
    if isinstance(exc, httpx.HTTPStatusError):
        _strip_token(exc.response)
        return httpx.HTTPStatusError(
            str(exc), request=_without_authorization(exc.request), response=exc.response
        )
    if type(exc).__module__.split(".")[0] == "httpx":  # InvalidURL, StreamError: no request
        exc.__cause__ = exc.__context__ = None
        exc.__suppress_context__ = True
        return exc.with_traceback(None)
    return withheld(exc)


class AsyncPageroClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` bound to one Django user; one event loop at a time. A lazy
    ``request.pagero_token`` is taken only once evaluated (``await request.apagero_token()``)."""

    def __init__(
        self,
        user: AbstractBaseUser,
        *,
        base_url: str | None = None,
        token: PageroToken | LazyObject | None = None,
    ) -> None:
        self.rules = ApiRules("AsyncPageroClient", user, token, base_url, evaluate=False)
        super().__init__(
            headers={"Accept": "application/json", "User-Agent": "django-pagero-oauth"},
            timeout=app_settings.TIMEOUT,
            follow_redirects=False,
        )
        self.user = user

    def __repr__(self) -> str:
        return f"<AsyncPageroClient user_id={self.user.pk} base_url={self.rules.base_url!r}>"

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        """Every request (``get``, ``request``, ``stream``) is built here: the URL rule first,
        then the configured timeout unless one is given."""
        if isinstance(url, httpx.URL):
            url = str(url)
        if kwargs.get("timeout", httpx.USE_CLIENT_DEFAULT) in (httpx.USE_CLIENT_DEFAULT, None):
            kwargs["timeout"] = app_settings.TIMEOUT
        return super().build_request(method, self.rules.api_url(url), **kwargs)

    async def _send_single_request(self, request: httpx.Request) -> httpx.Response:
        """Each request on the wire, redirect hops included: off the API, no token; whether it
        went with the token is noted (:data:`BEARER_SENT`) for the 401 rule of :meth:`send`.
        (Not an event hook, which ``event_hooks`` replaces; an ``httpx.Auth`` flow sees only the
        first request.)"""
        if not self.rules.on_the_api(str(request.url)):
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
        self.rules.api_url(str(request.url))  # the URL as httpx will send it (ValueError if not)
        options = {"stream": stream, "follow_redirects": follow_redirects}
        token = self.rules.held_token() or self.rules.hold(await aget_valid_token(self.user))
        response = await self._send_with(token, request, options)
        if self._rejected(response) and await self.rules.forced_refresh.amay_refresh(token):
            # RFC 6750 3.1: the access token was rejected; one forced single-flight refresh.
            await response.aclose()
            token = self.rules.hold(await arefresh(token, force=True))
            await self.rules.forced_refresh.arefreshed(token)
            response = await self._send_with(token, request, options)
        return response

    def _rejected(self, response: httpx.Response) -> bool:
        sent = response.request.extensions.get(BEARER_SENT) is True
        return self.rules.rejected_by_the_api(response.status_code, sent, str(response.url))

    @sensitive_variables()
    async def _send_with(
        self, token: PageroToken, request: httpx.Request, options: dict[str, Any]
    ) -> httpx.Response:
        """Send ``request`` with ``token``; a busy answer is closed and ``request`` sent again
        after the wait :meth:`~django_pagero_oauth.apirules.ApiRules.retry_wait` decides, if
        its body can be sent again."""
        replayable = isinstance(request.stream, httpx.ByteStream)
        retry = 1
        while True:
            response = await self._send_once(token, request, options)
            wait = self.rules.retry_wait(
                retry, request.method, response.status_code, response.headers, str(response.url)
            )
            if wait is None or not replayable:
                return response
            await response.aclose()
            await asyncio.sleep(wait)
            retry += 1

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
