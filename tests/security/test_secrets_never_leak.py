"""Tokens, codes and the client secret never appear where they do not belong (item 17):
log output (every logger, at DEBUG, SQL included), exception messages, ``repr``, error
reports, admin pages, and the database in plaintext.

The whole lifecycle runs once per test, successes and failures: logins (some failing at the
token endpoint), replays, API calls, refreshes (some failing), a lost connection, a new
login, a failed and a confirmed revocation. Every secret that went over the wire is
collected from the transport spy (requests and answers), so nothing is missed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

import django_pagero_oauth
from django_pagero_oauth import get_client
from django_pagero_oauth.crypto import bound_context, decrypt
from django_pagero_oauth.exceptions import (
    SERVICE_ERRORS,
    PageroAuthorizationRequired,
    PageroOAuthError,
    PageroUnavailable,
)
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import TokenResponse
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token, revoke

from .conftest import DISCONNECT_PATH, Browser, LogCapture, Transport, backoff_passed, query_of

CLIENT_ID = "mock-client-id"
CLIENT_SECRET = "mock-client-secret"


@dataclass
class Secrets:
    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str | None) -> None:
        if value:
            self.values[f"{name} #{len(self.values)}"] = value

    def pieces(self) -> dict[str, str]:
        """Each secret, plus the parts of it that are secret on their own: a JWT's signature,
        a refresh token without its fixed prefix, the Basic header's encoding."""
        out = dict(self.values)
        for name, value in self.values.items():
            parts = value.split(".")
            if len(parts) == 3:
                out[f"{name} (signature)"] = parts[2]
            if value.startswith("_1XBPWQQ_"):
                out[f"{name} (body)"] = value[len("_1XBPWQQ_") :]
        return out

    def assert_absent(self, texts: Iterable[str], where: str) -> None:
        pieces = self.pieces()
        found = {
            f"{name} in {where}: {text[:160]!r}"
            for text in texts
            for name, value in pieces.items()
            if value in text
        }
        assert not found, "\n".join(sorted(found))


def _collect_from_wire(transport: Transport, secrets: Secrets) -> None:
    for request in transport:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        for key in ("code", "refresh_token", "token", "code_verifier", "client_secret"):
            secrets.add(f"sent {key}", form.get(key))
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith(("Basic ", "Bearer ")):
            secrets.add("sent Authorization", authorization.split(" ", 1)[1])
        try:
            answer = json.loads(request.answer) if request.answer else None
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            for key in ("access_token", "refresh_token", "id_token"):
                value = answer.get(key)
                secrets.add(f"received {key}", value if isinstance(value, str) else None)


@dataclass
class Lifecycle:
    secrets: Secrets
    exceptions: list[BaseException]
    browser: Browser


