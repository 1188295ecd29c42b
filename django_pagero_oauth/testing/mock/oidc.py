"""The mock's OpenID Connect side: signing keys, JWKS, discovery, real signed ``id_token`` s.

Used by :mod:`.app`. Signing uses ``cryptography`` directly (not the JOSE library the client
verifies with), so a bug in one cannot hide a bug in the other. Keys are generated in memory:
an RSA key (``RS256`` and ``PS256``) and a P-256 key (``ES256``), each with its own ``kid``.

:data:`ID_TOKEN_FAULTS` are the ways an ``id_token`` can be wrong, for
``Fault(endpoint="token", id_token=...)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JWKS_PATH = "/oauth/v2/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"

#: The algorithms the mock signs with (``MockPagero.id_token_alg``).
SIGNING_ALGORITHMS = ("RS256", "PS256", "ES256")

#: What :func:`make_id_token` can do wrong, one fault at a time.
ID_TOKEN_FAULTS = (
    "omit",  # no id_token in the token response
    "bad_signature",  # one bit of the signature flipped
    "alg_none",  # "alg": "none", no signature (RFC 7519 6)
    "hs256_public_key",  # HS256 with the RSA public key (PEM) as the HMAC secret
    "wrong_iss",
    "wrong_aud",
    "multiple_aud_without_azp",
    "expired",
    "future_iat",
    "missing_nonce",
    "replayed_nonce",  # the nonce of the previous code exchange
    "unknown_kid",  # signed with a key that is not in the JWKS
    "missing_sub",
    "bad_at_hash",
)


def _b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 2, RFC 7636 Appendix A)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int, length: int | None = None) -> str:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(size, "big"))


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def kty(self) -> str:
        return "RSA" if isinstance(self.private_key, rsa.RSAPrivateKey) else "EC"

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517 4, RFC 7518 6.2.1 and 6.3.1)."""
        jwk = {"kty": self.kty, "use": "sig", "kid": self.kid}
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {**jwk, "n": _b64url_int(numbers.n), "e": _b64url_int(numbers.e)}
        point = public.public_numbers()
        return {**jwk, "crv": "P-256", "x": _b64url_int(point.x, 32), "y": _b64url_int(point.y, 32)}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, alg: str, data: bytes) -> bytes:
        """A JWS signature (RFC 7518 3.3-3.5); ECDSA as the raw ``R || S`` of 3.4."""
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            if alg == "RS256":
                return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            if alg == "PS256":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                return key.sign(data, pss, hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        raise ValueError(f"key {self.kid} cannot sign {alg}")


def _new_keys(generation: int) -> list[SigningKey]:
    suffix = f"{generation}-{secrets.token_hex(4)}"
    return [
        SigningKey(f"mock-rsa-{suffix}", rsa.generate_private_key(65537, 2048)),
        SigningKey(f"mock-ec-{suffix}", ec.generate_private_key(ec.SECP256R1())),
    ]


@dataclass
class KeySet:
    """The keys the mock signs with (``current``) and publishes (``current`` + ``retired``).

    Generated on first use: a mock that never issues an ``id_token`` costs no RSA key.
    """

    generation: int = 1
    _current: list[SigningKey] = field(default_factory=list)
    retired: list[SigningKey] = field(default_factory=list)

    @property
    def current(self) -> list[SigningKey]:
        if not self._current:
            self._current = _new_keys(self.generation)
        return self._current

    def key_for(self, alg: str) -> SigningKey:
        kty = "EC" if alg.startswith("ES") else "RSA"
        return next(key for key in self.current if key.kty == kty)

    def rotated(self, *, keep_old: bool = True) -> KeySet:
        """New keys sign from now on; the old ones stay published while ``keep_old``."""
        return KeySet(
            generation=self.generation + 1,
            retired=[*self.current, *self.retired] if keep_old else [],
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in (*self.current, *self.retired)]}


def discovery_document(issuer: str, base_url: str, authorize: str, token: str) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 section 3, the fields a client of this mock needs."""
    return {
        "issuer": issuer,
        "authorization_endpoint": base_url + authorize,
        "token_endpoint": base_url + token,
        "jwks_uri": base_url + JWKS_PATH,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "scopes_supported": ["openid", "all"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }


def at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6 for the SHA-256 algorithms."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def _encode(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, claims))
    return ".".join(_b64url(part) for part in parts).encode("ascii")


def _break_claims(
    claims: dict[str, Any], fault: str | None, access_token: str, previous_nonce: str | None
) -> None:
    """Apply to ``claims`` the fault of :data:`ID_TOKEN_FAULTS` that concerns a claim."""
    if fault == "wrong_iss":
        claims["iss"] = "https://impostor.example"
    elif fault == "wrong_aud":
        claims["aud"] = "another-client"
    elif fault == "multiple_aud_without_azp":
        claims["aud"] = [claims["aud"], "another-client"]
    elif fault in ("expired", "future_iat"):
        shift = -3600 if fault == "expired" else 3600
        claims["iat"] = int(claims["iat"]) + shift
        claims["exp"] = int(claims["exp"]) + shift
    elif fault in ("missing_nonce", "missing_sub"):
        claims.pop(fault.removeprefix("missing_"), None)
    elif fault == "replayed_nonce":
        claims["nonce"] = previous_nonce or secrets.token_urlsafe(32)
    elif fault == "bad_at_hash":
        claims["at_hash"] = at_hash(access_token + "x")


def make_id_token(
    claims: dict[str, Any],
    *,
    keys: KeySet,
    alg: str,
    access_token: str,
    fault: str | None = None,
    previous_nonce: str | None = None,
) -> str | None:
    """A signed ``id_token`` with ``claims`` (plus ``at_hash``), or one broken by ``fault``.

    Returns ``None`` for the ``"omit"`` fault.
    """
    if fault is not None and fault not in ID_TOKEN_FAULTS:
        raise ValueError(f"unknown id_token fault {fault!r}")
    if fault == "omit":
        return None
    claims = {**claims, "at_hash": at_hash(access_token)}
    _break_claims(claims, fault, access_token, previous_nonce)
    if fault == "alg_none":
        return _encode({"alg": "none", "typ": "JWT"}, claims).decode() + "."
    if fault == "hs256_public_key":
        rsa_key = keys.key_for("RS256")
        signing_input = _encode({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}, claims)
        mac = hmac.new(rsa_key.public_pem(), signing_input, hashlib.sha256).digest()
        return f"{signing_input.decode()}.{_b64url(mac)}"
    key = keys.key_for(alg)
    if fault == "unknown_kid":
        key = _new_keys(0)[0 if alg != "ES256" else 1]
        key.kid = f"unknown-{secrets.token_hex(4)}"
    signing_input = _encode({"alg": alg, "typ": "JWT", "kid": key.kid}, claims)
    signature = bytearray(key.sign(alg, signing_input))
    if fault == "bad_signature":
        signature[len(signature) // 2] ^= 0x01
    return f"{signing_input.decode()}.{_b64url(bytes(signature))}"
