"""OpenID Connect: discovery, the issuer's key set, and ``id_token`` validation.

- :func:`verify_id_token`: OpenID Connect Core 1.0 section 3.1.3.7, every rule.
- :func:`get_signing_keys`: the JWKS (RFC 7517) from ``JWKS_URL``, or from ``jwks_uri`` in
  ``ISSUER/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 section 4), kept in
  Django's cache; an unknown ``kid`` refetches it once (rate-limited), so that Pagero can
  rotate its keys without an outage.

Signatures are checked by PyJWT, never by hand, with asymmetric algorithms and keys of the
matching type only: ``none`` and HMAC (a token "signed" with the public key as the secret) are
refused before any key is used. A key-set or discovery failure is ``PageroUnavailable``, a wrong
``ISSUER``/``JWKS_URL`` ``PageroConfigurationError``, a token that fails a rule
``IdTokenError``; none carries the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import jwt
from django.core.cache import cache
from django.views.decorators.debug import sensitive_variables

from . import transport
from .conf import app_settings
from .exceptions import IdTokenError, PageroConfigurationError, PageroUnavailable

logger = logging.getLogger("django_pagero_oauth")

#: Signature algorithms an ``id_token`` may use (RFC 7518 3.1): asymmetric only.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
#: The key type (and for EC the curve) each algorithm needs (RFC 7518 3.3-3.5, 6.2.1.1).
_KEY_TYPES = {
    **{f"{family}{bits}": ("RSA", None) for family in ("RS", "PS") for bits in (256, 384, 512)},
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}

DISCOVERY_PATH = "/.well-known/openid-configuration"
_CACHE_PREFIX = "django_pagero_oauth:oidc"


@dataclass(frozen=True)
class IdTokenClaims:
    """The claims of a verified ``id_token``. ``issuer`` and ``subject`` identify the user."""

    issuer: str
    subject: str
    claims: dict[str, Any]

    def __repr__(self) -> str:
        return f"IdTokenClaims(issuer={self.issuer!r}, subject={self.subject!r})"


def authorization_scope(*, openid: bool) -> str:
    """``SCOPE``, with ``openid`` added when the flow asks for an ``id_token``."""
    scope = app_settings.SCOPE
    if openid and "openid" not in scope.split():
        scope = f"{scope} openid".strip()
    return scope


def _cache_key(kind: str, url: str) -> str:
    return f"{_CACHE_PREFIX}:{kind}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"


def _issuer() -> str:
    issuer = app_settings.ISSUER
    if not issuer:
        raise PageroConfigurationError("PAGERO_OAUTH['ISSUER'] must be set to verify id_tokens")
    return issuer


def _configured_url(setting: str, url: str) -> str:
    """``url`` from ``setting`` if it may be fetched; a setting that is not https (or loopback)
    is :class:`PageroConfigurationError`: trying again later cannot help."""
    if not transport.fetchable(url):
        logger.error("Pagero: PAGERO_OAUTH[%r] is not https; nothing was fetched", setting)
        raise PageroConfigurationError(f"PAGERO_OAUTH[{setting!r}] is not https")
    return url


def jwks_url() -> str:
    """``JWKS_URL``, or the ``jwks_uri`` of the issuer's discovery document (cached).

    The document's ``issuer`` must equal ``ISSUER`` exactly (Discovery 1.0 section 4.3).
    """
    if app_settings.JWKS_URL:
        return _configured_url("JWKS_URL", app_settings.JWKS_URL)
    issuer = _configured_url("ISSUER", _issuer())
    key = _cache_key("discovery", issuer)
    cached = cache.get(key)
    if isinstance(cached, str) and cached:
        return cached
    document = transport.get_json(issuer.rstrip("/") + DISCOVERY_PATH, "discovery")
    if document.get("issuer") != issuer:
        # A wrong ISSUER setting (or the wrong server at it): trying again will not help.
        logger.error("Pagero discovery: the document's issuer is not ISSUER")
        raise PageroConfigurationError("discovery: the document's issuer is not ISSUER")
    url = document.get("jwks_uri")
    if not isinstance(url, str) or not transport.fetchable(url):
        logger.error("Pagero discovery: no usable https jwks_uri")
        raise PageroUnavailable("discovery: no usable https jwks_uri")
    cache.set(key, url, app_settings.JWKS_CACHE_SECONDS)
    return url


def get_signing_keys(*, refetch: bool = False) -> list[dict[str, Any]]:
    """The issuer's signature keys (JWKs of type RSA or EC), from the cache or fetched.

    ``refetch`` asks for a fresh copy (an unknown ``kid``): at most one per
    ``JWKS_REFETCH_INTERVAL`` seconds, else :class:`PageroUnavailable`.
    """
    url = jwks_url()
    key = _cache_key("jwks", url)
    if not refetch:
        cached = cache.get(key)
        if isinstance(cached, list):
            return cached
    elif app_settings.JWKS_REFETCH_INTERVAL and not cache.add(
        _cache_key("refetch", url), True, app_settings.JWKS_REFETCH_INTERVAL
    ):
        logger.warning("Pagero JWKS: unknown key, but the key set was refetched just now")
        raise PageroUnavailable("jwks: unknown signing key; the key set was refetched just now")
    document = transport.get_json(url, "JWKS")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise PageroUnavailable("jwks: the answer has no keys")
    usable = [
        jwk
        for jwk in keys
        if isinstance(jwk, dict)
        and jwk.get("kty") in ("RSA", "EC")
        and jwk.get("use", "sig") == "sig"
    ]
    cache.set(key, usable, app_settings.JWKS_CACHE_SECONDS)
    return usable


def forget_keys() -> None:
    """Drop the cached discovery result and key set of the configured issuer (tests, rotation)."""
    urls = [app_settings.JWKS_URL] if app_settings.JWKS_URL else []
    if app_settings.ISSUER:
        urls.append(app_settings.ISSUER)
        cached = cache.get(_cache_key("discovery", app_settings.ISSUER))
        if isinstance(cached, str):
            urls.append(cached)
    cache.delete_many(
        [_cache_key(kind, url) for url in urls for kind in ("discovery", "jwks", "refetch")]
    )


def _reject(rule: str) -> IdTokenError:
    logger.warning("Pagero id_token rejected: %s", rule)
    return IdTokenError(rule)


def _matching_key(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    kty, crv = _KEY_TYPES[alg]
    candidates = [
        jwk
        for jwk in keys
        if jwk.get("kty") == kty
        and (crv is None or jwk.get("crv") == crv)
        and jwk.get("alg", alg) == alg
    ]
    if kid is not None:
        return next((jwk for jwk in candidates if jwk.get("kid") == kid), None)
    # RFC 7515 4.1.4: without a kid, the key must still be unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def _token_hash(value: str, alg: str) -> str:
    """``at_hash``: the left half of the hash of the token's ASCII octets (Core 3.1.3.6)."""
    digest = _HASHES[alg[-3:]](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


@sensitive_variables()
def verify_id_token(id_token: str, *, nonce: str, access_token: str) -> IdTokenClaims:
    """Validate an ``id_token`` from a code exchange (OpenID Connect Core 1.0 3.1.3.7).

    Signature (an allow-listed asymmetric ``alg``, the issuer's key for its ``kid``), ``iss``
    equal to ``ISSUER``, ``aud`` containing ``CLIENT_ID`` (and ``azp`` equal to it when there
    are several audiences, or whenever present), ``exp`` and ``iat`` within
    ``ID_TOKEN_LEEWAY``, ``nonce`` equal to the flow's, ``at_hash`` when present, ``sub``.

    Any unexpected failure while checking (a bug in a library, a claim no rule foresaw) is an
    :class:`IdTokenError` too, never a 500 whose error report would show the tokens: the token
    is refused. :class:`PageroUnavailable` and :class:`PageroConfigurationError` pass through.
    """
    try:
        return _verify_id_token(id_token, nonce=nonce, access_token=access_token)
    except (IdTokenError, PageroUnavailable, PageroConfigurationError):
        raise
    except Exception as exc:
        raise _reject(f"checking the id_token failed ({type(exc).__name__})") from None


@sensitive_variables()
def _verify_id_token(id_token: str, *, nonce: str, access_token: str) -> IdTokenClaims:
    issuer = _issuer()
    if not id_token:
        raise _reject("the token response has no id_token")
    alg, jwk = _signing_key_for(id_token)
    claims = _decoded_claims(id_token, jwk, alg, issuer)
    _check_claims(claims, nonce=nonce, access_token=access_token, alg=alg)
    return IdTokenClaims(issuer=issuer, subject=claims["sub"], claims=claims)


def _signing_key_for(id_token: str) -> tuple[str, dict[str, Any]]:
    """The token's allow-listed ``alg`` and the issuer's key for its ``kid`` (Core 10.1.1)."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise _reject("the id_token is not a JWS") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _reject(f"the id_token's alg {str(alg)[:16]!r} is not allowed")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _reject("the id_token's kid is not a string")
    jwk = _matching_key(get_signing_keys(), kid, alg)
    if jwk is None:
        # Perhaps Pagero rotated its keys: fetch the set again, once.
        jwk = _matching_key(get_signing_keys(refetch=True), kid, alg)
    if jwk is None:
        raise _reject("no key of the issuer matches the id_token's kid and alg")
    return str(alg), jwk


def _decoded_claims(id_token: str, jwk: dict[str, Any], alg: str, issuer: str) -> dict[str, Any]:
    """The claims, once PyJWT checked the signature, ``iss``, ``aud``, ``exp`` and ``iat``."""
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except Exception:
        # The issuer's key set is broken (a malformed key), not the token: try again later.
        logger.error("Pagero JWKS: the key for the id_token's kid cannot be used")
        raise PageroUnavailable("jwks: the issuer's key cannot be used") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key,
            algorithms=[alg],
            audience=app_settings.CLIENT_ID,
            issuer=issuer,
            leeway=app_settings.ID_TOKEN_LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_sub": False},
        )
    except jwt.InvalidSignatureError:
        raise _reject("the id_token's signature is not valid") from None
    except jwt.ExpiredSignatureError:
        raise _reject("the id_token has expired") from None
    except jwt.ImmatureSignatureError:
        raise _reject("the id_token was issued in the future") from None
    except jwt.InvalidIssuerError:
        raise _reject("the id_token's iss is not ISSUER") from None
    except jwt.InvalidAudienceError:
        raise _reject("the id_token's aud does not contain CLIENT_ID") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _reject(f"the id_token has no {exc.claim} claim") from None
    except jwt.PyJWTError as exc:
        raise _reject(f"the id_token is not valid ({type(exc).__name__})") from None
    return claims


def _check_claims(claims: dict[str, Any], *, nonce: str, access_token: str, alg: str) -> None:
    """The rules PyJWT does not know: ``azp``, ``nonce``, ``at_hash``, ``sub`` (Core 3.1.3.7)."""
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != app_settings.CLIENT_ID:
        raise _reject("the id_token's azp is not CLIENT_ID")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(
        sent.encode("utf-8", "surrogatepass"), nonce.encode("utf-8")
    ):
        raise _reject("the id_token's nonce is missing or not this login's")
    at_hash = claims.get("at_hash")
    if at_hash is not None and not (
        isinstance(at_hash, str)
        and access_token.isascii()
        and at_hash.isascii()
        and hmac.compare_digest(at_hash.encode(), _token_hash(access_token, alg).encode())
    ):
        raise _reject("the id_token's at_hash does not match the access token")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise _reject("the id_token's sub is not a string of 1 to 255 characters")
    if not subject.isprintable():  # also False for NUL and lone surrogates
        # A NUL, a control character or a lone surrogate cannot be stored (PostgreSQL refuses
        # NUL, every database a surrogate) and is no identifier a real issuer sends.
        raise _reject("the id_token's sub holds characters no identifier has")