def run_lifecycle(
    browser: Browser, user: Any, pagero_mock: Any, settings: Any, transport: Transport
) -> Lifecycle:
    transport.read_answers = True
    mock = pagero_mock.mock
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PKCE": True, "SCOPE": "all openid"}
    secrets = Secrets()
    secrets.add("client secret", CLIENT_SECRET)
    secrets.add(
        "basic credentials", base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    )
    exceptions: list[BaseException] = []

    def expect(
        exc_type: type[BaseException] | tuple[type[BaseException], ...],
        call: Any,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        with pytest.raises(exc_type) as caught:
            call(*args, **kwargs)
        exceptions.append(caught.value)

    def login(fault: Fault | None = None) -> Any:
        authorize_url = browser.start_login("/plain/")
        for flow in browser.pending_flows().values():
            secrets.add("code verifier", flow.get("code_verifier"))
        callback_url = browser.pagero_answer(authorize_url)
        secrets.add("code", query_of(callback_url)["code"])
        if fault is not None:
            mock.add_fault(fault)
        return callback_url, browser.callback(callback_url)

    # Logins: one that works, then replays and forgeries, then token-endpoint failures.
    callback_url, response = login()
    assert response.status_code == 302
    assert browser.callback(callback_url).status_code == 400  # replay
    assert browser.callback(callback_url.replace("state=", "state=x")).status_code == 400
    for fault in (
        Fault(endpoint="token", status=503),
        Fault(endpoint="token", status=400, body='{"error": "invalid_grant"}'),
        Fault(endpoint="token", status=401, body='{"error": "invalid_client"}'),
        Fault(endpoint="token", status=200, body="<html>not json</html>"),
        Fault(endpoint="token", drop=True),
    ):
        # These keep the first login's token: the failed ones store nothing.
        assert login(fault)[1].status_code >= 400

    # The API, with a rejected access token on the way.
    assert get_client(user).get("v1/me").status_code == 200
    mock.add_fault(Fault(endpoint="api", status=401))
    assert get_client(user).get("v1/documents").status_code == 200

    # Refreshes: good ones and every kind of failure.
    get_valid_token(user, force_refresh=True)
    for fault in (
        Fault(endpoint="token", status=503),
        Fault(endpoint="token", status=502, body="<html>bad gateway</html>"),
        Fault(endpoint="token", status=429, headers=[("Retry-After", "5")]),
        Fault(endpoint="token", status=401, body='{"error": "invalid_client"}'),
        Fault(endpoint="token", status=400, body='{"error": "invalid_request"}'),
        Fault(endpoint="token", status=200, body='{"token_type": "bearer"}'),
        Fault(endpoint="token", drop=True),
    ):
        mock.add_fault(fault)
        # invalid_client: PageroConfigurationError, which is not a PageroUnavailable
        expect(SERVICE_ERRORS, get_valid_token, user, force_refresh=True)
    mock.add_fault(Fault(endpoint="token", status=400, body='{"error": "invalid_grant"}'))
    expect(PageroAuthorizationRequired, get_valid_token, user, force_refresh=True)
    expect(PageroAuthorizationRequired, get_valid_token, user)
    assert browser.client.get("/protected/").status_code == 302

    # A new login, then disconnecting: refused once, confirmed the second time.
    assert login()[1].status_code == 302
    mock.add_fault(Fault(endpoint="revoke", status=503))
    assert browser.client.post(DISCONNECT_PATH, {"next": "/"}).status_code == 503
    token = PageroToken.objects.get(user=user)
    mock.add_fault(Fault(endpoint="revoke", status=400, body='{"error": "invalid_request"}'))
    expect(PageroOAuthError, revoke, token)
    assert browser.client.post(DISCONNECT_PATH, {"next": "/"}).status_code == 302
    assert not PageroToken.objects.exists()

    _collect_from_wire(transport, secrets)
    for refresh_token in mock.issued_refresh_tokens:
        secrets.add("issued refresh token", refresh_token)
    assert sum(name.startswith("received access_token") for name in secrets.values) >= 4
    assert sum(name.startswith("received id_token") for name in secrets.values) >= 2
    assert sum(name.startswith("code #") for name in secrets.values) >= 7
    return Lifecycle(secrets, exceptions, browser)


@pytest.fixture
def lifecycle(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    settings: Any,
    transport: Transport,
    all_logs: LogCapture,
) -> Lifecycle:
    return run_lifecycle(browser, user, pagero_mock, settings, transport)


# --- logs -------------------------------------------------------------------------------------


def test_no_secret_in_any_log_record(lifecycle: Lifecycle, all_logs: LogCapture) -> None:
    names = all_logs.names()
    # The capture really saw the loggers that matter (else this test proves nothing).
    assert {"django_pagero_oauth", "django.request", "django.db.backends"} <= names
    assert any(name.startswith("urllib3") for name in names)
    assert len(all_logs.records) > 100
    lifecycle.secrets.assert_absent(all_logs.texts(), "a log record")


def test_server_echoing_a_secret_in_its_error_is_not_repeated(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    all_logs: LogCapture,
) -> None:
    """Servers often echo the rejected value ("invalid refresh token: _1XB..."). Whatever
    Pagero says, what it says goes into no log and no exception message as it is."""
    token = pagero_token_factory(user, expired=True)
    refresh_token = token.refresh_token
    exceptions: list[BaseException] = []
    for status, error in ((400, "invalid_request"), (503, "temporarily_unavailable")):
        body = json.dumps({"error": error, "error_description": f"bad token {refresh_token}"})
        pagero_mock.mock.add_fault(Fault(endpoint="token", status=status, body=body))
        with pytest.raises(PageroUnavailable) as caught:
            get_valid_token(user)
        exceptions.append(caught.value)
        backoff_passed()
    assert pagero_mock.mock.counts["refresh_token"] == 2

    callback_url = browser.pagero_answer(browser.start_login())
    code = query_of(callback_url)["code"]
    body = json.dumps({"error": "invalid_grant", "error_description": f"code {code} is unknown"})
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=400, body=body))
    assert browser.callback(callback_url).status_code == 400

    secrets = Secrets({"refresh token": refresh_token, "code": code})
    secrets.assert_absent(all_logs.texts(), "a log record")
    secrets.assert_absent(_exception_texts(exceptions), "an exception")


