"""Kept so that ``django_pagero_oauth.testing.mock_oidc`` still imports: the mock's OpenID
Connect side now lives in :mod:`django_pagero_oauth.testing.mock.oidc` (import from there, or
the public names from :mod:`django_pagero_oauth.testing.mock`)."""

from .mock.oidc import (
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

__all__ = [
    "DISCOVERY_PATH",
    "ID_TOKEN_FAULTS",
    "JWKS_PATH",
    "SIGNING_ALGORITHMS",
    "KeySet",
    "SigningKey",
    "at_hash",
    "discovery_document",
    "make_id_token",
]
