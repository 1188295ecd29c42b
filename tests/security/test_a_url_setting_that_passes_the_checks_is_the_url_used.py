"""A URL setting the system checks accept (E012 "an absolute http(s) URL", E002 https) is the
URL the app uses: the checks read it through ``urlsplit``, which strips surrounding whitespace
and control characters and removes tabs and newlines, while the app uses the raw string (a
value read from a secrets file or an environment variable often ends in one):

- ``AUTHORIZE_URL`` ending in a space: the checks pass, and every login is sent to
  ``.../oauth-authorize%20?...`` (a 404 at Pagero); a newline or a tab happens to work;
- ``ISSUER`` ending in a newline: the checks pass (E002 reads it the same way), and no
  callback's ``iss`` is ever equal to it (RFC 9207 exact comparison): every login is refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth import checks


def _errors() -> list[Any]:
    return [m for m in checks.run_configuration_checks() if m.is_serious()]


@pytest.mark.parametrize("dirt", [" "], ids=["space"])
def test_an_authorize_url_with_a_control_character_is_refused_or_works(
    dirt: str, user_client: Any, pagero_mock: Any, settings: Any
) -> None:
    url = settings.PAGERO_OAUTH["AUTHORIZE_URL"]
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "AUTHORIZE_URL": url + dirt}
    if _errors():
        return  # reported: fine
    user_client.raise_request_exception = False
    response = user_client.get("/pagero/login/")
    assert response.status_code == 302, (
        f"AUTHORIZE_URL {url + dirt!r} passes the system checks, and the login is a "
        f"{response.status_code}"
    )
    assert response["Location"].startswith(url + "?"), response["Location"]


def test_an_issuer_with_a_trailing_newline_is_refused_or_works(
    settings: Any, pagero_mock: Any, db: None
) -> None:
    issuer = settings.PAGERO_OAUTH.get("ISSUER") or pagero_mock.url
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ISSUER": issuer + "\n"}
    assert _errors(), (
        "ISSUER with a trailing newline passes the checks; no callback's iss ever equals it"
    )
