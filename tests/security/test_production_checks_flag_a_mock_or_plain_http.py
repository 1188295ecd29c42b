"""With ``DEBUG`` off, the system checks flag a site that talks to Pagero insecurely.

- ``PAGERO_OAUTH |= mock_settings("http://127.0.0.1:8765")`` (the lines the mock's CLI prints,
  "development only" in prose) pasted into a production settings file: no error, no warning.
  The loopback exemption of E002 ("a local mock") lets every endpoint be plain http on
  127.0.0.1, and E007 only looks at ``ALLOW_MOCK_SERVER``, which ``mock_settings`` does not
  set. The site then trusts whatever process listens on 127.0.0.1:8765 as Pagero (any local
  user or container on the host can bind it): it sends it the client secret, takes its
  ``id_token``s as Pagero's (sign-in: log in as the user linked to any identity it names).
  The well-known mock credentials (``mock-client-secret``) go unnoticed as well.
- ``REDIRECT_URI = "http://site.example/..."``: the authorization code (and the state) are
  delivered over plain HTTP; E002 checks the endpoints and ``ISSUER`` but not this URL.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks as django_checks

from django_pagero_oauth.testing import mock_settings


def _our_messages() -> list[Any]:
    messages = django_checks.run_checks(include_deployment_checks=True)
    return [m for m in messages if m.id and m.id.startswith("django_pagero_oauth.")]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:8765"])
def test_a_production_site_pointed_at_the_mock_is_flagged(
    url: str, settings: Any, db: None
) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH} | mock_settings(url)
    settings.PAGERO_OAUTH["REDIRECT_URI"] = "https://shop.example/pagero/callback/"
    assert [m for m in _our_messages() if m.level >= django_checks.WARNING], (
        "DEBUG off, every Pagero endpoint a plain-http mock on loopback with the mock's "
        "published client secret, and the system checks say nothing"
    )


def test_a_plain_http_redirect_uri_is_flagged_in_production(settings: Any, db: None) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "REDIRECT_URI": "http://shop.example/pagero/callback/",
    }
    assert any(m.level >= django_checks.WARNING for m in _our_messages()), (
        "the code travels over plain http to a non-loopback REDIRECT_URI without a warning"
    )
