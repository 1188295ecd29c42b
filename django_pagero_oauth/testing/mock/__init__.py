"""A strict, in-memory mock of Pagero Online's OAuth 2.0 server and a tiny API.

No Django (the standard library, and ``cryptography`` to sign id_tokens), so it serves the
project's tests, users' test suites, the example project (through a Django adapter calling
:meth:`MockPagero.handle`) and benchmarks (``python -m django_pagero_oauth.testing.mock``).

It is deliberately *stricter* than a lenient server, so that a protocol slip or a client race
fails a test instead of passing silently:

- authorization codes are single-use; a second use revokes every token issued from the code
  (RFC 6749 4.1.2) and they are bound to the client and the exact ``redirect_uri`` (4.1.3);
- refresh tokens are single-use (Pagero's rule): check-and-consume is atomic, so of two
  concurrent refreshes with one token exactly one wins, the other gets ``invalid_grant``;
- client authentication is RFC 6749 2.3.1 to the letter (form-urlencoded *before* base64 in
  HTTP Basic, one method per request, constant-time comparison);
- PKCE is S256 only (RFC 7636 4.2), every parameter may appear at most once (RFC 6749 3.1, 3.2);
- faults (:class:`Fault`) inject errors, slowness and dropped connections, or hold a request
  until the test releases it;
- with ``openid`` in the scope, the authorization request must carry a ``nonce``, and the code
  exchange returns a really signed ``id_token`` carrying it back; JWKS and discovery are served
  (:mod:`.oidc`: keys, signing, and the ``id_token`` faults).

All time comes from the ``clock`` callable, so tests move time instead of sleeping. Import
everything from here (docs/architecture.rst says which module owns what).
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
