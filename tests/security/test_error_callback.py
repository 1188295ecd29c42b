"""An OAuth error instead of a code (RFC 6749 4.1.2.1) (item 7).

The answer: the state is consumed, the page shows a generic message of ours (never the
attacker-controllable ``error_description``, never unescaped), status 400, nothing stored,
no token request.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Browser, token_count, with_query

SCRIPT = "<script>alert('pwned')</script>"
HUGE = "A" * 200_000

CASES = {
    "access_denied": ("access_denied", "The user denied the request."),
    "unknown error": ("totally_unknown_error", "something odd"),
    "huge description": ("access_denied", HUGE),
    "script in description": ("access_denied", SCRIPT),
    "script in error": (SCRIPT, SCRIPT),
    "html in error": ('"><img src=x onerror=alert(1)>', "<b>bold</b>"),
    "empty error": ("", "nothing"),
    "huge error": ("x" * 100_000, ""),
    "server_error": ("server_error", "javascript:alert(1)"),
}


def _assert_generic_error_page(response: Any, error: str, description: str) -> None:
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert response["Referrer-Policy"] == "no-referrer"
    content = response.content.decode()
    assert 'role="alert"' in content  # our message is there
    assert "<script>alert" not in content and "<img src=x" not in content
    if len(description) > 3:
        assert description not in content
        assert description[:40] not in content
    if len(error) > 12:
        assert error[:40] not in content
    assert len(content) < 10_000  # nothing of a huge parameter is echoed


@pytest.mark.parametrize(("error", "description"), list(CASES.values()), ids=list(CASES))
def test_error_callback_is_consumed_escaped_generic_400_and_stores_nothing(
    browser: Browser, pagero_mock: Any, error: str, description: str
) -> None:
    authorize_url = browser.start_login()
    valid_callback = browser.pagero_answer(authorize_url)  # a valid code for the same state
    error_callback = with_query(
        valid_callback, code=None, error=error, error_description=description
    )

    response = browser.callback(error_callback)

    _assert_generic_error_page(response, error, description)
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0
    assert browser.pending_states() == []
    # The state is gone: the valid code cannot be used with it afterwards.
    assert browser.callback(valid_callback).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


def test_error_and_code_together_is_an_error(browser: Browser, pagero_mock: Any) -> None:
    """A response carrying both is not a success: no exchange of the code."""
    callback_url = browser.pagero_answer(browser.start_login())
    response = browser.callback(with_query(callback_url, error="access_denied"))
    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


def test_denial_at_the_real_mock(browser: Browser, pagero_mock: Any) -> None:
    """The user presses "Deny" at (mock) Pagero: the real redirect back."""
    callback_url = browser.pagero_answer(browser.start_login(), action="deny")
    response = browser.callback(callback_url)
    _assert_generic_error_page(response, "access_denied", "The user denied the request.")
    assert b"cancelled or denied" in response.content  # the known error's own message
    assert token_count() == 0 and browser.pending_states() == []


def test_error_callback_without_a_state_is_rejected_as_such(
    browser: Browser, pagero_mock: Any
) -> None:
    """No state: the same 400, and a pending flow is not consumed by a stranger's error."""
    callback_url = browser.pagero_answer(browser.start_login())
    response = browser.callback(
        with_query(callback_url, code=None, state=None, error="access_denied")
    )
    assert response.status_code == 400
    assert len(browser.pending_states()) == 1
    assert browser.callback(callback_url).status_code == 302
