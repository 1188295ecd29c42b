"""A strict, in-memory mock of Pagero Online's OAuth 2.0 server and a tiny API (:doc:`/testing`).

Standard library only (and ``cryptography`` to sign id_tokens), so it serves the project's
tests, users' test suites, the example project (through a Django adapter calling
:meth:`MockPagero.handle`) and benchmarks (``python -m django_pagero_oauth.testing.mock``). It
is stricter than a lenient server, so that a protocol slip or a client race fails a test:
single-use codes (RFC 6749 4.1.2) and refresh tokens (check-and-consume is atomic), client
authentication to the letter of RFC 6749 2.3.1, PKCE S256 only, each parameter at most once,
a signed ``id_token`` carrying the ``nonce`` back (:mod:`.oidc`), and faults (:class:`Fault`)
that inject errors, slowness and dropped connections or hold a request until released. All time
comes from the ``clock`` callable, so tests move time instead of sleeping.
"""

from .app import MockPagero
from .cli import main
from .faults import FAULT_ENDPOINTS, OMIT, Fault
from .http import (
    API_PREFIX,
    AUTHORIZE_PATH,
    FORM_CONTENT_TYPE,
    REVOKE_PATH,
    TOKEN_PATH,
    MockRequest,
    MockResponse,
)
from .oidc import (
    DISCOVERY_PATH,
    ID_TOKEN_FAULTS,
    JWKS_PATH,
    SIGNING_ALGORITHMS,
    KeySet,
    SigningKey,
    at_hash,
    discovery_document,
    make_id_token,
)
from .server import MockPageroServer
from .state import (
    COUNT_KEYS,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    HOLD_LIMIT,
    JWT_KID,
    JWT_X5T,
    REFRESH_TOKEN_PREFIX,
    mock_settings,
)

__all__ = [
    "API_PREFIX",
    "AUTHORIZE_PATH",
    "COUNT_KEYS",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DISCOVERY_PATH",
    "FAULT_ENDPOINTS",
    "FORM_CONTENT_TYPE",
    "HOLD_LIMIT",
    "ID_TOKEN_FAULTS",
    "JWKS_PATH",
    "JWT_KID",
    "JWT_X5T",
    "OMIT",
    "REFRESH_TOKEN_PREFIX",
    "REVOKE_PATH",
    "SIGNING_ALGORITHMS",
    "TOKEN_PATH",
    "Fault",
    "KeySet",
    "MockPagero",
    "MockPageroServer",
    "MockRequest",
    "MockResponse",
    "SigningKey",
    "at_hash",
    "discovery_document",
    "main",
    "make_id_token",
    "mock_settings",
]
