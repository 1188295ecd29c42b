"""System checks of :mod:`django_pagero_oauth.checks`: every id fires when it should, with a
hint, and stays quiet on a correct configuration."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.core.checks import INFO, Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from django_pagero_oauth import checks, guard
from django_pagero_oauth.backends import PageroModelBackend
from django_pagero_oauth.checks import deployment, keys, values, wiring
from django_pagero_oauth.conf import DEFAULTS, SETTINGS
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.models import PageroToken

GOOD_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_pagero_oauth.middleware.PageroTokenMiddleware",
]


class ProjectAuthenticationMiddleware(AuthenticationMiddleware):
    """A project's own subclass: it counts as AuthenticationMiddleware."""


def ids(messages: list[Any]) -> list[str]:
    for message in messages:
        assert message.hint, f"{message.id} has no hint"
        assert message.id.startswith("django_pagero_oauth.")
    return [message.id for message in messages]


@pytest.fixture
def pagero(settings: Any) -> Callable[..., None]:
    """``pagero(**values)``: set PAGERO_OAUTH keys (``None`` removes one)."""

    def configure(**values: Any) -> None:
        current = dict(settings.PAGERO_OAUTH)
        for key, value in values.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        settings.PAGERO_OAUTH = current

    return configure


def test_the_test_settings_pass_every_check(db: None, settings: Any) -> None:
    # db: from Django 6.1 on, checks run against every database by default (W003 reads rows).
    settings.AUTHENTICATION_BACKENDS = [wiring.PRELOADING_BACKEND]  # the README's settings
    assert run_checks(tags=[checks.APP]) == []


# --- I001: the fast path (PageroModelBackend) ------------------------------------------------


def _urlconf(*views: Any) -> ModuleType:
    from django.urls import path

    module = ModuleType("urlconf_for_i001")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path(f"view-{index}/", view) for index, view in enumerate(views)
    ]
    return module


def _plain_view(request: Any) -> Any:
    raise NotImplementedError


def _i001(settings: Any, *, middleware: bool, views: tuple[Any, ...]) -> list[Any]:
    if not middleware:
        settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != wiring.OUR_MIDDLEWARE]
    settings.ROOT_URLCONF = _urlconf(*views)
    return wiring.check_preloading_backend()


def test_i001_middleware_without_the_preloading_backend(settings: Any, db: None) -> None:
    # db: from Django 6.1 on, run_checks() also runs the database checks (W003 reads rows).
    [message] = _i001(settings, middleware=True, views=(_plain_view,))
    assert message.id == "django_pagero_oauth.I001"
    assert message.level == INFO
    assert "PageroTokenMiddleware" in message.msg
    assert "one extra SQL query" in message.msg
    assert "django_pagero_oauth.backends.PageroModelBackend" in message.hint
    assert message in run_checks(tags=[checks.APP])  # registered


