"""Tests of ``oidc.py``: the rules of OpenID Connect Core 3.1.3.7 one by one, and the key set.

The id_tokens are signed by the mock's own signer (``testing/mock/oidc.py``, ``cryptography``
directly); the verifier fetches the keys from the mock over a real socket.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from django_pagero_oauth import oidc
from django_pagero_oauth.exceptions import IdTokenError, PageroConfigurationError, PageroUnavailable
from django_pagero_oauth.testing.mock import Fault, MockPageroServer
from django_pagero_oauth.testing.mock.oidc import _b64url, _encode, at_hash, make_id_token

NONCE = "n-0S6_WzA2Mj"
ACCESS_TOKEN = "an-access-token"


@pytest.fixture
def mock(pagero_mock: MockPageroServer) -> MockPageroServer:
    return pagero_mock


def claims(mock: MockPageroServer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": mock.url,
        "sub": "acme-ab",
        "aud": mock.mock.client_id,
        "iat": now,
        "exp": now + 600,
        "nonce": NONCE,
    }
    return {key: value for key, value in {**base, **changes}.items() if value is not None}


def signed(mock: MockPageroServer, alg: str = "RS256", **changes: Any) -> str:
    token = make_id_token(
        claims(mock, **changes), keys=mock.mock.signing_keys, alg=alg, access_token=ACCESS_TOKEN
    )
    assert token is not None
    return token


def sign_raw(mock: MockPageroServer, header: dict[str, Any], payload: dict[str, Any]) -> str:
    key = mock.mock.signing_keys.key_for(header["alg"])
    signing_input = _encode(header, payload)
    return f"{signing_input.decode()}.{_b64url(key.sign(header['alg'], signing_input))}"


def verify(token: str, nonce: str = NONCE) -> oidc.IdTokenClaims:
    return oidc.verify_id_token(token, nonce=nonce, access_token=ACCESS_TOKEN)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_a_valid_id_token(mock: MockPageroServer, alg: str) -> None:
    verified = verify(signed(mock, alg))
    assert (verified.issuer, verified.subject) == (mock.url, "acme-ab")
    assert verified.claims["at_hash"] == at_hash(ACCESS_TOKEN)
    assert "acme-ab" in repr(verified) and ACCESS_TOKEN not in repr(verified)


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "EdDSA", "", None])
def test_only_allow_listed_algorithms_and_no_key_is_fetched_for_others(
    mock: MockPageroServer, alg: Any
) -> None:
    header = {"alg": alg, "typ": "JWT"}
    token = f"{_encode(header, claims(mock)).decode()}.{_b64url(b'x' * 32)}"
    with pytest.raises(IdTokenError, match="is not allowed"):
        verify(token)
    assert mock.mock.counts["jwks"] == 0


def test_a_key_of_the_wrong_type_is_never_used(mock: MockPageroServer) -> None:
    rsa_kid = mock.mock.signing_keys.key_for("RS256").kid
    ec_key = mock.mock.signing_keys.key_for("ES256")
    header = {"alg": "ES256", "kid": rsa_kid}
    signing_input = _encode(header, claims(mock))
    token = f"{signing_input.decode()}.{_b64url(ec_key.sign('ES256', signing_input))}"
    with pytest.raises(IdTokenError, match="no key of the issuer"):
        verify(token)


def test_without_a_kid_the_one_key_of_the_right_type_is_used(mock: MockPageroServer) -> None:
    token = sign_raw(mock, {"alg": "ES256"}, claims(mock))
    assert verify(token).subject == "acme-ab"


def test_iss_must_equal_issuer(mock: MockPageroServer) -> None:
    with pytest.raises(IdTokenError, match="iss"):
        verify(signed(mock, iss=mock.url + "/"))


@pytest.mark.parametrize("aud", ["other", ["other", "another"], []])
def test_aud_must_contain_the_client_id(mock: MockPageroServer, aud: Any) -> None:
    with pytest.raises(IdTokenError, match="aud"):
        verify(signed(mock, aud=aud))


def test_several_audiences_need_azp_equal_to_the_client_id(mock: MockPageroServer) -> None:
    client_id = mock.mock.client_id
    assert verify(signed(mock, aud=[client_id, "other"], azp=client_id)).subject == "acme-ab"
    for azp in (None, "other"):
        with pytest.raises(IdTokenError, match="azp"):
            verify(signed(mock, aud=[client_id, "other"], azp=azp))
    with pytest.raises(IdTokenError, match="azp"):
        verify(signed(mock, azp="other"))  # one audience, but a foreign azp


def test_exp_and_iat_have_a_small_leeway(mock: MockPageroServer, settings: Any) -> None:
    now = int(time.time())
    assert verify(signed(mock, iat=now + 30, exp=now + 630))  # clock skew: accepted
    assert verify(signed(mock, iat=now - 700, exp=now - 30))
    with pytest.raises(IdTokenError, match="expired"):
        verify(signed(mock, iat=now - 800, exp=now - 120))
    with pytest.raises(IdTokenError, match="future"):
        verify(signed(mock, iat=now + 120, exp=now + 720))
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ID_TOKEN_LEEWAY": 0}
    with pytest.raises(IdTokenError, match="expired"):
        verify(signed(mock, iat=now - 700, exp=now - 30))


@pytest.mark.parametrize("missing", ["iss", "sub", "aud", "exp", "iat"])
def test_required_claims(mock: MockPageroServer, missing: str) -> None:
    with pytest.raises(IdTokenError, match=f"no {missing} claim"):
        verify(sign_raw(mock, {"alg": "RS256"}, claims(mock, **{missing: None})))


def test_nonce_must_be_this_flows(mock: MockPageroServer) -> None:
    with pytest.raises(IdTokenError, match="nonce"):
        verify(signed(mock), nonce="another-flow")
    with pytest.raises(IdTokenError, match="nonce"):
        verify(signed(mock, nonce=None))
    with pytest.raises(IdTokenError, match="nonce"):
        verify(signed(mock, nonce=["n-0S6_WzA2Mj"]))


def test_at_hash_is_checked_when_present(mock: MockPageroServer) -> None:
    payload = claims(mock)
    assert verify(sign_raw(mock, {"alg": "RS256"}, payload)).subject == "acme-ab"  # absent
    payload["at_hash"] = at_hash("another-access-token")
    with pytest.raises(IdTokenError, match="at_hash"):
        verify(sign_raw(mock, {"alg": "RS256"}, payload))


@pytest.mark.parametrize("sub", ["", "x" * 256, 42])
def test_sub_is_a_string_of_1_to_255_characters(mock: MockPageroServer, sub: Any) -> None:
    with pytest.raises(IdTokenError, match="sub"):
        verify(signed(mock, sub=sub))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_a_missing_or_malformed_id_token(mock: MockPageroServer, token: str) -> None:
    with pytest.raises(IdTokenError):
        verify(token)


def test_a_tampered_payload_fails_the_signature(mock: MockPageroServer) -> None:
    header, _payload, signature = signed(mock).split(".")
    forged = _b64url(json.dumps(claims(mock, sub="victim")).encode())
    with pytest.raises(IdTokenError, match="signature"):
        verify(f"{header}.{forged}.{signature}")


def test_symmetric_keys_in_the_key_set_are_ignored(mock: MockPageroServer, settings: Any) -> None:
    jwks = {"keys": [{"kty": "oct", "kid": "k", "k": _b64url(b"secret")}]}
    mock.mock.add_fault(Fault(endpoint="jwks", status=200, body=json.dumps(jwks)))
    assert oidc.get_signing_keys() == []


def test_a_jwks_url_that_is_not_https_is_never_fetched(
    mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "JWKS_URL": "http://keys.example/jwks"}
    with pytest.raises(PageroConfigurationError, match="not https"):
        verify(signed(mock))


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 302, "headers": [("Location", "https://elsewhere.example/")]},
        {"status": 200, "body": "not json"},
        {"status": 200, "body": '{"keys": "none"}'},
        {"delay": 0.5},
    ],
)
def test_a_key_set_that_cannot_be_used_is_unavailable(
    mock: MockPageroServer, settings: Any, fault: dict[str, Any]
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 0.2}
    mock.mock.add_fault(Fault(endpoint="jwks", **fault))
    with pytest.raises(PageroUnavailable):
        verify(signed(mock))


def test_a_discovery_document_of_another_issuer_is_a_configuration_error(
    mock: MockPageroServer,
) -> None:
    # ISSUER names another server than the one at its URL: trying again later cannot help.
    body = json.dumps({"issuer": "https://elsewhere.example", "jwks_uri": mock.url + "/jwks"})
    mock.mock.add_fault(Fault(endpoint="discovery", status=200, body=body))
    with pytest.raises(PageroConfigurationError, match="not ISSUER"):
        oidc.jwks_url()


def test_discovery_needs_a_jwks_uri(mock: MockPageroServer) -> None:
    body = json.dumps({"issuer": mock.url})
    mock.mock.add_fault(Fault(endpoint="discovery", status=200, body=body))
    with pytest.raises(PageroUnavailable, match="jwks_uri"):
        oidc.jwks_url()


def test_authorization_scope_adds_openid_once(settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all"}
    assert oidc.authorization_scope(openid=True) == "all openid"
    assert oidc.authorization_scope(openid=False) == "all"
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "openid all"}
    assert oidc.authorization_scope(openid=True) == "openid all"


@pytest.mark.parametrize("broken", [{"n": "!!not base64!!"}, {"e": ""}, {"n": None}])
def test_a_malformed_key_of_the_issuer_is_unavailable_not_a_refusal(
    mock: MockPageroServer, broken: dict[str, Any]
) -> None:
    """The key for the token's kid is the issuer's fault, not the token's: 503, try again."""
    token = signed(mock)
    jwks = mock.mock.signing_keys.jwks()
    for jwk in jwks["keys"]:
        jwk.update({name: value for name, value in broken.items() if value is not None})
        for name in [name for name, value in broken.items() if value is None]:
            jwk.pop(name, None)
    mock.mock.add_fault(Fault(endpoint="jwks", status=200, body=json.dumps(jwks)))
    with pytest.raises(PageroUnavailable, match="key cannot be used"):
        verify(token)


