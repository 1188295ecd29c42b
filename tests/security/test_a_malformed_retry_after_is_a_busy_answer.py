"""A malformed ``Retry-After`` on a busy API answer is a busy answer, not an exception.

With ``API_RETRIES`` on, a 429/502/503/504 from the API whose ``Retry-After`` is neither
delay-seconds nor an HTTP-date (RFC 9110 10.2.3) is treated as one without the header: retried
after the back-off, or returned to the caller as it came. What this proves, for both clients:

- ``Retry-After: ²`` (one latin-1 byte, 0xB2; ``str.isdigit()`` is true for it and for other
  Unicode digits that ``float()`` refuses) raises nothing;
- the sync client never reaches urllib3's own parser, which raises
  ``requests.exceptions.InvalidHeader`` for ``soon``, ``-1`` or ``1.5``: both clients' retry
  decision (``apirules.ApiRules.retry_wait``) reads the header through
  ``oauth.retry_after_seconds`` only.

So neither the API nor anything that shapes its busy answers (a gateway) can turn a retryable
answer into an exception that no caller expects from ``get``.

The token endpoint's busy answers are read by the same parser (``transport.retry_after_seconds``):
a refresh answered 503 with such a header is "Pagero is unavailable" (the protected page's
503), not a ``ValueError`` (a 500).
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.testing.mock import Fault
from tests.test_api_retries import busy, call_async, call_sync

pytestmark = pytest.mark.django_db(transaction=True)

VALUES = ["\u00b2", "soon", "-1", "1.5"]
IDS = ["superscript", "word", "negative", "float"]


@pytest.mark.parametrize("value", VALUES, ids=IDS)
@pytest.mark.parametrize("call", [call_sync, call_async], ids=["sync", "async"])
def test_a_malformed_retry_after_is_a_busy_answer_not_an_exception(
    call: Any, value: str, user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "API_RETRIES": 2, "API_RETRY_AFTER_MAX": 5}
    busy(pagero_mock, 503, retry_after=value)  # one busy answer, then the API works again

    status = call(user, "GET", "v1/me")  # must not raise

    assert status == 200  # retried after the back-off, as without the header
    assert pagero_mock.mock.counts["api"] == 2


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_a_malformed_retry_after_at_the_token_endpoint_is_pagero_unavailable(
    value: str, user: Any, client: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user, expired=True)
    client.force_login(user)
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", status=503, headers=[("Retry-After", value)])
    )

    response = client.get("/protected/")  # the refresh is answered 503: must not raise

    assert response.status_code == 503
    assert response["Retry-After"].isdigit()  # the site's own UNAVAILABLE_RETRY_AFTER
