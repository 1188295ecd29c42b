"""Tests of "Sign in with Pagero" (``signin.py``, ``SignInView``, the callback's OpenID Connect
half) against the strict mock over real sockets: real signed id_tokens, real JWKS.

Every refusal and every broken id_token must leave the visitor logged out and nothing stored:
no token, no identity, no user.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.signals import identity_linked, token_obtained, user_signed_in
from django_pagero_oauth.testing.mock import Fault, MockPageroServer
from django_pagero_oauth.testing.mock.oidc import ID_TOKEN_FAULTS

SIGN_IN = "/pagero/sign-in/"
LOGIN = "/pagero/login/"
CALLBACK = "/pagero/callback/"
DISCONNECT = "/pagero/disconnect/"
LINK = "/pagero/link/"
REDIRECT_URI = "http://testserver" + CALLBACK

#: Every way the mock can break an id_token (or leave it out).
BROKEN_TOKENS = list(ID_TOKEN_FAULTS)


def single(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {name: values[0] for name, values in parsed.items()}


def start(client: Client, path: str = SIGN_IN, **params: str) -> str:
    response = client.get(path, params)
    assert response.status_code == 302, response.content
    return str(response["Location"])


def at_pagero(authorize_url: str, publicid: str = "acme-ab") -> str:
    """The visitor signs in at (mock) Pagero as ``publicid``, whose ``sub`` it is."""
    page = requests.get(authorize_url, timeout=5)
    assert page.status_code == 200, page.text
    endpoint = authorize_url.split("?", 1)[0]
    form = {**single(authorize_url), "action": "approve", "publicid": publicid}
    answer = requests.post(endpoint, data=form, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = answer.headers["Location"]
    assert back.startswith(REDIRECT_URI + "?"), back
    return back


def sign_in(client: Client, publicid: str = "acme-ab", path: str = SIGN_IN, **params: str) -> Any:
    return client.get(CALLBACK, single(at_pagero(start(client, path, **params), publicid)))


def logged_in_as(client: Client) -> str | None:
    return client.session.get(SESSION_KEY)


def assert_nothing_stored(user_count: int) -> None:
    assert not PageroToken.objects.exists()
    assert not PageroIdentity.objects.exists()
    assert get_user_model().objects.count() == user_count


@pytest.fixture(autouse=True)
def _sign_in_on(sign_in_enabled: None) -> None:
    """These tests are about "Sign in with Pagero": switched on (``SIGN_IN_ENABLED``)."""


@pytest.fixture
def mock(pagero_mock: MockPageroServer, db: None) -> MockPageroServer:
    return pagero_mock


@pytest.fixture
def linked(user: Any, mock: MockPageroServer) -> PageroIdentity:
    """alice's Pagero identity (the mock's ``sub`` is the public id signed in with)."""
    return PageroIdentity.objects.create(user=user, issuer=mock.url, subject="acme-ab")


# --- starting ---------------------------------------------------------------------------


def test_sign_in_is_open_to_anonymous_visitors_and_asks_for_openid_with_a_nonce(
    client: Client, mock: MockPageroServer
) -> None:
    params = single(start(client))
    assert "openid" in params["scope"].split()
    assert len(params["nonce"]) >= 43
    (entry,) = client.session["_pagero_oauth_flows"].values()
    assert entry["nonce"] == params["nonce"] and entry["sign_in"] is True
    assert entry["user_id"] == ""


def test_connect_without_openid_sends_no_nonce(user_client: Client, mock: MockPageroServer) -> None:
    params = single(start(user_client, LOGIN))
    assert "nonce" not in params and "openid" not in params.get("scope", "")


def test_connect_with_openid_in_scope_sends_a_nonce(
    user_client: Client, mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    params = single(start(user_client, LOGIN))
    assert params["scope"] == "all openid" and params["nonce"]


# --- signing in -------------------------------------------------------------------------


def test_sign_in_logs_the_linked_user_in_with_a_new_session_key_and_stores_the_token(
    client: Client, user: Any, linked: PageroIdentity, receive: Any
) -> None:
    start_url = start(client, next="/plain/")
    key_before = client.session.session_key
    with receive(user_signed_in) as signed_in, receive(token_obtained) as obtained:
        response = client.get(CALLBACK, single(at_pagero(start_url)))
    assert response.status_code == 302 and response["Location"] == "/plain/"
    assert logged_in_as(client) == str(user.pk)
    assert client.session.session_key != key_before  # session fixation: the key rotated
    token = PageroToken.objects.get(user=user)
    assert token.publicid == "acme-ab" and token.id_token.count(".") == 2
    linked.refresh_from_db()
    assert linked.last_signed_in is not None
    assert [call["user"] for call in signed_in] == [user]
    assert signed_in[0]["identity"] == linked and signed_in[0]["sender"] is PageroIdentity
    assert [call["user"] for call in obtained] == [user]


def test_sign_in_then_an_api_call_with_the_stored_token(
    client: Client, user: Any, linked: PageroIdentity
) -> None:
    sign_in(client)
    response = client.get("/api-data/")
    assert response.status_code == 200
    assert response.json() == {
        "status": 200,
        "body": {"publicid": "acme-ab", "name": "Demo Company AB", "client_id": "mock-client-id"},
    }


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x"])
def test_sign_in_follows_the_open_redirect_rules(
    client: Client, user: Any, linked: PageroIdentity, next_url: str
) -> None:
    response = sign_in(client, next=next_url)
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_each_signing_algorithm_signs_in(
    client: Client, user: Any, linked: PageroIdentity, mock: MockPageroServer, alg: str
) -> None:
    mock.mock.id_token_alg = alg
    assert sign_in(client).status_code == 302
    assert logged_in_as(client) == str(user.pk)


def test_sign_in_works_with_pagero_model_backend(
    client: Client, user: Any, linked: PageroIdentity, settings: Any
) -> None:
    backend = "django_pagero_oauth.backends.PageroModelBackend"
    settings.AUTHENTICATION_BACKENDS = [backend]
    assert sign_in(client).status_code == 302
    assert client.session["_auth_user_backend"] == backend
    assert client.get("/api-data/").json()["status"] == 200  # the session loads the user
    client.logout()
    assert client.login(username="alice", password="pw")  # password logins still work


def test_an_attackers_sign_in_callback_logs_nobody_in_in_the_victims_browser(
    user: Any, linked: PageroIdentity, mock: MockPageroServer
) -> None:
    """Login CSRF: the attacker signs in at Pagero in their own browser and sends the victim
    the callback URL; the victim's session never started that flow."""
    attacker, victim = Client(), Client()
    url_back = at_pagero(start(attacker))
    victim.get(SIGN_IN)  # even with a sign-in of the victim's own pending
    response = victim.get(CALLBACK, single(url_back))
    assert response.status_code == 400
    assert logged_in_as(victim) is None and not PageroToken.objects.exists()
    assert mock.mock.counts["authorization_code"] == 0  # the code was never even exchanged


