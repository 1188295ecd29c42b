"""What this proves: under ASGI, the callback's authorization code and state are masked in the
ASGI scope's ``query_string`` too, not only in ``request.GET`` and ``request.META``.

Error trackers (Sentry's ASGI integration, for one) read the request's URL from the scope's
``query_string`` bytes; ``flows.hide_callback_secrets`` rewrites them with the same masked
query string it puts in ``QUERY_STRING``. (Suspected by the second security review, (a).)
"""

from __future__ import annotations

from django.test import AsyncRequestFactory

from django_pagero_oauth.flows import MASK, hide_callback_secrets

CODE = "a-single-use-authorization-code"
STATE = "the-state-of-this-login-flow"


def test_the_asgi_scope_query_string_is_masked() -> None:
    request = AsyncRequestFactory().get(
        "/pagero/callback/", {"code": CODE, "state": STATE, "iss": "https://pagero.example"}
    )
    # As a server hands it over (the ASGI spec: bytes).
    request.scope["query_string"] = request.META["QUERY_STRING"].encode()
    assert CODE.encode() in request.scope["query_string"]

    hide_callback_secrets(request)

    query = request.scope["query_string"]
    assert isinstance(query, bytes)
    assert CODE.encode() not in query and STATE.encode() not in query
    assert MASK.encode() in query and b"iss=" in query
    assert query.decode() == request.META["QUERY_STRING"]


def test_a_secret_that_contains_the_other_is_masked_whole() -> None:
    """The longer secret is masked first: masking the code inside a state that contains it
    would leave the rest of the state in the server's copy of the request line."""
    code = "abcdefgh-the-code"
    state = f"{code}-and-the-rest-of-the-state"
    request = AsyncRequestFactory().get("/pagero/callback/", {"code": code, "state": state})
    # A proxy's copy with the parameters in another order: not the raw query string.
    request.META["HTTP_X_ORIGINAL_URI"] = f"/pagero/callback/?state={state}&code={code}"

    hide_callback_secrets(request)

    assert request.META["HTTP_X_ORIGINAL_URI"] == f"/pagero/callback/?state={MASK}&code={MASK}"


def test_a_secret_repeated_by_another_parameter_is_masked_in_the_query_string_too() -> None:
    code = "a-single-use-authorization-code"
    request = AsyncRequestFactory().get("/pagero/callback/", {"code": code, "echo": code})
    request.scope["query_string"] = request.META["QUERY_STRING"].encode()

    hide_callback_secrets(request)

    assert code not in request.META["QUERY_STRING"]
    assert request.scope["query_string"] == request.META["QUERY_STRING"].encode()
