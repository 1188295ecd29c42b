"""The checks of ``PAGERO_OAUTH`` itself: a dict, with the credentials, known keys, and every
value set following the rule its declaration in :mod:`django_pagero_oauth.conf` gives."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from ..conf import DEFAULTS, SETTINGS, app_settings


def check_settings_type(**kwargs: Any) -> list[CheckMessage]:
    if isinstance(getattr(settings, "PAGERO_OAUTH", {}), dict):
        return []
    return [
        Error(
            "PAGERO_OAUTH must be a dict.",
            hint="PAGERO_OAUTH = {'CLIENT_ID': ..., 'CLIENT_SECRET': ...}",
            id="django_pagero_oauth.E008",
        )
    ]


def check_credentials(**kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"PAGERO_OAUTH['{key}'] is not set.",
            hint="Set it from the client registered with Pagero (e.g. from the environment).",
            id="django_pagero_oauth.E001",
        )
        for key in ("CLIENT_ID", "CLIENT_SECRET")
        if not app_settings.user_settings.get(key)
    ]


def check_setting_values(**kwargs: Any) -> list[CheckMessage]:
    """Every key that is set has a value of its kind and range (its ``Setting.rule``), so that
    a wrong one is reported here, not met at a user's first login or quietly replaced. The id
    is the setting's ``check``: ``E018``, or the id of its own (``E005``, ``E006``, ``E011``,
    ``E012``, ``E013``, ``E017``)."""
    user_settings = app_settings.user_settings
    messages: list[CheckMessage] = []
    for setting in SETTINGS:
        if setting.name not in user_settings or setting.rule is None:
            continue
        value = user_settings[setting.name]
        rule = setting.rule(value)
        if rule is not None:
            hint = (
                f"Its default is {setting.default!r}; the settings reference of the "
                "documentation says more."
            )
            messages.append(
                Error(
                    f"PAGERO_OAUTH['{setting.name}'] must be {rule}, not {value!r}.",
                    hint=f"{setting.hint} {hint}".lstrip(),
                    id=f"django_pagero_oauth.{setting.check}",
                )
            )
    return messages


def check_unknown_keys(**kwargs: Any) -> list[CheckMessage]:
    """A misspelt key would silently fall back to its default: say so, and suggest the name."""
    unknown = sorted(str(key) for key in set(app_settings.user_settings) - set(DEFAULTS))
    if not unknown:
        return []
    suggestions = [
        f"{key!r} -> {match[0]!r}"
        for key in unknown
        if (match := difflib.get_close_matches(key.upper(), DEFAULTS, n=1, cutoff=0.6))
    ]
    hint = "Check the spelling against the settings reference of the documentation."
    if suggestions:
        hint = f"Did you mean {', '.join(suggestions)}? {hint}"
    return [
        Warning(
            f"Unknown PAGERO_OAUTH keys: {', '.join(unknown)}.",
            hint=hint,
            id="django_pagero_oauth.W001",
        )
    ]