# --- refusals ---------------------------------------------------------------------------


def test_an_unknown_identity_is_refused_with_how_to_link_it(
    client: Client, user: Any, mock: MockPageroServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="django_pagero_oauth")
    response = sign_in(client)
    assert response.status_code == 403
    content = response.content.decode()
    assert "not linked to a user of this site" in content
    assert 'href="/accounts/login/?next=%2Fpagero%2Fsign-in%2F"' in content
    assert logged_in_as(client) is None
    assert_nothing_stored(user_count=1)
    assert "identity refused (unknown_identity)" in caplog.text


def test_log_in_then_sign_in_links_the_identity_once_the_user_confirms(
    client: Client, user: Any, mock: MockPageroServer, receive: Any
) -> None:
    client.force_login(user)
    with receive(identity_linked) as linked_calls:
        response = sign_in(client)
        assert response.status_code == 302 and response["Location"] == LINK
        # Nothing is linked or stored before the user confirms.
        assert not PageroIdentity.objects.exists() and not PageroToken.objects.exists()
        assert linked_calls == []
        page = client.get(LINK).content.decode()
        assert "<strong>acme-ab</strong>" in page and "<strong>alice</strong>" in page
        assert client.post(LINK, {"confirm": "1"}).status_code == 302
    identity = PageroIdentity.objects.get()
    assert (identity.user, identity.issuer, identity.subject) == (user, mock.url, "acme-ab")
    assert [(c["user"], c["created_user"]) for c in linked_calls] == [(user, False)]
    client.logout()
    assert sign_in(client).status_code == 302  # from now on, one click
    assert logged_in_as(client) == str(user.pk)


