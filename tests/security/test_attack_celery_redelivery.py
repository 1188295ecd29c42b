"""Attack (robustness): a keep-alive chunk of an ``--all`` run refreshes its tokens again when it is
delivered twice.

``refresh_pagero_token_chunk`` is ``acks_late``: a chunk whose worker died after refreshing (or
a broker that redelivers after a visibility timeout, or two overlapping beat runs) runs again.
The module says that this is harmless because the chunk "re-applies the selection" and a token
refreshed meanwhile "no longer expires soon, so it is skipped". With ``within_days=None`` (the
command's ``--all``, documented for ``refresh_pagero_tokens``) the selection is every active
token: nothing is skipped, and every token of the chunk is spent at Pagero a second time
(the forced refresh only dedupes callers that read the *same* stale access token).

Impact: each redundant refresh is one more single-use refresh token exchanged for nothing; a
lost answer to any of them kills that user's connection (PAGERO_OAUTH.md), and an attacker who
can cause redeliveries (killing workers, broker timeouts) doubles the refresh traffic of every
``--all`` run. Severity: low.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth import get_user_model

from django_pagero_oauth.contrib.celery import refresh_pagero_token_chunk
from django_pagero_oauth.models import PageroToken


@pytest.fixture
def celery_app() -> Iterator[Celery]:
    app = Celery("pagero-attack-tests", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend="cache+memory://",
        task_always_eager=True,
        task_eager_propagates=False,
    )
    app.set_current()
    app.set_default()
    try:
        yield app
    finally:
        app.close()


def test_a_redelivered_all_chunk_does_not_refresh_its_tokens_again(
    celery_app: Celery, user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    users = [user] + [get_user_model().objects.create_user(f"u{i}", password="pw") for i in (1, 2)]
    pks = [pagero_token_factory(each).pk for each in users]
    assert refresh_pagero_token_chunk.delay(pks, None).get() == {"refreshed": 3}
    first = {pk: PageroToken.objects.get(pk=pk).refresh_token for pk in pks}
    # The same message again (acks_late redelivery, or an overlapping --all run's chunk).
    refresh_pagero_token_chunk.delay(pks, None).get()
    assert pagero_mock.mock.counts["refresh_token"] == 3, "tokens were refreshed twice"
    assert {pk: PageroToken.objects.get(pk=pk).refresh_token for pk in pks} == first
