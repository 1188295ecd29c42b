"""System checks (``manage.py check``), ids ``django_pagero_oauth.E0xx``, ``W0xx`` and ``I001``.

Every message has a hint. All are tagged ``django_pagero_oauth`` (``manage.py check --tag
django_pagero_oauth``); those of :mod:`.deployment` also ``security``. The stored-token check
runs only with ``manage.py check --database <alias>``. docs/operations.rst ("System checks")
lists every id.
"""

from __future__ import annotations

from django.core.checks import CheckMessage, Tags
from django.core.checks import register as register_check

from .deployment import check_https, check_mock_in_production, check_mock_server, check_pkce
from .keys import check_encryption_keys, check_stored_tokens_decrypt
from .values import check_credentials, check_setting_values, check_settings_type, check_unknown_keys
from .wiring import check_middleware, check_openid, check_preloading_backend

__all__ = ["check_stored_tokens_decrypt", "register", "run_configuration_checks"]

APP = "django_pagero_oauth"

#: The checks that need no database, in the order ``pagero_check`` reports them.
CONFIGURATION_CHECKS = (
    check_settings_type,
    check_credentials,
    check_setting_values,
    check_https,
    check_middleware,
    check_unknown_keys,
    check_pkce,
    check_mock_server,
    check_mock_in_production,
    check_encryption_keys,
    check_openid,
)
_SECURITY_CHECKS = (check_https, check_pkce, check_mock_server, check_mock_in_production)


def run_configuration_checks() -> list[CheckMessage]:
    """Every configuration check's messages (what the management commands validate first),
    except those ``SILENCED_SYSTEM_CHECKS`` names, as in ``manage.py check``."""
    return [
        message
        for check in CONFIGURATION_CHECKS
        for message in check()
        if not message.is_silenced()
    ]


def register() -> None:
    for check in CONFIGURATION_CHECKS:
        tags = (APP, Tags.security) if check in _SECURITY_CHECKS else (APP,)
        register_check(check, *tags)
    register_check(check_stored_tokens_decrypt, APP, Tags.database)
    # Not among CONFIGURATION_CHECKS: an Info is advice, not something a command should print.
    register_check(check_preloading_backend, APP, Tags.urls)