@pytest.mark.parametrize("sub", ["acme\x00ab", "acme\ud800", "acme\nab", "\x7f"])
def test_a_sub_with_characters_no_identifier_has_is_refused(
    mock: MockPageroServer, sub: str
) -> None:
    """NUL (PostgreSQL refuses it), a lone surrogate (no database stores it), control
    characters: refused as an IdTokenError, never a 500 when the identity is looked up."""
    payload = claims(mock, sub=sub)
    with pytest.raises(IdTokenError, match="sub"):
        verify(sign_raw(mock, {"alg": "RS256"}, payload))


def test_an_at_hash_that_is_not_ascii_is_a_mismatch_not_a_crash(mock: MockPageroServer) -> None:
    payload = {**claims(mock), "at_hash": "\ud800"}
    with pytest.raises(IdTokenError, match="at_hash"):
        verify(sign_raw(mock, {"alg": "RS256"}, payload))


def test_an_unexpected_failure_while_checking_is_a_refusal(
    mock: MockPageroServer, monkeypatch: Any
) -> None:
    token = signed(mock)

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug deep in PyJWT")

    monkeypatch.setattr(oidc.jwt, "decode", bug)
    with pytest.raises(IdTokenError, match="RuntimeError") as raised:
        verify(token)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_key_declared_for_another_alg_of_its_type_is_never_used(mock: MockPageroServer) -> None:
    """RFC 7517 4.4: a key whose own ``alg`` is PS256 does not verify an RS256 token, even with
    the token's ``kid`` and the right key type; the same key declared for RS256 does."""
    rsa_key = mock.mock.signing_keys.key_for("RS256")
    token = sign_raw(mock, {"alg": "RS256", "kid": rsa_key.kid}, claims(mock))
    for declared in ("PS256", "RS256"):
        body = json.dumps({"keys": [{**rsa_key.public_jwk(), "alg": declared}]})
        mock.mock.add_fault(Fault(endpoint="jwks", status=200, body=body, times=2))
        oidc.forget_keys()
        if declared == "PS256":
            with pytest.raises(IdTokenError, match="no key of the issuer matches") as info:
                verify(token)
            assert mock.mock.counts["jwks"] == 2  # fetched again once, in case of a rotation
        else:
            assert verify(token).subject == "acme-ab"
    assert isinstance(info.value, IdTokenError)


