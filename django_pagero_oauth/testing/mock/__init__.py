"""The strict mock Pagero server (see :mod:`.app`); import everything from here."""

from .app import (
    COUNT_KEYS,
    JWT_KID,
    JWT_X5T,
    REFRESH_TOKEN_PREFIX,
    MockPagero,
)
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
    KeySet,
    discovery_document,
    make_id_token,
)
from .server import MockPageroServer

__all__ = [
    "API_PREFIX",
    "AUTHORIZE_PATH",
    "COUNT_KEYS",
    "DISCOVERY_PATH",
    "FAULT_ENDPOINTS",
    "FORM_CONTENT_TYPE",
    "ID_TOKEN_FAULTS",
    "JWKS_PATH",
    "JWT_KID",
    "JWT_X5T",
    "OMIT",
    "REFRESH_TOKEN_PREFIX",
    "REVOKE_PATH",
    "TOKEN_PATH",
    "Fault",
    "KeySet",
    "MockPagero",
    "MockPageroServer",
    "MockRequest",
    "MockResponse",
    "discovery_document",
    "main",
    "make_id_token",
]
