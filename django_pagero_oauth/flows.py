"""Pending authorization flows, kept in the Django session, keyed by their ``state``, and the
masking of the callback's code and state in the request once they are read.

Each login creates one entry (RFC 6749 10.12: ``state`` binds the redirect back to the browser
session that started it). The callback *pops* the entry on every path, so a replayed callback
finds nothing. Entries expire after ``STATE_MAX_AGE`` seconds, and at most ``MAX_PENDING_FLOWS``
are kept (the oldest go first), so two tabs can both log in.

Removing the entry from the session is not enough to spend a state: a session is saved whole,
so another request of the same browser that loaded it before the callback (a second tab, a
double click on the same callback) saves the entry back, and a transaction that rolls back
(``ATOMIC_REQUESTS`` and a failing view) takes a database session's removal with it. So the
state is also *spent* with an atomic ``add`` to Django's default cache, which no session save
and no transaction can undo; of two callbacks with one state, exactly one gets the flow.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, quote_plus

from django.contrib.sessions.backends.base import UpdateError
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .exceptions import CallbackError
from .oauth import generate_code_verifier, generate_state

if TYPE_CHECKING:
    from django.http.request import _ImmutableQueryDict

SESSION_KEY = "_pagero_oauth_flows"

#: Prefix of the cache keys that mark a state as spent (followed by the state's SHA-256).
SPENT_STATE_KEY_PREFIX = "django_pagero_oauth:spent-state:"

#: Seconds a spent mark outlives ``STATE_MAX_AGE``: room for clocks of several hosts to differ.
SPENT_STATE_MARGIN = 60

logger = logging.getLogger("django_pagero_oauth")


@dataclass(frozen=True, repr=False)
class Flow:
    """One login in progress. ``code_verifier`` is set when PKCE is on."""

    state: str
    user_id: str
    redirect_uri: str
    next_url: str
    created: float
    code_verifier: str | None = None
    #: OpenID Connect: sent as ``nonce``, the ``id_token`` must carry it back (Core 3.1.2.1).
    nonce: str | None = None
    #: "Sign in with Pagero": started by a visitor who need not be logged in.
    sign_in: bool = False

    def __repr__(self) -> str:
        # Never the PKCE verifier or the nonce (an error report shows a frame's locals by repr).
        return (
            f"Flow(user_id={self.user_id!r}, next_url={self.next_url!r}, "
            f"sign_in={self.sign_in!r}, created={self.created!r})"
        )

    def is_expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) - self.created > app_settings.STATE_MAX_AGE


def _pending(request: HttpRequest) -> dict[str, dict[str, object]]:
    flows = request.session.get(SESSION_KEY)
    return dict(flows) if isinstance(flows, dict) else {}


def _user_id(request: HttpRequest) -> str:
    return str(request.user.pk) if request.user.is_authenticated else ""


def start_flow(
    request: HttpRequest, *, redirect_uri: str, next_url: str, sign_in: bool = False
) -> Flow:
    """Create and remember a new flow for the user of ``request``.

    A connect flow needs a logged-in user; a ``sign_in`` flow may be started anonymously. Both
    carry a ``nonce`` when they ask for an ``id_token`` (sign-in always does).
    """
    now = time.time()
    flow = Flow(
        state=generate_state(),
        user_id=_user_id(request),
        redirect_uri=redirect_uri,
        next_url=next_url,
        created=now,
        code_verifier=generate_code_verifier() if app_settings.PKCE else None,
        nonce=generate_state() if sign_in or app_settings.openid_requested else None,
        sign_in=sign_in,
    )
    pending = {
        state: entry
        for state, entry in _pending(request).items()
        if isinstance(entry, dict)
        and now - float(entry.get("created", 0)) <= app_settings.STATE_MAX_AGE  # type: ignore[arg-type]
    }
    pending[flow.state] = {key: value for key, value in asdict(flow).items() if key != "state"}
    while len(pending) > app_settings.MAX_PENDING_FLOWS:
        oldest = min(pending, key=lambda key: float(pending[key]["created"]))  # type: ignore[arg-type]
        del pending[oldest]
    request.session[SESSION_KEY] = pending
    return flow


def spend_state(state: str) -> bool:
    """Mark ``state`` as used; True for the one caller that spends it, False if it was spent.

    ``cache.add`` is atomic in every cache backend Django ships (a shared cache makes it so
    across processes and hosts; ``LocMemCache`` only within one process). The mark lasts as long
    as the flow could still be accepted, ``STATE_MAX_AGE`` from now, plus a margin.
    """
    digest = hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()
    timeout = app_settings.STATE_MAX_AGE + SPENT_STATE_MARGIN
    return bool(caches[DEFAULT_CACHE_ALIAS].add(SPENT_STATE_KEY_PREFIX + digest, 1, timeout))


def pop_flow(request: HttpRequest, state: str | None) -> Flow:
    """Remove and return the flow for ``state``; raise :class:`CallbackError` if it is not valid.

    The state is spent (:func:`spend_state`) and its entry removed before any check, so whatever
    happens next it cannot be used again. Valid means: present in this session, not spent
    before, started by the user now logged in, not expired.
    """
    if not state:
        raise _refused(_("The answer from Pagero has no state."))
    pending = _pending(request)
    # In constant time: a dict lookup by an attacker-chosen key would leak little, this nothing.
    given = state.encode("utf-8", "surrogatepass")  # compare_digest refuses non-ASCII str
    match = next((key for key in pending if hmac.compare_digest(key.encode("utf-8"), given)), None)
    entry = pending.pop(match) if match is not None else None
    if match is not None:
        if not spend_state(match):
            # A stale copy of the session brought the entry back, or another request with this
            # state is running right now: either way it was used already.
            logger.warning("Pagero callback: a state that was already spent came back")
            entry = None
        request.session[SESSION_KEY] = pending
        # Persist the removal now: SessionMiddleware does not save the session when the answer
        # is a 5xx (e.g. "Pagero is unavailable"), which would leave the state replayable.
        try:
            request.session.save()
        except UpdateError:  # the session was ended meanwhile (a logout in another tab)
            entry = None
    if not isinstance(entry, dict):
        raise _refused(_("This login is unknown or was already used. Please start again."))
    try:
        flow = Flow(state=state, **entry)  # type: ignore[arg-type]
    except TypeError:
        raise _refused(_("This login cannot be read. Please start again.")) from None
    # Same user as at the start; anonymous only for a sign-in flow started anonymously.
    if flow.user_id != _user_id(request) or not (flow.user_id or flow.sign_in):
        raise _refused(_("This login was started by another user. Please start again."))
    if flow.is_expired():
        raise _refused(_("This login took too long. Please start again."))
    return flow


def _refused(message: Any) -> CallbackError:
    return CallbackError(str(message), error="invalid_state")


#: Callback parameters that must not reach an error report, a tracker or a log once read.
SECRET_CALLBACK_PARAMETERS = ("code", "state")
MASK = "********"
#: Shorter secret values are masked in ``request.META`` only as part of the raw query string
#: (masking a two-character value everywhere would garble unrelated headers).
_MIN_MASKED_LENGTH = 8


def hide_callback_secrets(request: HttpRequest) -> None:
    """Mask the authorization code (and state) in ``request`` for whatever looks at it later.

    Django's error reports (and error trackers) show ``request.GET`` and the full URL, built
    from ``QUERY_STRING``; no exception reporter filter hides them. Under ASGI, error trackers
    also read the ASGI scope's ``query_string`` (bytes), masked the same way. The view reads
    the values before this runs, so masking loses nothing.
    """
    masked = request.GET.copy()
    secrets: set[str] = set()
    for name in SECRET_CALLBACK_PARAMETERS:
        if name in masked:
            secrets.update(masked.getlist(name))
            masked.setlist(name, [MASK] * len(masked.getlist(name)))
    masked._mutable = False
    request.GET = cast("_ImmutableQueryDict", masked)
    raw_query = request.META.get("QUERY_STRING", "")
    masked_query = masked.urlencode(safe="*")
    request.META["QUERY_STRING"] = masked_query
    # The server's own copies of the request line (gunicorn's RAW_URI, uWSGI's and mod_wsgi's
    # REQUEST_URI, ...) are in META too, and error reports list META; QUERY_STRING is masked
    # the same way, for a secret that a non-secret parameter repeats.
    forms = sorted(
        {
            form
            for secret in secrets
            if len(secret) >= _MIN_MASKED_LENGTH
            for form in (secret, quote(secret, safe=""), quote_plus(secret))
        },
        key=len,
        reverse=True,
    )
    for key, value in list(request.META.items()):
        if not isinstance(value, str):
            continue
        hidden = value.replace(raw_query, masked_query) if raw_query else value
        for form in forms:
            hidden = hidden.replace(form, MASK)
        if hidden != value:
            request.META[key] = hidden
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and isinstance(scope.get("query_string"), bytes | str):
        # Bytes from a server (ASGI spec); Django's AsyncRequestFactory puts a str there.
        is_bytes = isinstance(scope["query_string"], bytes)
        query = request.META["QUERY_STRING"]
        scope["query_string"] = query.encode("ascii") if is_bytes else query
