"""The lines the mock's CLI prints (``cli.settings_block``) are Python that, pasted into
``settings.py``, gives the very credentials the mock was started with.

``json.dumps`` is used as a Python string literal; for a character outside the BMP it writes
a UTF-16 surrogate pair (``"\\ud83d\\ude00"``), which Python reads as two lone surrogates, not
the character: the pasted ``CLIENT_ID``/``CLIENT_SECRET`` then differ from the mock's and every
token request is ``invalid_client`` (answered as "Pagero unavailable").
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.testing.mock.cli import settings_block


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_the_printed_settings_give_the_mocks_credentials(field: str) -> None:
    value = "acme-\N{GRINNING FACE}-\N{LATIN SMALL LETTER E WITH ACUTE}"
    block = settings_block("http://127.0.0.1:8765", **{field: value})
    namespace: dict[str, Any] = {"PAGERO_OAUTH": {}}
    exec(block, namespace)  # noqa: S102 - what a pasted settings.py does
    assert namespace["PAGERO_OAUTH"][field.upper()] == value
