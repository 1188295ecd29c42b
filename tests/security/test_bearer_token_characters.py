"""Only a bearer token (RFC 6750 2.1's ``b64token``) is ever put in the header, and an exception
from below the API client never carries the header in its message.

A token endpoint (or a proxy) that answers with an access token followed by a newline, or
holding a blank, NUL or non-ASCII character, made ``http.client`` raise
``ValueError("Invalid header value b'Bearer <token>\\n'")``: the whole token in the exception
value of Django's error report. What this proves:

- such an access token is never stored: a rotated answer keeps its new refresh token, drops the
  access token (the refresh is reported as ``PageroUnavailable``) and the report of the failed
  API call shows no secret; an answer without a new refresh token then holds nothing usable:
  it is refused and changes nothing;
- a token stored before this rule (already in the database) still leaves no trace in the report:
  an exception that is not a ``requests`` one keeps its class but not its message;
- the same with the async client: h11's ``LocalProtocolError`` ("Illegal header value
  b'Bearer ...'") keeps its class but not its message, and an exception that holds the header
  in an attribute (``UnicodeEncodeError.object``) leaves with nothing of it.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth import aclient, get_client
from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token

from .conftest import backoff_passed, token_snapshot
from .test_error_reports import all_secrets, assert_clean, async_get, raised_by, render

LEAKED = "eyJhbGciOiJSUzI1NiJ9.eyJwdWJsaWNpZCI6ImFjbWUifQ.c2VjcmV0LXNpZ25hdHVyZS0xMjM0NTY3ODkw"


def test_api_call_with_a_token_the_header_refuses_shows_no_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    mock = pagero_mock.mock
    mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", fields={"access_token": LEAKED + "\n"})
    )
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert isinstance(report.exc, PageroUnavailable)
    assert_clean(report, all_secrets(pagero_mock, LEAKED))
    assert mock.counts["api"] == 0
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == mock.issued_refresh_tokens[-1]  # kept, and it works:
    backoff_passed()
    assert get_client(user).get("v1/me").status_code == 200


@pytest.mark.parametrize(
    "bad",
    [LEAKED + "\n", "abc def", "abc\u0000", "abcdé"],
    ids=["newline", "space", "NUL", "non-ASCII"],
)
def test_an_answer_without_a_new_refresh_token_and_a_bad_access_token_changes_nothing(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, bad: str
) -> None:
    token = pagero_token_factory(user, expired=True)
    before = token_snapshot(token.pk)
    pagero_mock.mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            omit_refresh_token=True,
            fields={"access_token": bad},
        )
    )
    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    assert token_snapshot(token.pk) == before


def test_a_stored_token_the_header_refuses_leaves_no_trace_in_the_report(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user, access_token=LEAKED + "\n")  # written before the rule existed
    report = render(raised_by(lambda: get_client(user).get("v1/me")))
    assert type(report.exc) is ValueError
    assert_clean(report, all_secrets(pagero_mock, LEAKED))
    assert pagero_mock.mock.counts["api"] == 0


@pytest.mark.parametrize("bad", [LEAKED + "\n", LEAKED + "\u0000"], ids=["newline", "NUL"])
def test_a_stored_token_the_header_refuses_leaves_no_trace_in_the_async_report(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, bad: str
) -> None:
    """The async client: h11's ``LocalProtocolError`` ("Illegal header value b'Bearer ...'")
    keeps its class but not its message; nothing else of the exception carries the token."""
    pagero_token_factory(user, access_token=bad)  # written before the rule existed
    report = render(raised_by(async_get(user)))
    assert_clean(report, all_secrets(pagero_mock, LEAKED))
    assert LEAKED not in repr(vars(report.exc)) and LEAKED not in repr(report.exc.args)
    assert pagero_mock.mock.counts["api"] == 0


def test_an_exception_that_holds_the_header_in_an_attribute_leaves_it_behind() -> None:
    """``UnicodeEncodeError.object`` is the whole string being encoded (a header value with a
    lone surrogate): what leaves the async client keeps nothing of it."""
    header = f"Bearer {LEAKED}\ud800"
    try:
        header.encode()
    except UnicodeEncodeError as exc:
        fresh = aclient._detached(exc)
    assert isinstance(fresh, Exception) and "UnicodeEncodeError" in str(fresh)
    assert LEAKED not in repr(vars(fresh)) + repr(fresh.args) + repr(getattr(fresh, "object", ""))
    assert fresh.__traceback__ is None and fresh.__context__ is None