@pytest.mark.parametrize(
    ("token", "rule"),
    [
        ("", "the token response has no id_token"),
        ("not-a-jwt", "the id_token is not a JWS"),
        ("a.b.c", "the id_token is not a JWS"),
    ],
)
def test_a_missing_or_malformed_id_token_names_its_rule(
    mock: MockPageroServer, token: str, rule: str
) -> None:
    with pytest.raises(IdTokenError, match=rule):
        verify(token)
    assert mock.mock.counts["jwks"] == 0


@pytest.mark.parametrize("kid", [5, ["k"], {"k": 1}, True])
def test_a_kid_that_is_not_a_string_is_refused(mock: MockPageroServer, kid: Any) -> None:
    """PyJWT refuses such a header already; the package's own check stays for another parser."""
    token = sign_raw(mock, {"alg": "RS256", "kid": kid}, claims(mock))
    with pytest.raises(IdTokenError, match=r"is not a JWS|kid is not a string"):
        verify(token)
    assert mock.mock.counts["jwks"] == 0


def test_a_refused_alg_is_shown_cut_to_16_characters(mock: MockPageroServer) -> None:
    header = {"alg": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "typ": "JWT"}
    token = f"{_encode(header, claims(mock)).decode()}.{_b64url(b'x' * 32)}"
    with pytest.raises(IdTokenError, match="alg 'ABCDEFGHIJKLMNOP' is not allowed"):
        verify(token)


