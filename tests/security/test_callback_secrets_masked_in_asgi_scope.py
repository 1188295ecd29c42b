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