# --- exceptions and repr ------------------------------------------------------------------------


def _exception_texts(exceptions: Iterable[BaseException]) -> list[str]:
    texts = []
    for exc in exceptions:
        texts += [str(exc), repr(exc), *(repr(arg) for arg in exc.args)]
        texts.append(str(getattr(exc, "description", "")))
        if exc.__cause__ is not None:
            texts += [str(exc.__cause__), repr(exc.__cause__)]
    return texts


def test_no_secret_in_exception_messages(lifecycle: Lifecycle) -> None:
    assert len(lifecycle.exceptions) >= 9
    lifecycle.secrets.assert_absent(_exception_texts(lifecycle.exceptions), "an exception")


def test_no_secret_in_repr_or_str(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    token = pagero_token_factory(user)
    token.id_token = "header.payload.id-token-signature"
    token.save()
    token = PageroToken.objects.get(pk=token.pk)
    response = TokenResponse.from_json(pagero_mock.mock.issue_tokens())
    session = get_client(user)
    session.get("v1/me")
    secrets = Secrets()
    for value in (token.access_token, token.refresh_token, token.id_token):
        secrets.add("stored", value)
    secrets.add("response access", response.access_token)
    secrets.add("response refresh", response.refresh_token)
    secrets.add("client secret", CLIENT_SECRET)
    objects = [token, response, session, revoke(PageroToken.objects.get(pk=token.pk))]
    texts = [text for obj in objects for text in (repr(obj), str(obj))]
    secrets.assert_absent(texts, "a repr")


def test_django_error_reports_hide_the_client_secret_setting(settings: Any) -> None:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "CLIENT_SECRET": CLIENT_SECRET,
        "ENCRYPTION_KEYS": ["k" * 43 + "="],
    }
    safe = SafeExceptionReporterFilter().get_safe_settings()["PAGERO_OAUTH"]
    assert CLIENT_SECRET not in str(safe)
    assert "k" * 43 not in str(safe)