def test_a_key_on_another_curve_is_never_used(mock: MockPageroServer) -> None:
    """An ES256 token and the issuer's key with its ``kid`` but on P-384: not its key."""
    ec_key = mock.mock.signing_keys.key_for("ES256")
    token = sign_raw(mock, {"alg": "ES256", "kid": ec_key.kid}, claims(mock))
    body = json.dumps({"keys": [{**ec_key.public_jwk(), "crv": "P-384"}]})
    mock.mock.add_fault(Fault(endpoint="jwks", status=200, body=body, times=2))
    with pytest.raises(IdTokenError, match="no key of the issuer matches"):
        verify(token)


def test_a_claim_pyjwt_cannot_read_is_refused_with_its_error_class(mock: MockPageroServer) -> None:
    kid = mock.mock.signing_keys.key_for("RS256").kid
    with pytest.raises(IdTokenError, match=r"the id_token is not valid \(DecodeError\)"):
        verify(sign_raw(mock, {"alg": "RS256", "kid": kid}, {**claims(mock), "exp": "soon"}))


def test_a_sub_of_exactly_255_characters_is_accepted_256_is_not(mock: MockPageroServer) -> None:
    assert verify(signed(mock, sub="s" * 255)).subject == "s" * 255
    with pytest.raises(IdTokenError, match="sub is not a string of 1 to 255 characters"):
        verify(signed(mock, sub="s" * 256))


@pytest.mark.parametrize("sent", ["\udcff", NONCE + "\udcff", "\u00e9"])
def test_a_nonce_no_login_could_have_sent_is_a_mismatch_not_a_crash(
    mock: MockPageroServer, sent: str
) -> None:
    with pytest.raises(IdTokenError, match="nonce is missing or not this login's"):
        verify(signed(mock, nonce=sent))
