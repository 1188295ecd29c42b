"""The one mapping from exceptions to words (django_pagero_oauth.explain), by the reason each
exception class carries (django_pagero_oauth.exceptions)."""

from __future__ import annotations

import pytest
from django.utils import translation

from django_pagero_oauth.exceptions import (
    CallbackError,
    IdentityRefused,
    IdTokenError,
    InvalidTokenResponse,
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroUnavailable,
    TokenDecryptionError,
    TokenGone,
    TokenLockTimeout,
    UndecryptableToken,
    nearest_reason,
)
from django_pagero_oauth.explain import (
    Place,
    explain,
    explain_authorization_error,
    is_warning,
    status_for,
)

EVERY_REASON = {
    "error",
    "refused",
    "unavailable",
    "invalid_response",
    "configuration",
    "reauthorization_required",
    "gone",
    "callback",
    "undecryptable",
    "id_token",
    "identity_refused",
}


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (UndecryptableToken(), "undecryptable"),  # also a PageroAuthorizationRequired
        (TokenDecryptionError(), "undecryptable"),
        (TokenGone(), "gone"),  # also a PageroAuthorizationRequired
        (PageroAuthorizationRequired(), "reauthorization_required"),
        (IdentityRefused(error="identity_taken"), "identity_refused"),
        (IdTokenError(), "id_token"),
        (CallbackError(), "callback"),
        (PageroConfigurationError(), "configuration"),
        (InvalidTokenResponse(), "invalid_response"),  # also a PageroUnavailable
        (TokenLockTimeout(), "unavailable"),
        (PageroUnavailable(), "unavailable"),
        (OAuthErrorResponse(error="invalid_request"), "refused"),
        (RuntimeError(), "error"),
    ],
)
def test_each_exception_class_carries_its_reason(exc: BaseException, reason: str) -> None:
    assert getattr(exc, "reason", "error") == reason
    assert nearest_reason(exc, EVERY_REASON) == reason


@pytest.mark.parametrize(
    ("exc", "known", "nearest"),
    [
        (InvalidTokenResponse(), {"unavailable", "error"}, "unavailable"),
        (TokenGone(), {"reauthorization_required"}, "reauthorization_required"),
        (UndecryptableToken(), {"reauthorization_required"}, "reauthorization_required"),
        (UndecryptableToken(), {"undecryptable", "reauthorization_required"}, "undecryptable"),
        (OAuthErrorResponse(), {"unavailable"}, "error"),
        (KeyError("x"), {"unavailable"}, "error"),
    ],
)
def test_a_reason_not_known_falls_back_along_the_classes_it_derives_from(
    exc: BaseException, known: set[str], nearest: str
) -> None:
    assert nearest_reason(exc, known) == nearest


def test_only_the_apps_exceptions_have_a_reason() -> None:
    """A foreign exception's own ``reason`` (ssl.SSLError, URLError) sorts nothing."""

    class Foreign(Exception):
        reason = "unavailable"

    assert nearest_reason(Foreign(), EVERY_REASON) == "error"


def test_the_callback_page_words_and_statuses() -> None:
    cases = {
        IdTokenError(): (400, "could not be verified"),
        PageroConfigurationError(): (503, "misconfigured"),
        InvalidTokenResponse(): (502, "cannot be used"),
        PageroUnavailable(): (503, "not reachable"),
        OAuthErrorResponse(): (400, "did not accept this login"),
        IdentityRefused(error="inactive_user"): (403, "is disabled"),
        IdentityRefused(error="something_new"): (403, "already linked to another user"),
    }
    for exc, (status, words) in cases.items():
        assert status_for(Place.LOGIN, exc) == status
        assert words in explain(Place.LOGIN, exc), exc