def _raise_and_catch(call: Callable[[], Any]) -> BaseException:
    """Run ``call`` and return what it raised; its traceback starts here, in a frame whose
    only local is ``call`` (the test's own variables stay out of the report)."""
    try:
        call()
    except RuntimeError as exc:
        return exc
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("where", ["code exchange", "refresh", "revocation"])
def test_error_report_of_an_unexpected_failure_hides_secrets(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A bug or an unforeseen library error inside a request: Django's HTML error report (the
    ADMINS e-mail with ``include_html``) shows every frame's local variables unless they are
    marked with ``sensitive_variables`` (honoured when DEBUG is False, as here). In the frames
    of django-pagero-oauth, the refresh token and the client secret must be hidden.

    The whole report, frames of ``requests`` and ``urllib3`` included, is scanned in
    ``test_error_reports.py``. Not checked: the authorization code (Django shows the request,
    with the callback's query string, in every report; the code is single-use and
    short-lived)."""
    token = pagero_token_factory(user)
    secrets = Secrets()
    secrets.add("refresh token", token.refresh_token)
    secrets.add("client secret", CLIENT_SECRET)
    secrets.add("basic", base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode())
    callback_url = browser.pagero_answer(browser.start_login())

    def explode(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", explode)
    calls: dict[str, Callable[[], Any]] = {
        "code exchange": lambda: browser.callback(callback_url),
        "refresh": lambda: get_valid_token(user, force_refresh=True),
        "revocation": lambda: revoke(token),
    }
    exc = _raise_and_catch(calls[where])
    report = ExceptionReporter(None, type(exc), exc, exc.__traceback__)
    package = str(Path(django_pagero_oauth.__file__).parent)
    ours = [f for f in report.get_traceback_frames() if f["filename"].startswith(package)]
    assert "_post" in {frame["function"] for frame in ours}  # the request's frames are there
    texts = [
        f"{frame['function']}: {name}={value}" for frame in ours for name, value in frame["vars"]
    ]
    secrets.assert_absent(texts, "the local variables of Django's error report")


# --- the admin ----------------------------------------------------------------------------------


def test_no_secret_in_admin_pages(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    """Changelist, search, change view, history, delete confirmation and the messages of the
    actions (a failing and a working refresh)."""
    staff = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    admin = Client()
    admin.force_login(staff)
    token = pagero_token_factory(user, publicid="acme-ab")
    token.id_token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.id-token-signature-secret"
    token.save()
    secrets = Secrets()
    secrets.add("client secret", CLIENT_SECRET)

    changelist = reverse("admin:django_pagero_oauth_pagerotoken_changelist")
    change = reverse("admin:django_pagero_oauth_pagerotoken_change", args=[token.pk])
    pages = [
        admin.get(changelist),
        admin.get(changelist, {"q": "acme"}),
        admin.get(change),
        admin.get(reverse("admin:django_pagero_oauth_pagerotoken_history", args=[token.pk])),
        admin.get(reverse("admin:django_pagero_oauth_pagerotoken_delete", args=[token.pk])),
    ]
    for fault in (Fault(endpoint="token", status=503), None):
        if fault is not None:
            pagero_mock.mock.add_fault(fault)
        pages.append(
            admin.post(
                changelist,
                {"action": "refresh_now", "_selected_action": [token.pk]},
                follow=True,
            )
        )
    assert pages[0].status_code == 200 and pages[2].status_code == 200
    assert pagero_mock.mock.counts["refresh_token"] == 2
    for stored in PageroToken.objects.all():
        for value in (stored.access_token, stored.refresh_token, stored.id_token):
            secrets.add("stored", value)
    for refresh_token in pagero_mock.mock.issued_refresh_tokens:
        secrets.add("issued", refresh_token)
    secrets.add("old access token", token.access_token)
    secrets.add("old id token", token.id_token)
    secrets.assert_absent([page.content.decode() for page in pages], "an admin page")


# --- the database -------------------------------------------------------------------------------


def _all_cells() -> list[str]:
    cells = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for cell in row:
                    if isinstance(cell, memoryview):
                        cell = bytes(cell)
                    if isinstance(cell, bytes):
                        cell = cell.decode("latin-1")
                    cells.append(str(cell))
    return cells


def test_no_secret_in_the_database_in_plaintext(
    browser: Browser, user: Any, pagero_mock: Any, settings: Any, transport: Transport
) -> None:
    """Every cell of every table, read with raw SQL after a login with an ID token and a
    refresh: no token, code or secret; and the token columns do decrypt to the tokens."""
    transport.read_answers = True
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    callback_url = browser.pagero_answer(browser.start_login())
    assert browser.callback(callback_url).status_code == 302
    get_valid_token(user, force_refresh=True)
    secrets = Secrets()
    secrets.add("code", query_of(callback_url)["code"])
    secrets.add("client secret", CLIENT_SECRET)
    _collect_from_wire(transport, secrets)

    secrets.assert_absent(_all_cells(), "a database cell")

    token = PageroToken.objects.get()
    assert token.id_token
    table = PageroToken._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT access_token, refresh_token, id_token FROM {table} WHERE id = %s",  # noqa: S608
            [token.pk],
        )
        raw = cursor.fetchone()
    contexts = [
        bound_context(PageroToken, name, user.pk)
        for name in ("access_token", "refresh_token", "id_token")
    ]
    assert [decrypt(value, context) for value, context in zip(raw, contexts, strict=True)] == [
        token.access_token,
        token.refresh_token,
        token.id_token,
    ]