@pytest.fixture
def no_guards_applied(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """A process whose views have applied no front end of the guard yet."""
    saved = set(guard.GUARDS_APPLIED)
    guard.GUARDS_APPLIED.clear()
    yield guard.GUARDS_APPLIED
    guard.GUARDS_APPLIED.clear()
    guard.GUARDS_APPLIED.update(saved)


def _import_afresh(monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    """Import module ``name`` as a site's first import of it would (the copy loaded before is
    put back afterwards)."""
    package_name, _dot, attribute = name.rpartition(".")
    monkeypatch.setattr(sys.modules[package_name], attribute, sys.modules[name])
    monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(name)


@pytest.mark.parametrize("kind", ["decorator", "async decorator", "mixin", "async mixin", "drf"])
def test_i001_guarded_views_without_the_preloading_backend(
    settings: Any, monkeypatch: pytest.MonkeyPatch, no_guards_applied: set[str], kind: str
) -> None:
    from tests import views
    from tests.contrib import drf_views

    async def async_view(request: Any) -> Any:
        raise NotImplementedError

    no_guards_applied.clear()  # what importing the test views applied
    assert _i001(settings, middleware=False, views=(_plain_view,)) == []
    if kind == "drf":  # importing HasPageroToken is what counts
        _import_afresh(monkeypatch, "django_pagero_oauth.contrib.rest_framework")
    view = {
        "decorator": lambda: pagero_token_required(_plain_view),
        "async decorator": lambda: pagero_token_required(async_view),
        "mixin": views.ProtectedView.as_view,
        "async mixin": views.ProtectedAsyncView.as_view,
        "drf": drf_views.TokenView.as_view,
    }[kind]()
    [message] = _i001(settings, middleware=False, views=(_plain_view, view))
    assert message.id == "django_pagero_oauth.I001"
    assert "views (decorator, mixin or HasPageroToken)" in message.msg


def test_i001_silent_without_guards(settings: Any, no_guards_applied: set[str]) -> None:
    from tests.contrib import drf_views

    no_guards_applied.clear()  # what importing the test views applied
    unguarded = (_plain_view, drf_views.APIView.as_view())
    assert _i001(settings, middleware=False, views=unguarded) == []


def test_i001_loads_the_urlconf_to_find_guarded_views(
    settings: Any, monkeypatch: pytest.MonkeyPatch, no_guards_applied: set[str]
) -> None:
    """The views a URLconf imports apply their guards as the check loads it."""
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != wiring.OUR_MIDDLEWARE]
    monkeypatch.delitem(sys.modules, "tests.urls_i001", raising=False)
    settings.ROOT_URLCONF = "tests.urls_i001"
    [message] = wiring.check_preloading_backend()
    assert "views (decorator, mixin or HasPageroToken)" in message.msg


@pytest.mark.parametrize(
    "backends",
    [
        [wiring.PRELOADING_BACKEND],
        ["django.contrib.auth.backends.ModelBackend", wiring.PRELOADING_BACKEND],
        ["tests.test_checks.PreloadingSubclass"],
    ],
)
def test_i001_silent_with_the_preloading_backend(settings: Any, backends: list[str]) -> None:
    from tests import views

    settings.AUTHENTICATION_BACKENDS = backends
    assert _i001(settings, middleware=True, views=(views.protected,)) == []


class PreloadingSubclass(PageroModelBackend):
    pass


def test_every_check_is_registered_with_the_app_tag() -> None:
    from django.core.checks.registry import registry

    registered = {check for check in registry.get_checks() if checks.APP in check.tags}
    assert set(checks.CONFIGURATION_CHECKS) <= registered
    assert keys.check_stored_tokens_decrypt in registered


def test_every_id_is_documented_once() -> None:
    """Each id a site can be shown has one meaning: one row of the table in the docs."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "operations.rst").read_text()
    rows = re.findall(r"^``([EWI]\d{3})``  \S", page, re.MULTILINE)
    assert len(rows) == len(set(rows))
    sources = "".join(path.read_text() for path in (root / "django_pagero_oauth").rglob("*.py"))
    used = set(re.findall(r"django_pagero_oauth\.([EWI]\d{3})", sources))
    used |= {setting.check for setting in SETTINGS}
    assert used and used <= set(rows)


def test_settings_not_a_dict(settings: Any) -> None:
    settings.PAGERO_OAUTH = [("CLIENT_ID", "x")]
    assert "django_pagero_oauth.E008" in ids(values.check_settings_type())


@pytest.mark.parametrize("key", ["CLIENT_ID", "CLIENT_SECRET"])
@pytest.mark.parametrize("value", [None, "", 0])
def test_missing_credentials(pagero: Callable[..., None], key: str, value: Any) -> None:
    pagero(**{key: value})  # None removes the key
    messages = values.check_credentials()
    assert ids(messages) == ["django_pagero_oauth.E001"]
    assert key in messages[0].msg


@pytest.mark.parametrize(
    "url",
    ["http://sso.pageroonline.com/oauth/v2/oauth-token", "http://10.0.0.5/token"],
)
def test_http_endpoint_without_debug(pagero: Callable[..., None], settings: Any, url: str) -> None:
    settings.DEBUG = False
    pagero(TOKEN_URL=url)
    messages = deployment.check_https()
    assert ids(messages) == ["django_pagero_oauth.E002"]
    assert isinstance(messages[0], Error) and "TOKEN_URL" in messages[0].msg


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765/t", "http://localhost/t", "http://[::1]:80/t", "https://x/t"]
)
def test_loopback_http_and_https_are_fine_without_debug(
    pagero: Callable[..., None], settings: Any, url: str
) -> None:
    settings.DEBUG = False
    pagero(TOKEN_URL=url, AUTHORIZE_URL=url, REVOKE_URL=url, API_BASE_URL=url)
    assert deployment.check_https() == []


def test_http_is_fine_with_debug(pagero: Callable[..., None], settings: Any) -> None:
    settings.DEBUG = True
    pagero(TOKEN_URL="http://sso.example.com/token")
    assert deployment.check_https() == []


@pytest.mark.parametrize("url", ["sso.pageroonline.com/oauth", "ftp://x/y", "https://", ""])
def test_invalid_endpoint_url(pagero: Callable[..., None], url: str) -> None:
    pagero(API_BASE_URL=url)
    messages = values.check_setting_values()
    assert ids(messages) == ["django_pagero_oauth.E012"]
    assert "API_BASE_URL" in messages[0].msg


def test_empty_revoke_url_is_allowed(pagero: Callable[..., None]) -> None:
    pagero(REVOKE_URL="")
    assert values.check_setting_values() == []
    pagero(REVOKE_URL="not a url")
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E012"]


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("django.contrib.sessions.middleware.SessionMiddleware", ["django_pagero_oauth.E004"]),
        (
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            ["django_pagero_oauth.E004"],
        ),
    ],
)
def test_sessions_or_auth_middleware_missing(
    settings: Any, missing: str, expected: list[str]
) -> None:
    settings.MIDDLEWARE = [m for m in GOOD_MIDDLEWARE if m != missing]
    messages = wiring.check_middleware()
    assert ids(messages) == expected
    assert missing in messages[0].msg


def test_our_middleware_before_authentication(settings: Any) -> None:
    settings.MIDDLEWARE = [GOOD_MIDDLEWARE[0], GOOD_MIDDLEWARE[2], GOOD_MIDDLEWARE[1]]
    assert ids(wiring.check_middleware()) == ["django_pagero_oauth.E003"]


def test_a_subclass_of_authentication_middleware_counts(settings: Any) -> None:
    settings.MIDDLEWARE = [
        GOOD_MIDDLEWARE[0],
        "tests.test_checks.ProjectAuthenticationMiddleware",
        GOOD_MIDDLEWARE[2],
    ]
    assert wiring.check_middleware() == []
    settings.MIDDLEWARE = list(reversed(settings.MIDDLEWARE))
    assert "django_pagero_oauth.E003" in ids(wiring.check_middleware())


def test_protected_paths_without_our_middleware(settings: Any, pagero: Callable[..., None]) -> None:
    settings.MIDDLEWARE = GOOD_MIDDLEWARE[:2]
    pagero(PROTECTED_PATHS=[r"^/invoices/"])
    messages = wiring.check_middleware()
    assert ids(messages) == ["django_pagero_oauth.W002"]
    assert isinstance(messages[0], Warning)
    pagero(PROTECTED_PATHS=[])
    assert wiring.check_middleware() == []


@pytest.mark.parametrize("value", [False, 0, ""])
def test_pkce_off_is_a_security_warning(pagero: Callable[..., None], value: Any) -> None:
    """PKCE is the default (RFC 9700 2.1.1); turning it off works, with a warning (W004)."""
    pagero(PKCE=value)
    messages = deployment.check_pkce()
    assert ids(messages) == ["django_pagero_oauth.W004"]
    assert isinstance(messages[0], Warning)
    assert "django_pagero_oauth.W004" in [m.id for m in run_checks(tags=["security"])]
    pagero(PKCE=None)  # the default
    assert deployment.check_pkce() == []
    pagero(PKCE=True)
    assert deployment.check_pkce() == []


@pytest.mark.parametrize("leeway", [600, 601, -1, "soon", None, 10**6])
def test_refresh_leeway_not_below_the_token_lifetime(
    pagero: Callable[..., None], settings: Any, leeway: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_LEEWAY": leeway}
    messages = values.check_setting_values()
    assert ids(messages) == ["django_pagero_oauth.E005"]
    assert repr(leeway) in messages[0].msg


@pytest.mark.parametrize("leeway", [0, 60, 599, "60", 59.5])
def test_refresh_leeway_accepted(pagero: Callable[..., None], leeway: Any) -> None:
    pagero(REFRESH_LEEWAY=leeway)
    assert values.check_setting_values() == []


def test_client_auth_method(pagero: Callable[..., None]) -> None:
    pagero(CLIENT_AUTH_METHOD="client_secret_jwt")
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E006"]
    pagero(CLIENT_AUTH_METHOD="client_secret_post")
    assert values.check_setting_values() == []


@pytest.mark.parametrize("timeout", [0, -1, None, "never", float("nan"), float("inf"), 301, True])
def test_timeout(settings: Any, timeout: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": timeout}
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E011"]


@pytest.mark.parametrize(
    ("retries", "cap"),
    [(-1, 10), (11, 10), (1.5, 10), ("2", 10), (True, 10), (2, -1), (2, "10"),
     (2, float("nan")), (2, float("inf"))],
)  # fmt: skip
def test_api_retries(pagero: Callable[..., None], retries: Any, cap: Any) -> None:
    pagero(API_RETRIES=retries, API_RETRY_AFTER_MAX=cap)
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E017"]


@pytest.mark.parametrize(("retries", "cap"), [(0, 0), (3, 10), (10, 2.5), (2.0, 60)])
def test_api_retries_accepted(pagero: Callable[..., None], retries: Any, cap: Any) -> None:
    pagero(API_RETRIES=retries, API_RETRY_AFTER_MAX=cap)
    assert values.check_setting_values() == []


@pytest.mark.parametrize("days", [0, -5, "forever", 3651, 10**7, float("inf"), True, 1.5])
def test_refresh_token_lifetime_days(pagero: Callable[..., None], days: Any) -> None:
    pagero(REFRESH_TOKEN_LIFETIME_DAYS=days)
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E013"]


def test_unknown_keys_suggest_the_setting_meant(pagero: Callable[..., None]) -> None:
    pagero(CLIENT_SECERT="x", REFRESH_LEAWAY=30, SOMETHING_ELSE=1)
    messages = values.check_unknown_keys()
    assert ids(messages) == ["django_pagero_oauth.W001"]
    assert isinstance(messages[0], Warning)
    assert "CLIENT_SECERT, REFRESH_LEAWAY, SOMETHING_ELSE" in messages[0].msg
    assert "'CLIENT_SECERT' -> 'CLIENT_SECRET'" in str(messages[0].hint)
    assert "'REFRESH_LEAWAY' -> 'REFRESH_LEEWAY'" in str(messages[0].hint)


def test_mock_server_allowed_without_debug(pagero: Callable[..., None], settings: Any) -> None:
    pagero(ALLOW_MOCK_SERVER=True)
    settings.DEBUG = False
    assert ids(deployment.check_mock_server()) == ["django_pagero_oauth.E007"]
    settings.DEBUG = True
    assert deployment.check_mock_server() == []


@pytest.mark.parametrize("keys", [["not-a-fernet-key"], 42, [Fernet.generate_key().decode(), ""]])
def test_invalid_encryption_keys(pagero: Callable[..., None], keys: Any) -> None:
    pagero(ENCRYPTION_KEYS=keys)
    assert ids(checks.keys.check_encryption_keys()) == ["django_pagero_oauth.E009"]


def test_valid_encryption_keys(pagero: Callable[..., None]) -> None:
    pagero(ENCRYPTION_KEYS=[Fernet.generate_key().decode(), Fernet.generate_key()])
    assert checks.keys.check_encryption_keys() == []


def test_all_configuration_checks_run_through_manage_py_check(
    pagero: Callable[..., None],
    db: None,  # from Django 6.1 on, checks run against every database by default
) -> None:
    pagero(CLIENT_SECRET=None)
    with pytest.raises(SystemCheckError, match=r"django_pagero_oauth\.E001"):
        call_command("check", "--tag", checks.APP)


# --- stored tokens: W003, only with --database ---------------------------------------------


def make_token(user: Any, expires_in_seconds: int) -> PageroToken:
    now = timezone.now()
    return PageroToken.objects.create(
        user=user,
        access_token="a" * 40,
        refresh_token="r" * 40,
        id_token="i" * 40,
        access_token_issued_at=now,
        access_token_expires_at=now + timedelta(seconds=expires_in_seconds),
        refresh_token_expires_at=now + timedelta(days=1000),
    )


def test_undecryptable_rows_are_found_with_database(
    pagero: Callable[..., None], user: Any, other_user: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    pagero(ENCRYPTION_KEYS=[old])
    make_token(user, 10)  # written with the old key, longest ago
    pagero(ENCRYPTION_KEYS=[new, old])
    make_token(other_user, 600)  # written with the new key
    assert keys.check_stored_tokens_decrypt(databases=["default"]) == []
    assert keys.check_stored_tokens_decrypt(databases=None) == []

    pagero(ENCRYPTION_KEYS=[new])  # the old key was dropped too early
    messages = keys.check_stored_tokens_decrypt(databases=["default"])
    assert ids(messages) == ["django_pagero_oauth.W003"]
    assert messages[0].msg.startswith("1 stored Pagero token(s) in database 'default' cannot")
    assert "pagero_prune_tokens --undecryptable" in messages[0].hint
    assert keys.check_stored_tokens_decrypt(databases=None) == []  # needs --database
    out = StringIO()
    call_command("check", "--database", "default", stderr=out, stdout=out)  # a warning
    assert "django_pagero_oauth.W003" in out.getvalue()


def test_undecryptable_check_is_cheap(
    pagero: Callable[..., None], django_assert_num_queries: Any, db: None
) -> None:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"cheap{i}") for i in range(30)]
    )
    for index, user in enumerate(users):
        make_token(user, 600 + index)
    with django_assert_num_queries(1):
        assert keys.check_stored_tokens_decrypt(databases=["default"]) == []


def test_decrypt_check_skips_when_keys_are_invalid(pagero: Callable[..., None], user: Any) -> None:
    make_token(user, 600)
    pagero(ENCRYPTION_KEYS=["broken"])
    assert keys.check_stored_tokens_decrypt(databases=["default"]) == []  # E009 says it


# --- OpenID Connect and "Sign in with Pagero" ----------------------------------------------


def test_openid_in_scope_without_issuer(pagero: Callable[..., None]) -> None:
    pagero(SCOPE="all openid", ISSUER=None)
    messages = wiring.check_openid()
    assert ids(messages) == ["django_pagero_oauth.E014"]
    assert isinstance(messages[0], Error) and "SCOPE" in messages[0].msg
    pagero(ISSUER="https://sso.pageroonline.com")
    assert wiring.check_openid() == []


def test_sign_in_enabled_without_issuer(pagero: Callable[..., None]) -> None:
    pagero(SIGN_IN_ENABLED=True, ISSUER=None)
    messages = wiring.check_openid()
    assert ids(messages) == ["django_pagero_oauth.E014"]
    assert "SIGN_IN_ENABLED" in messages[0].msg
    pagero(SIGN_IN_ENABLED=False)
    assert wiring.check_openid() == []


@pytest.mark.parametrize("url", ["http://keys.example/jwks", "http://10.0.0.5/jwks"])
def test_jwks_url_must_be_https_without_debug(
    pagero: Callable[..., None], settings: Any, url: str
) -> None:
    settings.DEBUG = False
    pagero(JWKS_URL=url)
    messages = deployment.check_https()
    assert ids(messages) == ["django_pagero_oauth.E002"] and "JWKS_URL" in messages[0].msg
    pagero(JWKS_URL="not a url")
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E012"]
    pagero(JWKS_URL="")  # empty: discovered from ISSUER
    assert values.check_setting_values() == [] and deployment.check_https() == []


def test_sign_in_needs_a_backend_that_loads_users(
    pagero: Callable[..., None], settings: Any
) -> None:
    pagero(ISSUER="https://sso.pageroonline.com", SIGN_IN_ENABLED=True)
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend"]
    assert wiring.check_openid() == []  # RemoteUserBackend is a ModelBackend
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.BaseBackend"]
    messages = wiring.check_openid()
    assert ids(messages) == ["django_pagero_oauth.E015"]
    pagero(SIGN_IN_ENABLED=False)  # ISSUER alone (RFC 9207 for connecting) needs no backend
    assert wiring.check_openid() == []
    pagero(SIGN_IN_ENABLED=True)
    settings.AUTHENTICATION_BACKENDS = ["django_pagero_oauth.backends.PageroModelBackend"]
    assert wiring.check_openid() == []


def test_user_factory_must_import_when_users_are_created(pagero: Callable[..., None]) -> None:
    pagero(
        ISSUER="https://sso.pageroonline.com",
        SIGN_IN_ENABLED=True,
        SIGN_IN_CREATE_USERS=True,
        SIGN_IN_USER_FACTORY="nowhere.make_user",
    )
    assert ids(wiring.check_openid()) == ["django_pagero_oauth.E016"]
    pagero(SIGN_IN_ENABLED=False)  # no sign-in, no users created
    assert wiring.check_openid() == []
    pagero(SIGN_IN_ENABLED=True, SIGN_IN_CREATE_USERS=False)
    assert wiring.check_openid() == []
    pagero(SIGN_IN_CREATE_USERS=True, SIGN_IN_USER_FACTORY=None)
    assert wiring.check_openid() == []  # the default factory


# --- E018 and the keys with a check of their own: every setting's value is validated ------

#: A wrong value of every setting (the test below fails when a setting is added without one).
BAD_VALUES: dict[str, Any] = {
    "CLIENT_ID": 12345,
    "CLIENT_SECRET": ["a", "list"],
    "CLIENT_AUTH_METHOD": "client_secret_jwt",
    "AUTHORIZE_URL": "sso.pageroonline.com/oauth",
    "TOKEN_URL": 5,
    "REVOKE_URL": "ftp://pagero.example/revoke",
    "API_BASE_URL": "/relative",
    "REDIRECT_URI": 42,
    "SCOPE": ["all", 3],
    "ISSUER": ["https://issuer.example"],
    "PKCE": "false",
    "REVOKE_REPLACED_TOKEN": "no",
    "TIMEOUT": "abc",
    "API_RETRIES": -1,
    "API_RETRY_AFTER_MAX": "soon",
    "ENCRYPTION_KEYS": ["not-a-fernet-key"],
    "REFRESH_LEEWAY": 600,
    "REFRESH_FAILURE_BACKOFF": -1,
    "REFRESH_TOKEN_LIFETIME_DAYS": 0,
    "LOGIN_REDIRECT_URL": 7,
    "STATE_MAX_AGE": "abc",
    "MAX_PENDING_FLOWS": -3,
    "PROTECTED_PATHS": ["^/ok/", "(unclosed"],
    "UNAVAILABLE_RETRY_AFTER": 1.5,
    "RESPONSE_HANDLER": "no.such.module.handler",
    "JWKS_URL": "not a url",
    "JWKS_CACHE_SECONDS": -5,
    "JWKS_REFETCH_INTERVAL": "60",
    "ID_TOKEN_LEEWAY": True,
    "SIGN_IN_ENABLED": "yes",
    "SIGN_IN_CREATE_USERS": 1,
    "SIGN_IN_USER_FACTORY": 42,
    "ALLOW_MOCK_SERVER": "false",
}


def test_every_setting_has_a_wrong_value_here() -> None:
    assert set(BAD_VALUES) == set(DEFAULTS)


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_a_wrong_value_of_every_setting_is_an_error_naming_it(key: str, settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, key: BAD_VALUES[key]}
    errors = [
        message
        for message in checks.run_configuration_checks()
        if isinstance(message, Error) and f"PAGERO_OAUTH['{key}']" in message.msg
    ]
    assert errors, f"a wrong {key} passes the checks"
    ids(errors)  # each with a hint


@pytest.mark.parametrize(
    ("key", "value"),
    [("STATE_MAX_AGE", "abc"), ("MAX_PENDING_FLOWS", -3), ("JWKS_CACHE_SECONDS", -5)],
)
def test_e018_names_the_key_the_rule_and_the_value(key: str, value: Any, pagero: Any) -> None:
    pagero(**{key: value})
    (error,) = [m for m in checks.run_configuration_checks() if m.id == "django_pagero_oauth.E018"]
    assert error.msg.startswith(f"PAGERO_OAUTH['{key}'] must be a whole number, at least ")
    assert error.msg.endswith(f"not {value!r}.")
    assert repr(DEFAULTS[key]) in error.hint


@pytest.mark.parametrize(
    "key",
    ["REFRESH_FAILURE_BACKOFF", "STATE_MAX_AGE", "UNAVAILABLE_RETRY_AFTER", "JWKS_CACHE_SECONDS"],
)
def test_e018_refuses_a_duration_that_would_overflow(key: str, pagero: Any) -> None:
    pagero(**{key: 10**12})
    (error,) = [m for m in checks.run_configuration_checks() if m.id == "django_pagero_oauth.E018"]
    assert "at most 86400" in error.msg


def test_e018_passes_the_defaults_and_the_accepted_forms(pagero: Any) -> None:
    pagero(**{setting.name: setting.default for setting in SETTINGS if setting.default is not None})
    pagero(
        SCOPE=("openid", "all"),
        PROTECTED_PATHS=r"^/x/",
        REVOKE_URL="",
        RESPONSE_HANDLER="django_pagero_oauth.guard.default_response",
        STATE_MAX_AGE=1,
        REFRESH_FAILURE_BACKOFF=0,
    )
    assert values.check_setting_values() == []


def test_every_setting_is_validated_by_a_rule_or_a_check_of_its_own() -> None:
    page = Path(__file__).resolve().parents[1] / "docs" / "operations.rst"
    documented = set(re.findall(r"^``([EWI]\d{3})``", page.read_text(), re.MULTILINE))
    for setting in SETTINGS:
        assert setting.check in documented, setting.name
        assert setting.rule is not None or setting.check != "E018", setting.name


def test_w005_flags_loopback_endpoints_without_debug(settings: Any) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TOKEN_URL": "http://[::1]:8765/token"}
    (message,) = deployment.check_mock_in_production()
    assert message.id == "django_pagero_oauth.W005" and isinstance(message, Warning)
    assert "TOKEN_URL is on a loopback address" in message.msg
    settings.DEBUG = True
    assert deployment.check_mock_in_production() == []


def test_w005_flags_the_mocks_credentials_without_debug(settings: Any) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {
        **{key: f"https://pagero.example/{key.lower()}" for key in deployment.URL_SETTINGS},
        "ISSUER": "https://pagero.example",
        "CLIENT_ID": "site",
        "CLIENT_SECRET": "mock-client-secret",
    }
    (message,) = deployment.check_mock_in_production()
    assert "CLIENT_SECRET is the mock's" in message.msg
    settings.PAGERO_OAUTH["CLIENT_SECRET"] = "s3cret"
    assert deployment.check_mock_in_production() == []


def test_w005_can_be_silenced_also_for_the_management_commands(settings: Any) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TOKEN_URL": "http://127.0.0.1:1/token"}
    assert "django_pagero_oauth.W005" in ids(checks.run_configuration_checks())
    settings.SILENCED_SYSTEM_CHECKS = ["django_pagero_oauth.W005"]
    assert "django_pagero_oauth.W005" not in ids(checks.run_configuration_checks())


def test_e002_covers_a_plain_http_redirect_uri(settings: Any) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REDIRECT_URI": "http://shop.example/cb/"}
    assert "PAGERO_OAUTH['REDIRECT_URI']" in " ".join(m.msg for m in deployment.check_https())
    settings.PAGERO_OAUTH["REDIRECT_URI"] = "http://127.0.0.1:8000/cb/"
    assert deployment.check_https() == []


@pytest.mark.parametrize("dirt", [" ", "\n", "\t", "\r", "\x00", "\x7f"])
def test_a_url_with_a_blank_or_control_character_is_refused(
    pagero: Callable[..., None], dirt: str
) -> None:
    url = "https://sso.pageroonline.com/oauth/v2/oauth-token"
    pagero(TOKEN_URL=url + dirt)
    assert ids(values.check_setting_values()) == ["django_pagero_oauth.E012"]
    pagero(TOKEN_URL=url, REDIRECT_URI="https://site.example/cb/" + dirt, ISSUER=dirt + url)
    assert ids(values.check_setting_values()) == [
        "django_pagero_oauth.E018",
        "django_pagero_oauth.E018",
    ]