def test_values_come_from_the_exception_and_the_caller() -> None:
    text = explain(
        Place.ADMIN_REVOKE, PageroUnavailable(status_code=503), user="ann", fingerprint="ab12"
    )
    assert (
        text
        == "ann (ab12): kept, Pagero could not confirm the revocation (HTTP 503). Try again later."
    )
    assert is_warning(Place.ADMIN_REVOKE, PageroUnavailable())
    assert not is_warning(Place.ADMIN_REVOKE, PageroConfigurationError())
    refused = OAuthErrorResponse(error="unsupported_token_type")
    assert "(unsupported_token_type)" in explain(
        Place.ADMIN_REVOKE, refused, user="ann", fingerprint="ab12"
    )
    assert explain(Place.COMMAND_REFRESH, KeyError("x")) == "unexpected error: KeyError"


@pytest.mark.parametrize(
    "error",
    ["call +46 70 123 45 67 at once", "<b>evil</b>", "visit https://phish.example", "x" * 500],
)
def test_an_error_code_the_server_chose_is_shown_only_when_it_is_a_known_one(error: str) -> None:
    """The admin's "refused the revocation (%(error)s)": Pagero (or anything answering in its
    place) chooses ``error``; an unknown one is shown as a generic word, never verbatim."""
    text = explain(
        Place.ADMIN_REVOKE, OAuthErrorResponse(error=error), user="ann", fingerprint="ab12"
    )
    assert error not in text
    assert text == "ann (ab12): kept, Pagero refused the revocation (an unknown error)."
    with translation.override("sv"):
        swedish = explain(
            Place.ADMIN_REVOKE, OAuthErrorResponse(error=error), user="ann", fingerprint="ab12"
        )
    assert "an unknown error" not in swedish and error not in swedish


def test_plurals_and_swedish() -> None:
    exc = PageroConfigurationError()
    one = explain(Place.ADMIN_REFRESH, exc, user="ann", fingerprint="ab12", skipped=1)
    two = explain(Place.ADMIN_REFRESH, exc, user="ann", fingerprint="ab12", skipped=2)
    assert "1 more token was not tried" in one and "2 more tokens were not tried" in two
    with translation.override("sv"):
        swedish = [
            explain(Place.LOGIN, exc),
            explain(Place.DISCONNECT, PageroUnavailable()),
            explain(Place.COMMAND_REFRESH, exc),
            explain(Place.ADMIN_REFRESH, exc, user="a", fingerprint="b", skipped=2),
            explain(Place.LOGIN, IdentityRefused(error="unknown_identity")),
            explain_authorization_error("access_denied"),
        ]
    english = [
        explain(Place.LOGIN, exc),
        explain(Place.DISCONNECT, PageroUnavailable()),
        explain(Place.COMMAND_REFRESH, exc),
        explain(Place.ADMIN_REFRESH, exc, user="a", fingerprint="b", skipped=2),
        explain(Place.LOGIN, IdentityRefused(error="unknown_identity")),
        explain_authorization_error("access_denied"),
    ]
    assert all(s != e for s, e in zip(swedish, english, strict=True)), swedish


def test_every_place_answers_every_failure_its_callers_catch() -> None:
    # What each caller catches (views, admin, commands): none may find no words.
    caught = {
        Place.LOGIN: [
            IdTokenError(),
            OAuthErrorResponse(),
            PageroConfigurationError(),
            InvalidTokenResponse(),
            PageroUnavailable(),
        ],
        Place.DISCONNECT: [
            UndecryptableToken(),
            PageroUnavailable(),
            OAuthErrorResponse(),
            PageroConfigurationError(),
        ],
        Place.ADMIN_REFRESH: [
            UndecryptableToken(),
            TokenGone(),
            PageroAuthorizationRequired(),
            PageroConfigurationError(),
            PageroUnavailable(),
            TokenLockTimeout(),
            InvalidTokenResponse(),
        ],
        Place.ADMIN_REVOKE: [
            UndecryptableToken(),
            OAuthErrorResponse(),
            PageroConfigurationError(),
            PageroUnavailable(),
        ],
        Place.COMMAND_REFRESH: [
            UndecryptableToken(),
            TokenGone(),
            PageroAuthorizationRequired(),
            PageroConfigurationError(),
            PageroUnavailable(),
            ValueError(),
        ],
    }
    for place, failures in caught.items():
        for exc in failures:
            assert explain(place, exc, user="u", fingerprint="f", skipped=0), (place, exc)
