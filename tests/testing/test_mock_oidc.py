"""The mock's OpenID Connect side (``testing/mock/oidc.py``): id_tokens really signed with the
keys it publishes, discovery, the nonce round trip, key rotation and every id_token fault.

The id_tokens are checked here with PyJWT, independently of the app's verifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from django_pagero_oauth.testing.mock import Fault, MockPagero, MockPageroServer
from django_pagero_oauth.testing.mock.oidc import ID_TOKEN_FAULTS, at_hash

from .test_mock import CLIENT_ID, SECRET, authorize_params, jwt_parts, login


@pytest.fixture
def mock() -> MockPagero:
    return MockPagero(client_id=CLIENT_ID, client_secret=SECRET)


@pytest.fixture
def server(mock: MockPagero) -> Iterator[MockPageroServer]:
    with MockPageroServer(mock) as running:
        yield running


def openid_login(server: MockPageroServer, nonce: str = "n-0S6_WzA2Mj") -> dict[str, Any]:
    return login(server, scope="all openid", nonce=nonce)


def jwks(server: MockPageroServer) -> list[dict[str, Any]]:
    discovery = requests.get(server.url + "/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == server.url
    keys: list[dict[str, Any]] = requests.get(discovery["jwks_uri"], timeout=5).json()["keys"]
    return keys


def verified(server: MockPageroServer, id_token: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(id_token)
    jwk = next(key for key in jwks(server) if key["kid"] == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key=jwt.PyJWK(jwk, algorithm=header["alg"]),
        algorithms=[header["alg"]],
        audience=CLIENT_ID,
        issuer=server.url,
    )
    return claims


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_id_tokens_are_signed_with_a_published_key(
    server: MockPageroServer, mock: MockPagero, alg: str
) -> None:
    mock.id_token_alg = alg
    body = openid_login(server)
    claims = verified(server, body["id_token"])
    assert claims["nonce"] == "n-0S6_WzA2Mj" and claims["sub"] == "acme-ab"
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert jwt_parts(body["id_token"])[0]["alg"] == alg


def test_jwks_holds_only_public_keys(server: MockPageroServer) -> None:
    keys = jwks(server)
    assert {key["kty"] for key in keys} == {"RSA", "EC"}
    assert not any("d" in key or "p" in key for key in keys)


def test_openid_without_a_nonce_is_refused(server: MockPageroServer) -> None:
    response = requests.get(
        server.url + "/oauth/v2/oauth-authorize",
        params=authorize_params(scope="all openid"),
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["invalid_request"] and "nonce" in query["error_description"][0]


def test_rotation_signs_with_new_keys_and_keeps_the_old_ones_published(
    server: MockPageroServer, mock: MockPagero
) -> None:
    old_kid = jwt.get_unverified_header(openid_login(server)["id_token"])["kid"]
    mock.rotate_keys()
    new_kid = jwt.get_unverified_header(openid_login(server)["id_token"])["kid"]
    assert new_kid != old_kid
    assert {old_kid, new_kid} <= {key["kid"] for key in jwks(server)}
    mock.rotate_keys(keep_old=False)
    assert old_kid not in {key["kid"] for key in jwks(server)}


def test_jwks_and_discovery_are_counted_and_can_fail(
    server: MockPageroServer, mock: MockPagero
) -> None:
    jwks(server)
    assert (mock.counts["discovery"], mock.counts["jwks"]) == (1, 1)
    mock.add_fault(Fault(endpoint="jwks", status=503))
    assert requests.get(server.url + "/oauth/v2/jwks", timeout=5).status_code == 503


def broken(server: MockPageroServer, mock: MockPagero, fault: str) -> dict[str, Any]:
    openid_login(server, nonce="the-first-nonce")
    mock.add_fault(Fault(endpoint="token", id_token=fault))
    return openid_login(server, nonce="the-second-nonce")


@pytest.mark.parametrize("fault", [f for f in ID_TOKEN_FAULTS if f != "omit"])
def test_every_id_token_fault_fails_verification(
    server: MockPageroServer, mock: MockPagero, fault: str
) -> None:
    body = broken(server, mock, fault)
    try:
        claims = verified(server, body["id_token"])
    except (jwt.PyJWTError, StopIteration, KeyError):
        return  # the signature, a time claim, iss, aud, or finding the key fails
    # The rest pass PyJWT's generic checks: each breaks its own OpenID Connect rule.
    assert (
        claims.get("nonce") != "the-second-nonce"
        or "sub" not in claims
        or claims["at_hash"] != at_hash(body["access_token"])
        or (isinstance(claims["aud"], list) and "azp" not in claims)
    ), fault


def test_the_faults_do_what_they_say(server: MockPageroServer, mock: MockPagero) -> None:
    assert "id_token" not in broken(server, mock, "omit")
    header, claims, _ = jwt_parts(broken(server, mock, "alg_none")["id_token"])
    assert header["alg"] == "none"
    header, _, _ = jwt_parts(broken(server, mock, "hs256_public_key")["id_token"])
    assert header["alg"] == "HS256" and header["kid"] in {key["kid"] for key in jwks(server)}
    header, _, _ = jwt_parts(broken(server, mock, "unknown_kid")["id_token"])
    assert header["kid"] not in {key["kid"] for key in jwks(server)}
    _, claims, _ = jwt_parts(broken(server, mock, "missing_nonce")["id_token"])
    assert "nonce" not in claims


def test_the_replayed_nonce_is_the_previous_logins(
    server: MockPageroServer, mock: MockPagero
) -> None:
    openid_login(server, nonce="first")
    mock.add_fault(Fault(endpoint="token", id_token="replayed_nonce"))
    _, claims, _ = jwt_parts(openid_login(server, nonce="second")["id_token"])
    assert claims["nonce"] == "first"


def test_id_token_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="only applies"):
        Fault(endpoint="api", id_token="expired")
    with pytest.raises(ValueError, match="must be one of"):
        Fault(endpoint="token", id_token="nonsense")


def test_an_id_token_fault_over_the_control_endpoint(
    server: MockPageroServer, mock: MockPagero
) -> None:
    answer = requests.post(
        server.url + "/_mock/fault", data={"endpoint": "token", "id_token": "omit"}, timeout=5
    )
    assert answer.json() == {"ok": True}
    assert "id_token" not in openid_login(server)
