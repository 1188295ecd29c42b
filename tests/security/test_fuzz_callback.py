"""Property test of the callback: arbitrary query strings never cause a 5xx, never store a
token, and never reach Pagero's token endpoint unless they carry a state this session is
waiting for (and, ``ISSUER`` being set, the right ``iss``).

Query strings are built from raw bytes: known and unknown parameters, missing, empty,
repeated, overlong, percent-escapes that are not UTF-8, raw non-ASCII bytes, stray ``&``,
``=`` and ``;``, and (through placeholders resolved once the session exists) the session's
real pending states, slightly altered or not, and the real issuer. Each example has a fresh
session holding zero to three pending flows. Codes are never real, so no exchange can
succeed: every answer must be a 400.

``PAGERO_FUZZ_EXAMPLES`` sets the number of examples (default 300; CI: 10000).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from django.core.exceptions import TooManyFieldsSent
from django.http import QueryDict
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_pagero_oauth.flows import SESSION_KEY
from django_pagero_oauth.models import PageroToken

from .conftest import CALLBACK_PATH, LOGIN_PATH

EXAMPLES = int(os.environ.get("PAGERO_FUZZ_EXAMPLES", "300"))

KNOWN_KEYS = [
    "state",
    "code",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "next",
    "scope",
    "session_state",
    "code_verifier",
    "STATE",
    "state[]",
    "state ",
]


def _escape(raw: bytes) -> bytes:
    return quote_from_bytes(raw, safe="").encode("ascii")


def _non_utf8_escapes(raw: bytes) -> bytes:
    """Every byte percent-escaped, with a byte that starts no UTF-8 sequence mixed in."""
    return b"".join(b"%%%02X" % byte for byte in raw + b"\xff")


texts = st.text(max_size=40)
raw_values = st.one_of(
    texts.map(lambda t: _escape(t.encode("utf-8"))),  # properly escaped UTF-8
    texts.map(lambda t: t.encode("utf-8")),  # raw, unescaped (may hold & = # ; %)
    st.binary(max_size=40).map(_non_utf8_escapes),  # escapes that are not UTF-8
    st.binary(max_size=40),  # raw bytes, anything at all
    st.builds(
        lambda unit, n: unit * n,
        st.sampled_from([b"A", b"%", b"%FF", b"%25", b"\xc3\xa9", b"&", b"="]),
        st.integers(1_000, 20_000),
    ),  # overlong
    st.just(b""),
)
keys = st.one_of(
    st.sampled_from(KNOWN_KEYS).map(str.encode),
    st.sampled_from(KNOWN_KEYS).map(lambda k: _escape(k.encode())),
    raw_values,
)

#: How a placeholder alters the real value it stands for.
VARIANTS = {
    "exact": lambda s: s,
    "upper": lambda s: s.upper(),
    "truncated": lambda s: s[:-1],
    "with NUL": lambda s: s + "\x00",
    "with space": lambda s: s + " ",
    "with slash": lambda s: s + "/",
}


@dataclass(frozen=True)
class Real:
    """A placeholder: ``state`` = one of the session's pending states, or ``iss`` = the
    issuer, resolved when the example runs (what Hypothesis draws cannot depend on them)."""

    name: str
    index: int
    variant: str
    escaped: bool

    def resolve(self, pending: list[str], issuer: str) -> bytes:
        if self.name == "state":
            if not pending:
                return b"state="
            real = pending[self.index % len(pending)]
        else:
            real = issuer
        value = VARIANTS[self.variant](real).encode()
        return self.name.encode() + b"=" + (_escape(value) if self.escaped else value)


parts = st.one_of(
    st.builds(lambda k, v: k + b"=" + v, keys, raw_values),
    keys,  # a key without "="
    st.builds(lambda v: b"=" + v, raw_values),
    st.builds(
        Real,
        st.sampled_from(["state", "state", "iss"]),
        st.integers(0, 4),
        st.sampled_from(list(VARIANTS)),
        st.booleans(),
    ),
    st.sampled_from([b"code=" + b"c" * 43, b"error=access_denied", b"code=", b"state="]),
)


@pytest.fixture
def fuzz_client(user: Any) -> Client:
    """The user's browser. Answers are checked as the browser gets them: Django itself turns
    some inputs (e.g. more than DATA_UPLOAD_MAX_NUMBER_FIELDS parameters) into a 400."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _pending(client: Client) -> list[str]:
    flows = client.session.get(SESSION_KEY) or {}
    return list(flows) if isinstance(flows, dict) else []


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    new_flows=st.integers(0, 3),
    # Often start from what a real answer carries, so that the checks after the state (iss,
    # error, code) and the token request are reached, and the fuzz then adds to or repeats it.
    start=st.one_of(
        st.just([]),
        st.builds(
            lambda index, escaped, code: [
                Real("state", index, "exact", escaped),
                Real("iss", 0, "exact", escaped),
                *([b"code=" + b"c" * 43] if code else []),
            ],
            st.integers(0, 4),
            st.booleans(),
            st.booleans(),
        ),
    ),
    query=st.lists(parts, max_size=8),
    separator=st.sampled_from([b"&", b"&", b"&", b";", b"&&"]),
)
def test_arbitrary_callback_queries_fail_closed(
    fuzz_client: Client,
    pagero_mock: Any,
    new_flows: int,
    start: list[Any],
    query: list[Any],
    separator: bytes,
) -> None:
    client = fuzz_client
    session = client.session
    session.pop(SESSION_KEY, None)  # every example starts with no pending flow
    session.save()
    mock = pagero_mock.mock
    issuer = pagero_mock.url
    for _ in range(new_flows):
        assert client.get(LOGIN_PATH).status_code == 302
    pending = _pending(client)
    raw = separator.join(
        part.resolve(pending, issuer) if isinstance(part, Real) else part
        for part in [*start, *query]
    )
    before = mock.counts["authorization_code"]

    response = client.get(CALLBACK_PATH, QUERY_STRING=raw.decode("latin-1"))

    assert response.status_code == 400, response.status_code
    assert not PageroToken.objects.exists()
    requests_made = mock.counts["authorization_code"] - before
    try:
        params = QueryDict(raw)  # read the way the view reads it
    except TooManyFieldsSent:
        params = QueryDict()  # Django refuses to read it at all
    state, iss = params.get("state"), params.get("iss")
    valid_state = state in pending
    if requests_made:
        assert requests_made == 1
        assert valid_state, f"token request for state {state!r} (pending: {pending})"
        assert iss == issuer
        assert "error" not in params
    if valid_state:
        assert state not in _pending(client)  # consumed, whatever happened next
