"""Tests of ``testing/views.py``: the mock Pagero server mounted inside a Django project."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urljoin, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing import views as mock_views
from django_pagero_oauth.testing.mock import MockPagero

AWKWARD_SECRET = "s3:cr%2et+ é/x"
REDIRECT_URI = "https://client.example/pagero/callback/"
MOUNT = "/mock-pagero"
FORM = "application/x-www-form-urlencoded"


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain")


# This module is also the URLconf of its tests: the app and the mock, side by side.
urlpatterns = [
    path("pagero/", include("django_pagero_oauth.urls")),
    path("mock-pagero/", include("django_pagero_oauth.testing.urls")),
    path("admin-login/", plain),
    path("plain/", plain),
]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture
def mounted(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The mounted mock, allowed, with a fresh process-wide instance for this test."""
    monkeypatch.setattr(mock_views, "_mock", None)
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ALLOW_MOCK_SERVER": True,
        "CLIENT_SECRET": AWKWARD_SECRET,
    }
    return settings


def basic(client_id: str, secret: str) -> str:
    userpass = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(userpass.encode()).decode()


def approve(client: Client, **extra: str) -> dict[str, list[str]]:
    """Approve at the mounted login page; returns the query of the redirect back."""
    params = {
        "response_type": "code",
        "client_id": "test-client",
        "redirect_uri": REDIRECT_URI,
        "state": "xyz",
        **extra,
    }
    page = client.get(f"{MOUNT}/oauth/v2/oauth-authorize", params)
    assert page.status_code == 200, page.content
    assert f'action="{MOUNT}/oauth/v2/oauth-authorize"' in page.content.decode()
    answer = client.post(
        f"{MOUNT}/oauth/v2/oauth-authorize",
        urlencode({**params, "action": "approve"}),
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 302, answer.content
    assert answer["Location"].startswith(REDIRECT_URI + "?")
    return parse_qs(urlsplit(answer["Location"]).query)


def token_request(client: Client, form: str, secret: str = AWKWARD_SECRET) -> Any:
    return client.post(
        f"{MOUNT}/oauth/v2/oauth-token",
        form,
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic("test-client", secret),
    )


@pytest.mark.parametrize(
    ("debug", "allowed", "status"), [(False, False, 404), (True, False, 200), (False, True, 200)]
)
def test_served_only_with_debug_or_allow_mock_server(
    client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    debug: bool,
    allowed: bool,
    status: int,
) -> None:
    monkeypatch.setattr(mock_views, "_mock", None)
    settings.DEBUG = debug
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ALLOW_MOCK_SERVER": allowed}
    assert client.get(f"{MOUNT}/_mock/stats").status_code == status
    assert client.post(f"{MOUNT}/oauth/v2/oauth-token").status_code == (
        404 if status == 404 else 400
    )


CONTROL_ENDPOINTS = (
    ("get", "/_mock/stats"),
    ("post", "/_mock/reset"),
    ("post", "/_mock/config"),
    ("post", "/_mock/fault"),
)


@pytest.mark.parametrize(("method", "control"), CONTROL_ENDPOINTS)
def test_the_control_endpoints_are_unreachable_unless_the_mock_is_mounted_and_allowed(
    client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    control: str,
) -> None:
    monkeypatch.setattr(mock_views, "_mock", None)
    settings.DEBUG = True
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ALLOW_MOCK_SERVER": True}

    def send(path: str) -> int:
        if method == "get":
            return client.get(path).status_code
        form = "endpoint=token&status=503&expires_in=5"
        return client.post(path, form, content_type=FORM).status_code

    # The app's own URLconf has no mock in it, even with DEBUG and ALLOW_MOCK_SERVER.
    for prefix in ("/pagero", ""):
        assert send(prefix + control) == 404
    assert mock_views._mock is None

    # Mounted but neither DEBUG nor ALLOW_MOCK_SERVER: 404, and no mock is even created.
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ALLOW_MOCK_SERVER": False}
    assert send(MOUNT + control) == 404
    assert mock_views._mock is None

    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ALLOW_MOCK_SERVER": True}
    assert send(MOUNT + control) == 200


def test_the_mock_uses_the_projects_credentials(mounted: Any) -> None:
    mock = mock_views.get_mock()
    assert isinstance(mock, MockPagero)
    assert (mock.client_id, mock.client_secret) == ("test-client", AWKWARD_SECRET)
    assert mock_views.get_mock() is mock


def test_code_exchange_and_api_through_django(client: Client, mounted: Any) -> None:
    back = approve(client)
    assert back["state"] == ["xyz"]
    assert back["iss"] == [f"http://testserver{MOUNT}"]  # the mount point is the issuer
    form = {
        "grant_type": "authorization_code",
        "code": back["code"][0],
        "redirect_uri": REDIRECT_URI,
    }
    response = token_request(client, urlencode(form))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    tokens = json.loads(response.content)
    assert tokens["token_type"] == "bearer"
    assert mock_views.get_mock().is_refresh_token_valid(tokens["refresh_token"])

    api = client.get(f"{MOUNT}/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert api.status_code == 200
    assert json.loads(api.content)["publicid"] == "demo-company"
    assert client.get(f"{MOUNT}/api/v1/me").status_code == 401


def test_a_wrong_secret_is_rejected(client: Client, mounted: Any) -> None:
    back = approve(client)
    form = {
        "grant_type": "authorization_code",
        "code": back["code"][0],
        "redirect_uri": REDIRECT_URI,
    }
    response = token_request(client, urlencode(form), secret="wrong")
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "invalid_client"


def test_the_configured_issuer_is_used(client: Client, mounted: Any) -> None:
    mounted.PAGERO_OAUTH = {**mounted.PAGERO_OAUTH, "ISSUER": "https://sso.example"}
    assert approve(client)["iss"] == ["https://sso.example"]


def test_faults_through_the_control_endpoint(client: Client, mounted: Any) -> None:
    fault = {"endpoint": "token", "status": "503", "header": "Retry-After: 7"}
    added = client.post(
        f"{MOUNT}/_mock/fault", urlencode(fault), content_type="application/x-www-form-urlencoded"
    )
    assert added.status_code == 200
    response = token_request(client, "grant_type=refresh_token&refresh_token=x")
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    dropped = {"endpoint": "token", "drop": "1"}
    client.post(
        f"{MOUNT}/_mock/fault", urlencode(dropped), content_type="application/x-www-form-urlencoded"
    )
    assert token_request(client, "grant_type=refresh_token&refresh_token=x").status_code == 502
    stats = json.loads(client.get(f"{MOUNT}/_mock/stats").content)
    assert stats["counts"]["refresh_token"] == 2
    assert stats["pending_faults"] == 0


def test_under_a_script_prefix(client: Client, mounted: Any) -> None:
    """Mounted below a SCRIPT_NAME, the form posts back to the full path."""
    page = client.get(
        f"{MOUNT}/oauth/v2/oauth-authorize",
        {"response_type": "code", "client_id": "test-client", "redirect_uri": REDIRECT_URI},
        SCRIPT_NAME="/app",
    )
    assert page.status_code == 200
    assert f'action="/app{MOUNT}/oauth/v2/oauth-authorize"' in page.content.decode()


# --- the app against the mounted mock, over real HTTP -----------------------------------


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        elif tag == "input" and "name" in values:
            self.fields.setdefault(values["name"], values.get("value", ""))


@pytest.mark.django_db(transaction=True)
def test_the_app_connects_through_the_mounted_mock(live_site: Any, mounted: Any) -> None:
    """What the example project does: one Django site serving both the app and the mock."""
    base = f"{live_site.url}{MOUNT}"
    mounted.PAGERO_OAUTH = {**mounted.PAGERO_OAUTH, **mock_views.get_mock().settings_for(base)}
    user = get_user_model().objects.create_user("dora", "dora@example.com", "pw")
    browser = requests.Session()
    django_client = Client()
    django_client.force_login(user)
    browser.cookies.set("sessionid", django_client.cookies["sessionid"].value)

    page = browser.get(f"{live_site.url}/pagero/login/?next=/plain/", timeout=10)
    assert page.status_code == 200
    assert page.url.startswith(base + "/oauth/v2/oauth-authorize?")
    form = FormParser()
    form.feed(page.text)
    landed = browser.post(
        urljoin(page.url, form.action), data={**form.fields, "action": "approve"}, timeout=10
    )
    assert landed.status_code == 200, landed.text
    assert landed.url == f"{live_site.url}/plain/"
    token = PageroToken.objects.get(user=user)
    assert mock_views.get_mock().is_refresh_token_valid(token.refresh_token)
