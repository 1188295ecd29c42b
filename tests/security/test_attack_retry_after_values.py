"""Attack: an odd ``Retry-After`` on a busy API answer crashes the API client (``API_RETRIES``).

With ``API_RETRIES`` on, a 429/502/503/504 from the API whose ``Retry-After`` is neither
delay-seconds nor an HTTP-date should be answered like any busy answer (retried after the
back-off, or returned to the caller): RFC 9110 10.2.3 says nothing forces a client to obey a
malformed header, and SECURITY.rst item 37 promises only that a long wait is not made.

- ``client.retry_after_seconds`` trusts ``str.isdigit()``, which is true for superscript and
  other Unicode digits that ``float()`` refuses: ``Retry-After: ²`` (one latin-1 byte, 0xB2)
  raises ``ValueError`` out of both clients (in the sync one from inside urllib3's
  ``Retry.increment``, with its message withheld).
- The sync client leaves ``respect_retry_after_header`` to urllib3, whose own parser raises
  ``requests.exceptions.InvalidHeader`` for ``soon``, ``-1`` or ``1.5``, where the async client
  (and ``retry_after_seconds``) simply fall back to the back-off.

So the API (or anything that can shape its busy answers, e.g. a gateway in front of it) turns a
retryable answer into an exception that no caller expects from ``get``: a job or a view that
handles ``response.status_code`` fails instead (a 500). No token is involved.

Severity: low (robustness; availability of callers when the opt-in retries are on).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_api_retries import busy, call_async, call_sync, retries  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("call", "value"),
    [
        (call_sync, "\u00b2"),
        (call_async, "\u00b2"),
        (call_sync, "soon"),
        (call_sync, "-1"),
        (call_sync, "1.5"),
    ],
    ids=["sync-superscript", "async-superscript", "sync-word", "sync-negative", "sync-float"],
)
def test_a_malformed_retry_after_is_a_busy_answer_not_an_exception(
    call: Any, value: str, user: Any, pagero_mock: Any, pagero_token_factory: Any, retries: Any
) -> None:
    pagero_token_factory(user)
    retries(2, 5)
    busy(pagero_mock, 503, retry_after=value)  # one busy answer, then the API works again

    status = call(user, "GET", "v1/me")  # must not raise

    assert status in (200, 503)
