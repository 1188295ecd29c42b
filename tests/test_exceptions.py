"""The exception hierarchy (django_pagero_oauth.exceptions) is a contract: these pin it."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from django_pagero_oauth.exceptions import (
    SERVICE_ERRORS,
    PageroConfigurationError,
    PageroOAuthError,
    PageroUnavailable,
    TokenLockTimeout,
)


def test_a_configuration_error_is_not_pagero_unavailable() -> None:
    # "Try again later" code (Celery retries, back-off loops) must not swallow a broken setup.
    assert not issubclass(PageroConfigurationError, PageroUnavailable)
    assert issubclass(PageroConfigurationError, PageroOAuthError)
    assert issubclass(PageroConfigurationError, ImproperlyConfigured)
    assert PageroConfigurationError("x").retry_after is None


def test_service_errors_are_both_kinds_of_kept_token_failure() -> None:
    assert set(SERVICE_ERRORS) == {PageroUnavailable, PageroConfigurationError}
    assert issubclass(TokenLockTimeout, PageroUnavailable)