def test_create_users_makes_a_user_with_an_unusable_password(
    client: Client, mock: MockPageroServer, settings: Any, receive: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_CREATE_USERS": True}
    with receive(identity_linked) as linked_calls, receive(user_signed_in) as signed_in:
        assert sign_in(client, publicid="newco").status_code == 302
    user = get_user_model().objects.get()
    assert user.username.startswith("pagero-") and not user.has_usable_password()
    assert user.email == ""  # no claim but sub is used
    assert PageroIdentity.objects.get().user == user
    assert PageroToken.objects.get().user == user
    assert logged_in_as(client) == str(user.pk)
    assert [c["created_user"] for c in linked_calls] == [True]
    assert [c["user"] for c in signed_in] == [user]


def test_create_users_never_reuses_a_username_someone_already_has(
    client: Client, mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_CREATE_USERS": True}
    assert sign_in(client, publicid="squat").status_code == 302
    name = get_user_model().objects.get().username
    PageroIdentity.objects.all().delete()
    PageroToken.objects.all().delete()
    client.logout()
    # The squatter now owns the name the next sign-in of that identity would derive.
    assert sign_in(client, publicid="squat").status_code == 302
    newest = get_user_model().objects.latest("pk")
    assert newest.username.startswith(name + "-") and str(newest.pk) == logged_in_as(client)


def test_an_inactive_user_is_refused(client: Client, user: Any, linked: PageroIdentity) -> None:
    user.is_active = False
    user.save()
    response = sign_in(client)
    assert response.status_code == 403 and "disabled" in response.content.decode()
    assert logged_in_as(client) is None
    assert not PageroToken.objects.exists()


def test_an_identity_linked_to_another_user_is_refused(
    client: Client,
    user: Any,
    other_user: Any,
    linked: PageroIdentity,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="django_pagero_oauth")
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    client.force_login(other_user)
    response = sign_in(client, path=LOGIN)  # mallory connects with alice's Pagero account
    assert response.status_code == 403
    assert "already linked to another user" in response.content.decode()
    assert logged_in_as(client) == str(other_user.pk)
    assert not PageroToken.objects.exists()
    assert list(PageroIdentity.objects.values_list("user", flat=True)) == [user.pk]
    assert "identity refused (identity_taken)" in caplog.text


def test_a_second_identity_of_the_same_issuer_is_refused(
    client: Client, user: Any, linked: PageroIdentity
) -> None:
    client.force_login(user)
    response = sign_in(client, publicid="another-company")
    assert response.status_code == 403
    assert "already linked to another Pagero account" in response.content.decode()
    assert list(PageroIdentity.objects.values_list("subject", flat=True)) == ["acme-ab"]
    assert not PageroToken.objects.exists()


def test_connect_with_openid_links_the_identity_once_the_user_confirms(
    client: Client, user: Any, mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    client.force_login(user)
    response = sign_in(client, path=LOGIN)
    assert response.status_code == 302 and response["Location"] == LINK
    assert PageroToken.objects.get().user == user  # a connect stores its token at once
    assert not PageroIdentity.objects.exists()  # the link waits for the user
    client.post(LINK, {"confirm": "1"})
    assert PageroIdentity.objects.get().user == user


def test_connect_without_openid_links_nothing(
    client: Client, user: Any, mock: MockPageroServer
) -> None:
    client.force_login(user)
    assert sign_in(client, path=LOGIN).status_code == 302
    assert PageroToken.objects.filter(user=user).exists()
    assert not PageroIdentity.objects.exists()


def test_an_id_token_the_flow_did_not_ask_for_is_dropped_unverified(mock: MockPageroServer) -> None:
    """No nonce was sent: an id_token that comes anyway is not stored, linked or used."""
    from django_pagero_oauth.flows import Flow
    from django_pagero_oauth.oauth import TokenResponse
    from django_pagero_oauth.signin import SignInCallbackMixin

    flow = Flow(state="s", user_id="1", redirect_uri=REDIRECT_URI, next_url="/", created=0.0)
    response = TokenResponse.from_json(mock.mock.issue_tokens(scope="all openid"))
    assert response.id_token
    stored, verified = SignInCallbackMixin().verify_id_token(flow, response)
    assert stored.id_token == ""
    assert verified is None and mock.mock.counts["jwks"] == 0


# --- broken id_tokens and key trouble -----------------------------------------------------


@pytest.mark.parametrize("fault", BROKEN_TOKENS)
def test_a_broken_id_token_signs_nobody_in_and_stores_nothing(
    client: Client,
    user: Any,
    linked: PageroIdentity,
    mock: MockPageroServer,
    settings: Any,
    fault: str,
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_CREATE_USERS": True}
    if fault == "replayed_nonce":
        client_before = Client()
        sign_in(client_before)  # a first login whose nonce the next id_token carries
        PageroToken.objects.all().delete()
    mock.mock.add_fault(Fault(endpoint="token", id_token=fault))
    response = sign_in(client)
    assert response.status_code == 400, (fault, response.content)
    assert "could not be verified" in response.content.decode()
    assert logged_in_as(client) is None
    assert not PageroToken.objects.exists()
    assert get_user_model().objects.count() == 1  # no user was created either
    assert list(PageroIdentity.objects.all()) == [linked]


@pytest.mark.parametrize("endpoint", ["jwks", "discovery"])
@pytest.mark.parametrize("how", [{"status": 503}, {"drop": True}, {"status": 200, "body": "[]"}])
def test_key_set_or_discovery_trouble_is_unavailable_never_a_login(
    client: Client,
    user: Any,
    linked: PageroIdentity,
    mock: MockPageroServer,
    endpoint: str,
    how: dict[str, Any],
) -> None:
    mock.mock.add_fault(Fault(endpoint=endpoint, **how))
    response = sign_in(client)
    assert response.status_code == 503
    assert logged_in_as(client) is None
    assert not PageroToken.objects.exists()


def test_a_discovery_document_of_another_issuer_is_refused(
    client: Client, user: Any, linked: PageroIdentity, mock: MockPageroServer
) -> None:
    body = json.dumps(
        {"issuer": "https://impostor.example", "jwks_uri": mock.url + "/oauth/v2/jwks"}
    )
    mock.mock.add_fault(Fault(endpoint="discovery", status=200, body=body))
    response = sign_in(client)
    # A wrong ISSUER (or the wrong server at it) is this site's configuration, not an outage.
    assert response.status_code == 503 and "misconfigured" in response.content.decode()
    assert logged_in_as(client) is None and mock.mock.counts["jwks"] == 0


def test_jwks_url_setting_skips_discovery(
    client: Client, user: Any, linked: PageroIdentity, mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "JWKS_URL": mock.url + "/oauth/v2/jwks"}
    assert sign_in(client).status_code == 302
    assert (mock.mock.counts["discovery"], mock.mock.counts["jwks"]) == (0, 1)


def test_keys_are_cached_and_a_rotation_is_picked_up_with_one_refetch(
    user: Any, linked: PageroIdentity, mock: MockPageroServer
) -> None:
    for _round in range(2):
        assert sign_in(Client()).status_code == 302
    assert (mock.mock.counts["discovery"], mock.mock.counts["jwks"]) == (1, 1)
    mock.mock.rotate_keys(keep_old=False)
    client = Client()
    assert sign_in(client).status_code == 302  # unknown kid: the key set is fetched again
    assert logged_in_as(client) == str(user.pk)
    assert mock.mock.counts["jwks"] == 2


def test_unknown_kid_refetches_at_most_once_per_interval(
    user: Any, linked: PageroIdentity, mock: MockPageroServer
) -> None:
    assert sign_in(Client()).status_code == 302
    stored = PageroToken.objects.get().fingerprint
    mock.mock.add_fault(Fault(endpoint="token", id_token="unknown_kid", times=2))
    assert sign_in(Client()).status_code == 400  # refetched, still unknown: refused
    assert mock.mock.counts["jwks"] == 2
    assert sign_in(Client()).status_code == 503  # no second refetch within the interval
    assert mock.mock.counts["jwks"] == 2
    assert PageroToken.objects.get().fingerprint == stored  # neither replaced the token


def test_without_issuer_sign_in_is_a_configuration_error(
    client: Client, mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ISSUER": ""}
    response = sign_in(client)
    assert response.status_code == 503 and "misconfigured" in response.content.decode()
    assert logged_in_as(client) is None and not PageroToken.objects.exists()


def test_the_retry_link_of_a_failed_sign_in_starts_a_sign_in(
    client: Client, user: Any, linked: PageroIdentity, mock: MockPageroServer
) -> None:
    mock.mock.add_fault(Fault(endpoint="token", id_token="bad_signature"))
    response = sign_in(client, next="/plain/")
    assert 'href="/pagero/sign-in/?next=%2Fplain%2F"' in response.content.decode()


def test_no_token_or_id_token_reaches_the_log(
    client: Client,
    user: Any,
    linked: PageroIdentity,
    mock: MockPageroServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    mock.mock.add_fault(Fault(endpoint="token", id_token="wrong_aud"))
    sign_in(client)
    sign_in(client)
    token = PageroToken.objects.get()
    for secret in (token.access_token, token.refresh_token, token.id_token):
        for part in secret.split("."):
            assert part not in caplog.text


# --- disconnect -------------------------------------------------------------------------


def test_disconnect_keeps_the_identity_unless_asked_to_unlink_it(
    client: Client, user: Any, linked: PageroIdentity
) -> None:
    sign_in(client)
    page = client.get(DISCONNECT)
    assert 'name="unlink_identity"' in page.content.decode()
    client.post(DISCONNECT, {"next": "/"})
    assert not PageroToken.objects.exists() and PageroIdentity.objects.exists()
    sign_in(client)
    client.post(DISCONNECT, {"next": "/", "unlink_identity": "1"})
    assert not PageroToken.objects.exists() and not PageroIdentity.objects.exists()
