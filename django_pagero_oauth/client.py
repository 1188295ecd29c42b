"""``get_client(user)``: a ``requests.Session`` that calls Pagero's API as ``user``.

Usable anywhere (views, management commands, Celery tasks)::

    session = get_client(user)
    response = session.get("v1/documents")   # relative to API_BASE_URL
    response.raise_for_status()

Every request gets ``Authorization: Bearer`` from :func:`~django_pagero_oauth.get_valid_token`
(refreshed single-flight when expiring), the configured timeout unless one is given, and, if
the API answers 401, at most one retry after a forced single-flight refresh (see
:class:`ForcedRefreshPolicy`). Every URL goes through :func:`resolve_api_url`: the token goes to
``API_BASE_URL`` and nowhere else. Refresh failures raise
:class:`~django_pagero_oauth.exceptions.PageroUnavailable` or
:class:`~django_pagero_oauth.exceptions.PageroAuthorizationRequired`, with ``status_code``;
transport failures raise the ``requests`` exception of the same class, without the frames of
``requests`` and ``urllib3`` (whose local variables hold the header) in its traceback.

With ``API_RETRIES`` set, an idempotent request (:data:`RETRY_METHODS`) answered 429, 502,
503 or 504 is retried up to that many times, after the answer's ``Retry-After`` (at most
``API_RETRY_AFTER_MAX`` seconds; a longer one ends the retries) or a short back-off, by
urllib3's ``Retry`` on this session's adapter for ``API_BASE_URL`` only. Token and revocation
requests go through :mod:`~django_pagero_oauth.oauth`'s own session and are never retried.

The pieces that do not depend on ``requests`` (:func:`resolve_api_url`,
:class:`ForcedRefreshPolicy`, the retry policy's constants) are meant to be shared by every API
client of this package (:mod:`django_pagero_oauth.aclient`).
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

import requests
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.utils import timezone
from django.utils.functional import LazyObject, empty
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from .conf import app_settings
from .exceptions import PageroAuthorizationRequired
from .tokens import get_valid_token, refresh
from .transport import retry_after_seconds

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import PageroToken


# --- where the token may go -------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _refuse(reason: str) -> ValueError:
    return ValueError(
        f"PageroSession sends the bearer token only to URLs under API_BASE_URL: {reason}"
    )


def _is_unsafe_char(char: str) -> bool:
    """Whitespace, controls, format characters, separators, surrogates, unassigned code points.

    ``urlsplit`` silently drops some of these (leading C0 and space, tab, CR, LF) and so turns
    ``" //evil.example"`` into a network-path reference; none has a place in an API path.
    """
    return char == "\\" or char.isspace() or unicodedata.category(char)[0] in "CZ"


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int | None]:
    return scheme.lower(), (host or "").lower(), port or _DEFAULT_PORTS.get(scheme.lower())


def _check_path(path: str, base_path: str) -> None:
    if not path.startswith(base_path):
        raise _refuse("the path is not under the path of API_BASE_URL")
    if path.startswith("//"):
        # Not a valid origin-form request target (RFC 9112 3.2.1); read as //host by some.
        raise _refuse("the path starts with '//'")
    for segment in path[len(base_path) :].split("/"):
        decoded = unquote(segment)
        if decoded.split(";", 1)[0] in (".", ".."):
            # Raw ones are resolved away by urljoin; encoded ones (%2e%2e) are decoded by
            # requests (unreserved characters) and then removed by urllib3 as dot-segments.
            # With a path parameter (``..;x``, ``%2e%2e%3b``) neither happens, but servers that
            # strip parameters before normalising (Tomcat and what copies it) read ``..``.
            raise _refuse("the path has a dot-segment")
        if "/" in decoded or "\\" in decoded:
            raise _refuse("the path has an encoded '/' or '\\'")


def _split_within(url: str, base: SplitResult, base_path: str) -> tuple[str, str]:
    """``url``'s path and query, resolved against ``base``; refused when off its origin."""
    try:
        given = urlsplit(url)
        # The port is parsed on access: a malformed one raises here, with the parse errors.
        origin = _origin(given.scheme, given.hostname, given.port)
        anchor = urlunsplit(("http", "api", base_path, "", ""))
        joined = urlsplit(urljoin(anchor, url.lstrip("/")))
    except ValueError as exc:
        raise _refuse(f"the URL cannot be parsed ({exc})") from None
    if not (given.scheme or given.netloc):
        if url.startswith("//"):
            raise _refuse("a network-path reference ('//host') is not a path")
        return joined.path, joined.query
    if given.netloc and "@" in given.netloc:
        raise _refuse("the URL has userinfo")
    if not given.scheme or origin != _origin(base.scheme, base.hostname, base.port):
        raise _refuse("the URL is on another origin (scheme, host or port)")
    return given.path or "/", given.query


