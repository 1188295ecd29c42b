"""Error reports, filtered as in production, show no secret (issue 9, part 3).

Django's ``ExceptionReporter`` (error e-mails, the 500 page's text; error trackers read the
same frames) shows the local variables of EVERY frame of the traceback and of every chained
exception, including the frames of ``requests``, ``urllib3`` and ``http.client`` below this
package, where the prepared headers (``Authorization: Bearer``/``Basic``) and the form body
live. With ``SafeExceptionReporterFilter`` active (``DEBUG = False``), each failure below is
provoked for real, the whole report is rendered (text and HTML), and it is scanned for every
access, refresh and ID token ever issued, the client secret (and its Basic encoding), the
encryption keys (configured Fernet keys, the keys derived from ``SECRET_KEY``, and it).

Failures: API calls (connection refused, timeout, dropped connection, a bug deep in urllib3,
a failing forced refresh, in a view; for ``aget_client``: connection refused, timeout, dropped
connection, a failing forced refresh), code exchange, refresh and revocation (refused,
timeout, a bug deep in urllib3), the admin's actions, the management commands, and a lost
encryption key, and the callback view whose code exchange fails (its request section: the
code is masked in ``request.GET`` and the query string once the view has read it).
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import requests
import urllib3
from asgiref.sync import async_to_sync
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.core.signals import got_request_exception
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

import django_pagero_oauth
from django_pagero_oauth import aget_client, get_client
from django_pagero_oauth.crypto import derive_key
from django_pagero_oauth.exceptions import PageroUnavailable, TokenDecryptionError
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import exchange_code, generate_code_verifier
from django_pagero_oauth.signals import token_obtained
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token, revoke

from .test_secrets_never_leak import CLIENT_ID, CLIENT_SECRET, Secrets

PACKAGE = str(Path(django_pagero_oauth.__file__).parent)
KEYS = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]


@pytest.fixture(autouse=True)
def _keys(settings: Any, pagero_mock: Any) -> None:
    """Tokens encrypted with configured Fernet keys (so that the keys can be looked for)."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": KEYS}


@pytest.fixture(autouse=True)
def _filter_is_active() -> None:
    assert SafeExceptionReporterFilter().is_active(None), "DEBUG must be False here"


@dataclass
class Report:
    exc: BaseException
    texts: list[str]
    frames: list[dict[str, Any]]


def render(exc: BaseException, request: Any = None) -> Report:
    """The whole report, as Django's error e-mail renders it, plus each frame variable's repr
    (``pprint`` may wrap a long string in the rendered report, so look at the values too)."""
    reporter = ExceptionReporter(request, type(exc), exc, exc.__traceback__, is_email=True)
    frames = reporter.get_traceback_frames()
    texts = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    texts += [
        f"{frame['filename']} {name}={_repr(value)}"
        for frame in frames
        for name, value in frame["vars"]
    ]
    return Report(exc, texts, frames)


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # as Django's pprint filter: a value whose repr fails
        return f"Error in formatting: {type(exc).__name__}"


def raised_by(call: Callable[[], Any], expected: type[BaseException] = Exception) -> BaseException:
    """What ``call`` raised; its traceback starts in this frame, whose only local is ``call``."""
    try:
        call()
    except expected as exc:
        return exc
    raise AssertionError("nothing was raised")


class Hidden:
    """A call whose arguments are secret: its repr (in the test's own frame) shows none."""

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._call = (function, args, kwargs)

    def __repr__(self) -> str:
        return "<Hidden call>"

    def __call__(self) -> Any:
        # No local variables here: this test frame is in the report too.
        return self._call[0](*self._call[1], **self._call[2])


def all_secrets(pagero_mock: Any, *extra: str) -> Secrets:
    secrets = Secrets()
    for value in pagero_mock.mock._tokens:  # every access and refresh token the mock issued
        secrets.add("issued token", value)
    for token in PageroToken.objects.all():
        for value in (token.access_token, token.refresh_token, token.id_token):
            secrets.add("stored", value)
    secrets.add("client secret", CLIENT_SECRET)
    secrets.add("basic", base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode())
    for key in KEYS:
        secrets.add("Fernet key", key)
    secrets.add("SECRET_KEY", django_settings.SECRET_KEY)
    secrets.add("derived key", derive_key(django_settings.SECRET_KEY).decode())
    for value in extra:
        secrets.add("extra", value)
    return secrets


def assert_clean(report: Report, secrets: Secrets) -> None:
    assert len(secrets.values) >= 6
    secrets.assert_absent(report.texts, "the error report")


