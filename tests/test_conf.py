"""Tests of ``conf.py``: one dict, read on every access, defaults never written back."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from django_pagero_oauth.conf import (
    DEFAULTS,
    GROUPS,
    SETTINGS,
    PageroOAuthSettings,
    app_settings,
)


@pytest.fixture
def pagero(settings: Any) -> Any:
    """Replace ``PAGERO_OAUTH`` for one test: ``pagero(KEY=value, ...)``."""

    def set_(**values: Any) -> None:
        settings.PAGERO_OAUTH = values

    return set_


def test_defaults_apply_when_nothing_is_set(pagero: Any) -> None:
    pagero()
    assert app_settings.AUTHORIZE_URL == "https://sso.pageroonline.com/oauth/v2/oauth-authorize"
    assert app_settings.TOKEN_URL == "https://sso.pageroonline.com/oauth/v2/oauth-token"
    assert app_settings.API_BASE_URL == "https://api.pageroonline.com"
    assert app_settings.REVOKE_URL == ""
    assert app_settings.SCOPE == "all"
    assert app_settings.CLIENT_AUTH_METHOD == "client_secret_basic"
    assert app_settings.PKCE is True  # RFC 9700 2.1.1
    assert app_settings.ISSUER == ""
    assert app_settings.TIMEOUT == 10.0
    assert app_settings.STATE_MAX_AGE == 600
    assert app_settings.MAX_PENDING_FLOWS == 5
    assert app_settings.REFRESH_TOKEN_LIFETIME_DAYS == 3 * 365
    assert app_settings.ENCRYPTION_KEYS == []
    assert app_settings.PROTECTED_PATHS == []


def test_every_setting_is_an_attribute_read_from_its_one_declaration() -> None:
    names = {name for name in dir(PageroOAuthSettings) if name.isupper()}
    assert names == set(DEFAULTS)
    for setting in SETTINGS:
        assert getattr(PageroOAuthSettings, setting.name) is setting
        getattr(app_settings, setting.name)  # none raises with the defaults


def test_every_setting_has_one_definition_with_a_description() -> None:
    """The settings reference in the docs is generated from SETTINGS: nothing may be missing."""
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))
    assert list(DEFAULTS) == names
    for setting in SETTINGS:
        assert DEFAULTS[setting.name] == setting.default
        assert setting.kind, setting.name
        assert setting.group in GROUPS, setting.name
        description = setting.description.strip()
        assert description.endswith("."), setting.name
        assert "\n\n" not in description, f"{setting.name}: one paragraph"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_the_declared_type_matches_the_default(setting: Any) -> None:
    expected = {str: "str", bool: "bool", int: "int", float: "float", list: "list"}
    declared = setting.kind.split(",")[0].split(" ")[0]
    assert declared == expected[type(setting.default)], setting.name


def test_reads_settings_on_every_access(settings: Any) -> None:
    settings.PAGERO_OAUTH = {"CLIENT_ID": "first"}
    assert app_settings.CLIENT_ID == "first"
    settings.PAGERO_OAUTH = {"CLIENT_ID": "second"}
    assert app_settings.CLIENT_ID == "second"
    with override_settings(PAGERO_OAUTH={"CLIENT_ID": "third"}):
        assert app_settings.CLIENT_ID == "third"
    assert app_settings.CLIENT_ID == "second"


def test_defaults_are_never_written_onto_django_settings(settings: Any) -> None:
    settings.PAGERO_OAUTH = {"CLIENT_ID": "x"}
    for name in DEFAULTS:
        getattr(app_settings, name)
    assert django_settings.PAGERO_OAUTH == {"CLIENT_ID": "x"}
    assert not hasattr(django_settings, "PAGERO_OAUTH_TOKEN_URL")


@pytest.mark.parametrize("value", [None, "not a dict", ["CLIENT_ID"]])
def test_a_missing_or_malformed_setting_reads_as_defaults(settings: Any, value: Any) -> None:
    settings.PAGERO_OAUTH = value
    assert app_settings.user_settings == {}
    assert app_settings.SCOPE == "all"


def test_no_pagero_setting_at_all(settings: Any) -> None:
    del settings.PAGERO_OAUTH
    assert app_settings.CLIENT_ID == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("all", "all"), (["openid", "all"], "openid all"), (("a",), "a"), ("", "")],
)
def test_scope_accepts_a_string_or_a_list(pagero: Any, value: Any, expected: str) -> None:
    pagero(SCOPE=value)
    assert expected == app_settings.SCOPE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("k1", ["k1"]),
        (b"k1", ["k1"]),
        (["k1", b"k2"], ["k1", "k2"]),
        (None, []),
        ([], []),
    ],
)
def test_encryption_keys_normalised_to_a_list_of_str(
    pagero: Any, value: Any, expected: list[str]
) -> None:
    pagero(ENCRYPTION_KEYS=value)
    assert expected == app_settings.ENCRYPTION_KEYS


@pytest.mark.parametrize(("value", "expected"), [(None, 10.0), (3, 3.0), ("2.5", 2.5)])
def test_timeout_is_never_none(pagero: Any, value: Any, expected: float) -> None:
    pagero(TIMEOUT=value)
    assert expected == app_settings.TIMEOUT


@pytest.mark.parametrize(("value", "expected"), [(0, 1), (-3, 1), (1, 1), (7, 7)])
def test_at_least_one_pending_flow(pagero: Any, value: int, expected: int) -> None:
    pagero(MAX_PENDING_FLOWS=value)
    assert expected == app_settings.MAX_PENDING_FLOWS


def test_login_redirect_url_falls_back_to_django(pagero: Any, settings: Any) -> None:
    settings.LOGIN_REDIRECT_URL = "/home/"
    pagero()
    assert app_settings.LOGIN_REDIRECT_URL == "/home/"
    pagero(LOGIN_REDIRECT_URL="/pagero-done/")
    assert app_settings.LOGIN_REDIRECT_URL == "/pagero-done/"


def test_protected_paths_accepts_one_string(pagero: Any) -> None:
    pagero(PROTECTED_PATHS=r"^/x/")
    assert list(app_settings.PROTECTED_PATHS) == [r"^/x/"]


@pytest.mark.parametrize("name", ["REVOKE_URL", "REDIRECT_URI", "ISSUER", "RESPONSE_HANDLER"])
def test_optional_strings_read_none_as_empty(pagero: Any, name: str) -> None:
    pagero(**{name: None})
    assert getattr(app_settings, name) == ""


def test_none_reads_as_the_default(pagero: Any) -> None:
    pagero(PKCE=None, STATE_MAX_AGE=None, SCOPE=None, SIGN_IN_USER_FACTORY="")
    assert app_settings.PKCE is True
    assert app_settings.STATE_MAX_AGE == 600
    assert app_settings.SCOPE == "all"
    assert DEFAULTS["SIGN_IN_USER_FACTORY"] == app_settings.SIGN_IN_USER_FACTORY


def test_booleans(pagero: Any) -> None:
    pagero(PKCE=1, ALLOW_MOCK_SERVER="yes")
    assert app_settings.PKCE is True
    assert app_settings.ALLOW_MOCK_SERVER is True


@pytest.mark.parametrize("value", [0, False])
def test_falsy_lists_read_as_empty(pagero: Any, value: Any) -> None:
    pagero(PROTECTED_PATHS=value, ENCRYPTION_KEYS=value, SCOPE=value)
    assert app_settings.PROTECTED_PATHS == []
    assert app_settings.ENCRYPTION_KEYS == []
    assert app_settings.SCOPE == ""
