"""The rules of an API call, one set for both clients (``client`` with ``requests``, ``aclient``
with ``httpx``): plain values in, decisions out, no HTTP library imported. Each client keeps its
send call and a thin loop around it.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.utils import timezone
from django.utils.functional import LazyObject, empty

from .conf import app_settings
from .exceptions import PageroAuthorizationRequired
from .transport import retry_after_seconds

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .models import PageroToken


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

    ``url`` is a path relative to ``base_url`` (a leading ``/`` is ignored: ``"/v1/me"`` and
    ``"v1/me"`` are the same) or an absolute URL under ``base_url``. The rule is checked on the
    URL that is actually requested: the same scheme, host and port as ``base_url``, the path
    under its path, no userinfo, no whitespace, control character or backslash anywhere in
    ``url``, no dot-segment (plain or percent-encoded, also with a ``;`` parameter: ``..;x``)
    and no encoded ``/`` in the path, no network-path reference (``//host``), no path starting
    with ``//``. The answer is rebuilt from ``base_url``'s scheme and authority, without
    fragment.
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


def _digest(access_token: str) -> str:
    return hashlib.sha256(access_token.encode()).hexdigest()[:32]


class ForcedRefreshPolicy:
    """When the API answers 401 (RFC 6750 3.1, ``invalid_token``): refresh once, retry once.

    At most one forced refresh per access token: :func:`~django_pagero_oauth.tokens.refresh`
    with ``force=True`` is single-flight per rejected access token, and an access token that
    itself came out of a forced refresh is never force-refreshed again; its 401 goes back to
    the caller as it is (the API refuses this user something; a new token will not change
    that, and every refresh would use up a single-use refresh token). Such tokens are
    remembered by this object (one per client) and, by a digest that reveals nothing, in
    Django's default cache until they expire, so that other sessions, processes and hosts
    (with a shared cache) do not rotate them either. The access token's normal expiry refresh
    is untouched.
    """

    cache_prefix = "django_pagero_oauth:forced-refresh:"

    def __init__(self) -> None:
        self._fresh: set[str] = set()

    def __repr__(self) -> str:
        return f"<ForcedRefreshPolicy remembered={len(self._fresh)}>"

    def _key(self, token: PageroToken) -> str:
        return f"{self.cache_prefix}{_digest(token.access_token)}"

    def _remember(self, fresh: PageroToken) -> int:
        """Remember ``fresh`` here; the seconds the cache keeps it (until it expires)."""
        self._fresh.add(_digest(fresh.access_token))
        ttl = int((fresh.access_token_expires_at - timezone.now()).total_seconds()) + 1
        return max(1, ttl)

    def may_refresh(self, rejected: PageroToken) -> bool:
        """May a 401 with ``rejected``'s access token cause a forced refresh?"""
        if _digest(rejected.access_token) in self._fresh:
            return False
        return caches[DEFAULT_CACHE_ALIAS].get(self._key(rejected)) is None

    def refreshed(self, fresh: PageroToken) -> None:
        """Remember that ``fresh`` came out of a forced refresh."""
        caches[DEFAULT_CACHE_ALIAS].set(self._key(fresh), True, self._remember(fresh))

    async def amay_refresh(self, rejected: PageroToken) -> bool:
        """:meth:`may_refresh` for async clients."""
        if _digest(rejected.access_token) in self._fresh:
            return False
        return await caches[DEFAULT_CACHE_ALIAS].aget(self._key(rejected)) is None

    async def arefreshed(self, fresh: PageroToken) -> None:
        """:meth:`refreshed` for async clients."""
        await caches[DEFAULT_CACHE_ALIAS].aset(self._key(fresh), True, self._remember(fresh))


#: Methods that may be sent again (RFC 9110 9.2.2; TRACE and the unsafe ones never are).
RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers that mean "busy, try again" (RFC 6585 4; RFC 9110 15.6.3-15.6.5).
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _backoff(retry: int) -> float:
    """Seconds before retry number ``retry`` without ``Retry-After``: 0, 1, 2, 4, at most 8."""
    return 0.0 if retry <= 1 else min(8.0, 0.5 * 2 ** (retry - 1))


