"""Client authentication (RFC 6749 2.3.1) with awkward secrets, both methods (item 8).

HTTP Basic needs the id and secret form-urlencoded *before* base64; a client that skips that
breaks on ``:``, ``%``, ``+``, spaces and non-ASCII. The strict mock decodes exactly as the RFC
says and compares in constant time, so the flows below complete only if the encoding is right.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockPagero, MockPageroServer
from django_pagero_oauth.tokens import get_valid_token, revoke

from .conftest import Browser

SECRETS = {
    "colon": "se:cr:et",
    "percent": "100%%sec%2Fret%",
    "plus": "a+b+c",
    "space": "with some spaces ",
    "non-ASCII": "hémlïgt-秘密-🔑",
    "all together": "s3:cr%2et+ é/x&y=z",
}
CLIENT_IDS = {"plain": "pagero-client", "awkward": "client:id %+é"}
METHODS = ["client_secret_basic", "client_secret_post"]


@pytest.fixture
def awkward_server(request: pytest.FixtureRequest) -> Iterator[MockPageroServer]:
    client_id, secret = request.param
    with MockPageroServer(MockPagero(client_id=client_id, client_secret=secret)) as server:
        yield server


@pytest.fixture
def configured(awkward_server: MockPageroServer, settings: Any, method: str) -> MockPageroServer:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        **awkward_server.settings(),
        "CLIENT_AUTH_METHOD": method,
    }
    return awkward_server


_PARAMS = [
    pytest.param((client_id, secret), id=f"{id_name}-{secret_name}")
    for id_name, client_id in CLIENT_IDS.items()
    for secret_name, secret in SECRETS.items()
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("awkward_server", _PARAMS, indirect=True)
def test_awkward_credentials_work_for_exchange_refresh_and_revoke(
    configured: MockPageroServer, user_client: Client, user: Any, method: str
) -> None:
    browser = Browser(user_client, configured)
    response = browser.login()
    assert response.status_code == 302, response.content
    mock = configured.mock
    assert mock.counts["authorization_code"] == 1

    token = get_valid_token(user, force_refresh=True)
    assert mock.counts["refresh_token"] == 1 and mock.counts["refresh_token_failed"] == 0
    assert mock.is_refresh_token_valid(token.refresh_token)

    assert revoke(token).remote is True
    assert mock.counts["revoke"] == 1
    assert not mock.is_refresh_token_valid(token.refresh_token)  # the mock accepted it
    assert not PageroToken.objects.exists()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "awkward_server", [pytest.param(("pagero-client", "a+b c"), id="plus-space")], indirect=True
)
def test_wrong_secret_is_rejected_by_the_mock(
    configured: MockPageroServer, user_client: Client, settings: Any, method: str
) -> None:
    """Control: the mock really checks the secret (``a b c`` is what an un-encoded ``+``
    turns into), so the test above can fail."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_SECRET": "a b c"}
    response = Browser(user_client, configured).login()
    assert response.status_code == 503  # invalid_client: this site's configuration
    assert not PageroToken.objects.exists()