def resolve_api_url(url: str, base_url: str) -> str:
    """The absolute URL ``url`` stands for, relative to ``base_url``; :class:`ValueError` when
    the bearer token must not go there (RFC 6750 5.3: tokens go to their resource server only).

    ``url`` is a path relative to ``base_url`` (a leading ``/`` is ignored, as before:
    ``"/v1/me"`` and ``"v1/me"`` are the same) or an absolute URL under ``base_url``. The rule
    is checked on the URL that is actually requested: the same scheme, host and port as
    ``base_url``, the path under its path, no userinfo, no whitespace, control character or
    backslash anywhere in ``url``, no dot-segment (plain or percent-encoded, also with a ``;``
    parameter: ``..;x``) and no encoded ``/`` in the path, no network-path reference
    (``//host``), no path starting with ``//``. The answer is rebuilt from ``base_url``'s
    scheme and authority, without fragment.
    """
    if not isinstance(url, str):
        raise TypeError("the URL must be a str")
    base = urlsplit(base_url)
    if base.scheme.lower() not in _DEFAULT_PORTS or not base.hostname:
        raise ValueError("API_BASE_URL must be an absolute http(s) URL")
    base_path = base.path if base.path.endswith("/") else f"{base.path}/"
    if any(_is_unsafe_char(char) for char in url):
        raise _refuse("the URL contains whitespace, a control character or a backslash")
    path, query = _split_within(url, base, base_path)
    _check_path(path, base_path)
    return urlunsplit((base.scheme.lower(), base.netloc, path, query, ""))


# --- 401: one forced refresh per access token ----------------------------------------------


def _digest(access_token: str) -> str:
    return hashlib.sha256(access_token.encode()).hexdigest()[:32]


class ForcedRefreshPolicy:
    """When the API answers 401 (RFC 6750 3.1, ``invalid_token``): refresh once, retry once.

    At most one forced refresh per access token: :func:`~django_pagero_oauth.tokens.refresh`
    with ``force=True`` is single-flight per rejected access token, and an access token that
    itself came out of a forced refresh is never force-refreshed again; its 401 goes back to
    the caller as it is (the API refuses this user something; a new token will not change
    that, and every refresh would use up a single-use refresh token). Such tokens are
    remembered by this object (one per session) and, by a digest that reveals nothing, in
    Django's default cache until they expire, so that other sessions, processes and hosts
    (with a shared cache) do not rotate them either. The access token's normal expiry refresh
    is untouched.
    """

    cache_prefix = "django_pagero_oauth:forced-refresh:"

    def __init__(self) -> None:
        self._fresh: set[str] = set()

    def __repr__(self) -> str:
        return f"<ForcedRefreshPolicy remembered={len(self._fresh)}>"

    def _key(self, digest: str) -> str:
        return f"{self.cache_prefix}{digest}"

    @staticmethod
    def _ttl(token: PageroToken) -> int:
        return max(1, int((token.access_token_expires_at - timezone.now()).total_seconds()) + 1)

    def may_refresh(self, rejected: PageroToken) -> bool:
        """May a 401 with ``rejected``'s access token cause a forced refresh?"""
        digest = _digest(rejected.access_token)
        if digest in self._fresh:
            return False
        return caches[DEFAULT_CACHE_ALIAS].get(self._key(digest)) is None

    def refreshed(self, fresh: PageroToken) -> None:
        """Remember that ``fresh`` came out of a forced refresh."""
        digest = _digest(fresh.access_token)
        self._fresh.add(digest)
        caches[DEFAULT_CACHE_ALIAS].set(self._key(digest), True, self._ttl(fresh))

    async def amay_refresh(self, rejected: PageroToken) -> bool:
        """:meth:`may_refresh` for async clients."""
        digest = _digest(rejected.access_token)
        if digest in self._fresh:
            return False
        return await caches[DEFAULT_CACHE_ALIAS].aget(self._key(digest)) is None

    async def arefreshed(self, fresh: PageroToken) -> None:
        """:meth:`refreshed` for async clients."""
        digest = _digest(fresh.access_token)
        self._fresh.add(digest)
        await caches[DEFAULT_CACHE_ALIAS].aset(self._key(digest), True, self._ttl(fresh))


# --- retries of idempotent requests on a busy Pagero -----------------------------------------