class ApiRules:
    """The decisions of one API client, bound to one user: its token, its base URL, its memory
    of forced refreshes and the retry settings (``API_RETRIES``, ``API_RETRY_AFTER_MAX``) as
    they were when it was made. ``client`` names the client in messages; an async one does not
    ``evaluate`` a lazy token."""

    def __init__(
        self,
        client: str,
        user: AbstractBaseUser,
        token: PageroToken | LazyObject | None,
        base_url: str | None,
        *,
        evaluate: bool = True,
    ) -> None:
        token = _given_token(token, evaluate)
        if token is not None and token.user_id != user.pk:
            raise ValueError(f"The token given to {client} belongs to another user.")
        self.user = user
        self.token = token
        base = base_url if base_url is not None else app_settings.API_BASE_URL
        self.base_url = base if base.endswith("/") else f"{base}/"
        self.forced_refresh = ForcedRefreshPolicy()
        self.retries = app_settings.API_RETRIES
        self.retry_after_cap = app_settings.API_RETRY_AFTER_MAX

    def api_url(self, url: str) -> str:
        """``url`` resolved against the base URL by :func:`resolve_api_url` (which see)."""
        return resolve_api_url(url, self.base_url)

    def on_the_api(self, url: str) -> bool:
        """May the bearer token go to ``url`` (a redirect's target, an answer's URL)?"""
        try:
            self.api_url(url)
        except ValueError:
            return False
        return True

    def held_token(self) -> PageroToken | None:
        """The token held while it is not expiring (several calls cost one query), unless the
        objects in hand say its user is inactive or it needs re-authorization; None when the
        client must fetch a valid one (``get_valid_token``) and :meth:`hold` it."""
        token = self.token
        if token is None or token.access_token_needs_refresh():
            return None
        if not _may_use(self.user, token):
            self.token = None
            raise PageroAuthorizationRequired(
                "The user is inactive, or the Pagero connection must be renewed.",
                user_pk=self.user.pk,
            )
        return token

    def hold(self, token: PageroToken) -> PageroToken:
        """Use ``token`` (fetched, or out of a forced refresh) for the next calls."""
        self.token = token
        return token

    def rejected_by_the_api(self, status: int, bearer_sent: bool, url: str) -> bool:
        """Did the API reject the token (a 401 to a request that carried it)? After a redirect
        off the API (which dropped the header) the 401 is another server's, and must not cost
        a refresh token; :attr:`forced_refresh` has the last word."""
        return status == 401 and bearer_sent and self.on_the_api(url)

    def retry_wait(
        self, retry: int, method: str, status: int, headers: Mapping[str, str], url: str
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (1, 2, ...) of a request whose answer
        came from ``url``, or None: that answer goes back to the caller.

        Only :data:`RETRY_STATUSES` of :data:`RETRY_METHODS` to the API, at most
        ``API_RETRIES`` times, after ``Retry-After`` (RFC 9110 10.2.3; a value that is neither
        delay-seconds nor an HTTP-date counts as none) or the back-off; a ``Retry-After`` over
        ``API_RETRY_AFTER_MAX`` is not waited for. The caller sends again only a body it can
        send again; transport errors are never retried.
        """
        if (
            retry > self.retries
            or method not in RETRY_METHODS
            or status not in RETRY_STATUSES
            or not self.on_the_api(url)
        ):
            return None
        retry_after = retry_after_seconds(headers.get("Retry-After"))
        if retry_after is None:
            return _backoff(retry)
        return retry_after if retry_after <= self.retry_after_cap else None


def _given_token(token: PageroToken | LazyObject | None, evaluate: bool) -> PageroToken | None:
    """The token given to a client; a lazy ``request.pagero_token`` holding ``None`` (no usable
    token) is no token. An async client does not evaluate it (a query in the event loop)."""
    if not isinstance(token, LazyObject):
        return token
    lazy: Any = token  # its _wrapped and _setup() are Django's, not in the stubs
    if lazy._wrapped is empty:
        if not evaluate:
            raise TypeError(
                "aget_client() got the lazy request.pagero_token: pass "
                "`await request.apagero_token()` (or the token of a protected view) instead."
            )
        lazy._setup()
    return cast("PageroToken | None", lazy._wrapped)


def _may_use(user: AbstractBaseUser, token: PageroToken) -> bool:
    """Is ``token`` usable for ``user``, judged on these objects (no query)?"""
    if not user.is_active or token.needs_reauthorization:
        return False
    relation = token._meta.get_field("user")
    return not relation.is_cached(token) or bool(token.user.is_active)


def rebuilt(
    exc: BaseException, message: str, request: Any, fallback: Callable[..., BaseException]
) -> BaseException:
    """A new exception of ``exc``'s class (an HTTP library's) with ``message`` and ``request``
    (a copy without the token), or a ``fallback``: nothing else of ``exc`` goes with it."""
    cls: Callable[..., BaseException] = type(exc)
    try:
        return cls(message, request=request)
    except Exception:  # a subclass with another constructor
        return fallback(message, request=request)


def withheld_message(exc: BaseException) -> str:
    return f"{type(exc).__name__} while sending the request (its message is withheld)"


def withheld(exc: BaseException) -> BaseException:
    """A new exception of ``exc``'s class (or a ``RuntimeError`` naming it) whose message says
    the original one is withheld: nothing of ``exc`` (its message, ``args``, attributes such as
    ``UnicodeEncodeError.object``, traceback or chain) goes with it."""
    message = withheld_message(exc)
    try:
        fresh: BaseException = type(exc)(message)
    except Exception:  # a class with another constructor
        fresh = RuntimeError(f"{type(exc).__module__}.{message}")
    return fresh