def assert_detached(report: Report) -> None:
    """No frame below the package, and no chained exception (whose frames would be shown)."""
    assert report.exc.__cause__ is None
    assert report.exc.__context__ is None or report.exc.__suppress_context__
    below = [
        frame["filename"]
        for frame in report.frames
        if any(name in frame["filename"] for name in ("/requests/", "/urllib3/", "/http/client"))
    ]
    assert below == []
    assert any(frame["filename"].startswith(PACKAGE) for frame in report.frames)


@pytest.fixture
def boom_in_urllib3(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug deep in urllib3: its frames (``urlopen``, ``_make_request``) hold the headers and
    the body as local variables."""

    def explode(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("unexpected failure inside urllib3")

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "request", explode)


def _point(settings: Any, **urls: str) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **urls}


# --- API calls ------------------------------------------------------------------------------------


def test_api_call_connection_refused(
    user, pagero_mock, pagero_token_factory, settings, refused_url
):
    pagero_token_factory(user)
    _point(settings, API_BASE_URL=refused_url.replace("/oauth/v2/oauth-token", "/api"))
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert type(report.exc) is requests.ConnectionError  # callers' except clauses still work
    assert "Max retries exceeded" in str(report.exc)
    assert report.exc.request is not None and "Authorization" not in report.exc.request.headers
    assert_detached(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_api_call_timeout(user, pagero_mock, pagero_token_factory, settings):
    pagero_token_factory(user)
    _point(settings, TIMEOUT=0.2)
    pagero_mock.mock.add_fault(Fault(endpoint="api", delay=5))
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert isinstance(report.exc, requests.Timeout)
    assert type(report.exc) is requests.ReadTimeout
    assert_detached(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_api_call_dropped_connection(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", drop=True))
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert isinstance(report.exc, requests.ConnectionError)
    assert_detached(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_api_call_bug_deep_in_urllib3(user, pagero_mock, pagero_token_factory, boom_in_urllib3):
    pagero_token_factory(user)
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert type(report.exc) is RuntimeError
    assert_detached(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_api_call_whose_forced_refresh_fails(
    user, pagero_mock, pagero_token_factory, settings, refused_url
):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    _point(settings, TOKEN_URL=refused_url)
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert isinstance(report.exc, PageroUnavailable)
    assert_clean(report, all_secrets(pagero_mock))


# --- async API calls (aget_client) ---------------------------------------------------------------


def async_get(user: Any, url: str = "v1/me") -> Callable[[], Any]:
    """A call of ``aget_client(user).get(url)`` in an event loop of its own."""

    async def call() -> Any:
        async with aget_client(user) as client:
            return await client.get(url)

    return async_to_sync(call)


def assert_detached_async(report: Report) -> None:
    """As :func:`assert_detached`, for httpx: no frame of httpx or httpcore below the package
    (frames above it, e.g. ``AsyncClient.get``, are the caller's way in)."""
    assert report.exc.__cause__ is None
    assert report.exc.__context__ is None or report.exc.__suppress_context__
    names = [frame["filename"] for frame in report.frames]
    first = next(index for index, name in enumerate(names) if name.startswith(PACKAGE))
    below = [name for name in names[first:] if "/httpx/" in name or "/httpcore/" in name]
    assert below == []


def test_async_api_call_connection_refused(
    user, pagero_mock, pagero_token_factory, settings, refused_url
):
    pagero_token_factory(user)
    _point(settings, API_BASE_URL=refused_url.replace("/oauth/v2/oauth-token", "/api"))
    report = render(raised_by(async_get(user)))
    assert type(report.exc) is httpx.ConnectError  # callers' except clauses still work
    assert "Authorization" not in report.exc.request.headers
    assert_detached_async(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_async_api_call_timeout(user, pagero_mock, pagero_token_factory, settings):
    pagero_token_factory(user)
    _point(settings, TIMEOUT=0.2)
    pagero_mock.mock.add_fault(Fault(endpoint="api", delay=5))
    report = render(raised_by(async_get(user)))
    assert type(report.exc) is httpx.ReadTimeout
    assert "Authorization" not in report.exc.request.headers
    assert_detached_async(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_async_api_call_dropped_connection(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", drop=True))
    report = render(raised_by(async_get(user)))
    assert isinstance(report.exc, httpx.TransportError)
    assert_detached_async(report)
    assert_clean(report, all_secrets(pagero_mock))


def test_async_api_call_whose_forced_refresh_fails(
    user, pagero_mock, pagero_token_factory, settings, refused_url
):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    _point(settings, TOKEN_URL=refused_url)
    report = render(raised_by(async_get(user)))
    assert isinstance(report.exc, PageroUnavailable)
    assert_clean(report, all_secrets(pagero_mock))


@pytest.fixture
def captured_requests() -> Iterator[list[Any]]:
    """The Django requests whose view raised (for the report's request section)."""
    seen: list[Any] = []

    def receiver(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append(request)

    got_request_exception.connect(receiver)
    try:
        yield seen
    finally:
        got_request_exception.disconnect(receiver)


def test_api_call_in_a_view(
    user_client, user, pagero_mock, pagero_token_factory, settings, refused_url, captured_requests
):
    pagero_token_factory(user)
    _point(settings, API_BASE_URL=refused_url.replace("/oauth/v2/oauth-token", "/api"))
    exc = raised_by(lambda: user_client.get("/api-data/"))
    report = render(exc, captured_requests[-1])
    assert "/api-data/" in report.texts[0]  # the request section is there
    assert_clean(report, all_secrets(pagero_mock))


@pytest.mark.parametrize("failure", ["bug in urllib3", "a token_obtained receiver fails"])
def test_callback_whose_code_exchange_fails(request, browser, pagero_mock, failure):
    """The whole report of the callback view, request section included, holds no code.

    Rendered as Django's handler sees it (``got_request_exception``): the frames from the
    handler down, the request as the view left it.
    """
    callback = browser.pagero_answer(browser.start_login("/protected/"))
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    if failure == "bug in urllib3":
        request.getfixturevalue("boom_in_urllib3")

    def receiver(**kwargs: Any) -> None:
        raise RuntimeError("a receiver of token_obtained failed")

    seen: list[tuple[Any, Any]] = []

    def capture(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append((request, sys.exc_info()))

    token_obtained.connect(receiver)
    got_request_exception.connect(capture)
    try:
        response = Client(raise_request_exception=False, **_session_of(browser)).get(callback)
    finally:
        token_obtained.disconnect(receiver)
        got_request_exception.disconnect(capture)
    assert response.status_code == 500
    (django_request, (exc_type, exc, tb)), *_ = seen
    reporter = ExceptionReporter(django_request, exc_type, exc, tb, is_email=True)
    texts = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    texts += [
        f"{frame['filename']} {name}={_repr(value)}"
        for frame in reporter.get_traceback_frames()
        for name, value in frame["vars"]
    ]
    assert "/pagero/callback/" in texts[0]  # the request section is there
    assert code not in django_request.get_full_path()
    assert_clean(Report(exc, texts, []), all_secrets(pagero_mock, code))


def _session_of(browser: Any) -> dict[str, Any]:
    """Client arguments carrying the browser's session cookie (same session, fresh client)."""
    cookie = browser.client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return {"HTTP_COOKIE": f"{django_settings.SESSION_COOKIE_NAME}={cookie}"}


# --- the token endpoint and the revocation endpoint ------------------------------------------


@pytest.mark.parametrize("failure", ["refused", "timeout", "bug in urllib3"])
@pytest.mark.parametrize("call", ["code exchange", "refresh", "revocation"])
def test_token_and_revocation_endpoint_failures(
    request, user, pagero_mock, pagero_token_factory, settings, refused_url, call, failure
):
    token = pagero_token_factory(user)
    code, verifier = "code-" + generate_code_verifier(), generate_code_verifier()
    _point(settings, REVOKE_URL=f"{pagero_mock.url}/oauth/v2/oauth-revoke", TIMEOUT=0.2)
    if failure == "refused":
        _point(settings, TOKEN_URL=refused_url, REVOKE_URL=refused_url)
    elif failure == "timeout":
        silent = request.getfixturevalue("silent_url")
        _point(settings, TOKEN_URL=silent, REVOKE_URL=silent)
    else:
        request.getfixturevalue("boom_in_urllib3")
    calls: dict[str, Callable[[], Any]] = {
        "code exchange": Hidden(
            exchange_code, code, redirect_uri="https://testserver/cb/", code_verifier=verifier
        ),
        "refresh": lambda: get_valid_token(user, force_refresh=True),
        "revocation": lambda: revoke(token),
    }
    report = render(raised_by(calls[call]))
    expected = RuntimeError if failure == "bug in urllib3" else PageroUnavailable
    assert isinstance(report.exc, expected)
    assert_clean(report, all_secrets(pagero_mock, code, verifier))


# --- the admin's actions --------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["refresh_now", "revoke"])
def test_admin_action_failure(
    user, pagero_mock, pagero_token_factory, settings, boom_in_urllib3, captured_requests, action
):
    _point(settings, REVOKE_URL=f"{pagero_mock.url}/oauth/v2/oauth-revoke")
    token = pagero_token_factory(user)
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    admin = Client()
    admin.force_login(staff)
    changelist = reverse("admin:django_pagero_oauth_pagerotoken_changelist")
    exc = raised_by(
        lambda: admin.post(changelist, {"action": action, "_selected_action": [token.pk]})
    )
    report = render(exc, captured_requests[-1])
    assert type(report.exc) is RuntimeError
    assert_clean(report, all_secrets(pagero_mock))


# --- the management commands ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_pagero_refresh_tokens_logged_failure(
    user, pagero_mock, pagero_token_factory, boom_in_urllib3, caplog
):
    """The command counts a bug and logs it with its traceback; the AdminEmailHandler then
    renders exactly this report."""
    pagero_token_factory(user)
    caplog.set_level(logging.ERROR)
    with pytest.raises(CommandError):  # some failed: exit code 1
        call_command("pagero_refresh_tokens", "--all", stdout=StringIO(), stderr=StringIO())
    logged = [record for record in caplog.records if record.exc_info]
    assert logged
    for record in logged:
        assert record.exc_info is not None
        report = render(record.exc_info[1])
        assert type(report.exc) is RuntimeError
        assert_clean(report, all_secrets(pagero_mock))


def test_pagero_check_failure(pagero_mock, boom_in_urllib3, db):
    report = render(
        raised_by(lambda: call_command("pagero_check", stdout=StringIO(), stderr=StringIO()))
    )
    assert type(report.exc) is RuntimeError
    assert_clean(report, all_secrets(pagero_mock))


# --- a lost encryption key ------------------------------------------------------------------------


def test_lost_encryption_key(user, pagero_mock, pagero_token_factory, settings):
    pagero_token_factory(user)
    secrets = all_secrets(pagero_mock)  # read while the tokens can still be decrypted
    lost = Fernet.generate_key().decode()
    secrets.add("the only key now", lost)
    _point(settings, ENCRYPTION_KEYS=[lost])
    for call in (lambda: get_valid_token(user), lambda: get_client(user).get("v1/me")):
        report = render(raised_by(call, TokenDecryptionError))
        assert_clean(report, secrets)


def test_malformed_encryption_key_list(user, pagero_mock, pagero_token_factory, settings):
    pagero_token_factory(user)
    secrets = all_secrets(pagero_mock)
    _point(settings, ENCRYPTION_KEYS=[*KEYS, "not-a-fernet-key"])
    secrets.add("malformed key", "not-a-fernet-key")
    report = render(raised_by(lambda: get_client(user).get("v1/me"), TokenDecryptionError))
    assert_clean(report, secrets)


def test_a_malformed_key_at_the_callback_leaks_nothing_and_the_token_is_revoked(
    browser, pagero_mock, settings
):
    """ENCRYPTION_KEYS holds a malformed key (E009): the code exchange succeeds and storing the
    answer fails. The report shows no token (the frame of ``fingerprint(value)`` held the
    refresh token), and the refresh token, stored nowhere, is revoked at Pagero at once
    instead of staying valid for three years."""
    callback = browser.pagero_answer(browser.start_login("/protected/"))
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    _point(settings, ENCRYPTION_KEYS=[*KEYS, "not-a-fernet-key"])
    seen: list[tuple[Any, Any]] = []

    def capture(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append((request, sys.exc_info()))

    got_request_exception.connect(capture)
    try:
        response = Client(raise_request_exception=False, **_session_of(browser)).get(callback)
    finally:
        got_request_exception.disconnect(capture)
    assert response.status_code == 500
    (django_request, (exc_type, exc, tb)), *_ = seen
    assert exc_type is TokenDecryptionError
    reporter = ExceptionReporter(django_request, exc_type, exc, tb, is_email=True)
    texts = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    texts += [
        f"{frame['filename']} {name}={_repr(value)}"
        for frame in reporter.get_traceback_frames()
        for name, value in frame["vars"]
    ]
    assert_clean(Report(exc, texts, []), all_secrets(pagero_mock, code))
    (obtained,) = pagero_mock.mock.issued_refresh_tokens
    assert not PageroToken.objects.exists()
    assert pagero_mock.mock.counts["revoke"] == 1
    assert not pagero_mock.mock.is_refresh_token_valid(obtained)