#: Methods that may be sent again (RFC 9110 9.2.2; TRACE and the unsafe ones never are).
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers that mean "busy, try again" (RFC 6585 4; RFC 9110 15.6.3-15.6.5).
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Back-off (seconds) without ``Retry-After``: 0, then this times 2 ** (retry - 1), at most 8.
RETRY_BACKOFF_FACTOR = 0.5
RETRY_BACKOFF_MAX = 8.0


class ApiRetry(Retry):
    """urllib3's ``Retry`` for API calls: :data:`RETRY_STATUSES` of :data:`RETRY_METHODS` only,
    honouring ``Retry-After`` (RFC 9110 10.2.3) up to ``retry_after_cap`` seconds; a longer
    wait is not made: the answer goes back to the caller as it is. Transport errors are not
    retried (a read timeout stays a ``ReadTimeout``)."""

    RETRY_AFTER_STATUS_CODES = RETRY_STATUSES
    DEFAULT_BACKOFF_MAX = int(RETRY_BACKOFF_MAX)

    #: Not urllib3's ``retry_after_max`` (2.6+), which waits that long and retries anyway.
    retry_after_cap: float = 0.0

    @classmethod
    def from_settings(cls) -> ApiRetry:
        retries = app_settings.API_RETRIES
        retry = cls(
            total=retries,
            status=retries,
            connect=0,
            read=False,
            other=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=RETRY_METHODS,
            backoff_factor=RETRY_BACKOFF_FACTOR,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.retry_after_cap = app_settings.API_RETRY_AFTER_MAX
        # urllib3 2 takes the cap of the back-off from the base class's default (120 s), not
        # from DEFAULT_BACKOFF_MAX here; new() carries the instance's value on.
        retry.backoff_max = RETRY_BACKOFF_MAX
        return retry

    def new(self, **kw: Any) -> ApiRetry:
        fresh = super().new(**kw)
        fresh.retry_after_cap = self.retry_after_cap
        return fresh

    def get_retry_after(self, response: Any) -> float | None:
        """Seconds from the answer's ``Retry-After``, or None (no header, or one that is
        neither delay-seconds nor an HTTP-date): the back-off applies as without it."""
        return retry_after_seconds(response.headers.get("Retry-After"))

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> ApiRetry:
        if response is not None and error is None:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > self.retry_after_cap:
                # urllib3 answers with this response (raise_on_status is False).
                raise MaxRetryError(_pool, url or "", ResponseError("Retry-After beyond the cap"))
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        return fresh


# --- requests -----------------------------------------------------------------------------------


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


def _detached(exc: BaseException) -> BaseException:
    """``exc`` fit to leave this package: no traceback below the package, no chained
    exceptions (whose frames in ``requests`` and ``urllib3`` hold the prepared headers).

    A ``requests`` exception becomes a new one of the same class and message, so callers'
    ``except requests.ConnectionError`` keeps working; its ``request`` is a copy without the
    ``Authorization`` header. Any other exception keeps its class but not its message, which
    may quote the header (``http.client``: "Invalid header value b'Bearer ...'").
    """
    if isinstance(exc, requests.RequestException):
        request = None
        if isinstance(exc.request, requests.PreparedRequest):
            request = exc.request.copy()
            request.headers.pop("Authorization", None)
        try:
            fresh: BaseException = type(exc)(str(exc), request=request)
        except Exception:  # a subclass with another constructor
            fresh = requests.RequestException(str(exc), request=request)
        return fresh
    return _withheld(exc)


def _withheld(exc: BaseException) -> BaseException:
    """A new exception of ``exc``'s class (or a ``RuntimeError`` naming it) whose message says
    the original one is withheld: nothing of ``exc`` (its message, ``args``, attributes such as
    ``UnicodeEncodeError.object``, traceback or chain) goes with it. Shared by the async client.
    """
    message = f"{type(exc).__name__} while sending the request (its message is withheld)"
    try:
        fresh: BaseException = type(exc)(message)
    except Exception:  # a class with another constructor
        fresh = RuntimeError(f"{type(exc).__module__}.{message}")
    return fresh


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
        token = _given_token(token)
        if token is not None and token.user_id != user.pk:
            raise ValueError("The token given to PageroSession belongs to another user.")
        self.user = user
        self._token = token
        self.forced_refresh = ForcedRefreshPolicy()
        base = base_url if base_url is not None else app_settings.API_BASE_URL
        self.base_url = base if base.endswith("/") else f"{base}/"
        self.headers["Accept"] = "application/json"
        self.headers["User-Agent"] = "django-pagero-oauth"
        if app_settings.API_RETRIES:
            # Only for the API: oauth.py's token and revocation requests never get here.
            self.mount(self.base_url, HTTPAdapter(max_retries=ApiRetry.from_settings()))

    def __repr__(self) -> str:
        return f"<PageroSession user_id={self.user.pk} base_url={self.base_url!r}>"

    def api_url(self, url: str) -> str:
        """``url`` resolved against ``base_url`` by :func:`resolve_api_url` (which see)."""
        return resolve_api_url(url, self.base_url)

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """A redirect (only with ``allow_redirects=True``) keeps the bearer token only when its
        target passes :func:`resolve_api_url`; ``~/.netrc`` is never consulted."""
        try:
            resolve_api_url(prepared_request.url or "", self.base_url)
        except ValueError:
            prepared_request.headers.pop("Authorization", None)

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

    @sensitive_variables()
    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if args:
            raise TypeError("PageroSession.request() takes keyword arguments after the URL")
        if kwargs.get("auth") is not None:
            raise TypeError("PageroSession sets the Authorization header itself; pass no auth")
        kwargs.pop("auth", None)
        method = method.decode() if isinstance(method, bytes) else method
        full_url = self.api_url(url.decode() if isinstance(url, bytes) else url)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = app_settings.TIMEOUT
        kwargs.setdefault("allow_redirects", False)
        token = self._current_token()
        response = self._send_with(token, method, full_url, dict(kwargs))
        if (
            response.status_code == 401
            and self._rejected_by_the_api(response)
            and self.forced_refresh.may_refresh(token)
        ):
            # RFC 6750 3.1: the access token was rejected; one forced single-flight refresh.
            response.close()
            token = self._token = refresh(token, force=True)
            self.forced_refresh.refreshed(token)
            response = self._send_with(token, method, full_url, dict(kwargs))
        return response

    def _rejected_by_the_api(self, response: requests.Response) -> bool:
        """Was the 401 the API's answer to the token? After a redirect off the API (which
        dropped the header) it is another server's, and must not cost a refresh token."""
        request = response.request
        if request is None or "Authorization" not in request.headers:
            return False
        try:
            resolve_api_url(response.url or "", self.base_url)
        except ValueError:
            return False
        return True

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """GET without following redirects unless asked (``requests`` follows them for GET)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)

    def options(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """OPTIONS without following redirects unless asked."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("OPTIONS", url, **kwargs)

    def _current_token(self) -> PageroToken:
        """The token this session holds while it is not expiring; else a valid one, fetched.

        So several calls in one view (or one job) cost one query, not one each. A token the
        session holds (given to it, or fetched earlier) is not used for an inactive user or a
        connection that needs re-authorization, as far as the objects in hand say; a fetched
        one is checked against the database (:func:`~django_pagero_oauth.get_valid_token`).
        """
        token = self._token
        if token is None or token.access_token_needs_refresh():
            token = self._token = get_valid_token(self.user)
        elif not _may_use(self.user, token):
            self._token = None
            raise PageroAuthorizationRequired(
                "The user is inactive, or the Pagero connection must be renewed.",
                user_pk=self.user.pk,
            )
        return token


def _given_token(token: PageroToken | LazyObject | None) -> PageroToken | None:
    """The token given to a session; ``request.pagero_token`` (a lazy object) evaluated.

    Outside the guard's protection the middleware's lazy object holds ``None`` for a user
    without a usable token: that is "no token" (the session fetches one, or raises
    :class:`PageroAuthorizationRequired`), not an ``AttributeError``.
    """
    if isinstance(token, LazyObject):
        lazy: Any = token  # its _wrapped and _setup() are Django's, not in the stubs
        if lazy._wrapped is empty:
            lazy._setup()
        return cast("PageroToken | None", lazy._wrapped)
    return token


def _may_use(user: AbstractBaseUser, token: PageroToken) -> bool:
    """Is ``token`` usable for ``user``, judged on these objects (no query)?"""
    if not user.is_active or token.needs_reauthorization:
        return False
    relation = token._meta.get_field("user")
    return not relation.is_cached(token) or bool(token.user.is_active)


def get_client(
    user: AbstractBaseUser, *, base_url: str | None = None, token: PageroToken | None = None
) -> PageroSession:
    """A :class:`PageroSession` for ``user`` (relative URLs resolve against ``API_BASE_URL``).

    In a protected view pass ``token=request.pagero_token``: the session starts with the token
    the view already has, instead of reading it again.
    """
    return PageroSession(user, base_url=base_url, token=token)
