"""Tests of the pytest plugin: the fixtures do what their docstrings promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing import pytest_plugin
from django_pagero_oauth.testing.mock import Fault, MockPageroServer
from django_pagero_oauth.tokens import get_valid_token

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_registered_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("django_pagero_oauth") is pytest_plugin


def test_pagero_mock_points_the_settings_at_a_running_server(
    pagero_mock: MockPageroServer, settings: Any
) -> None:
    config = settings.PAGERO_OAUTH
    assert config["TOKEN_URL"] == pagero_mock.url + "/oauth/v2/oauth-token"
    assert config["AUTHORIZE_URL"] == pagero_mock.url + "/oauth/v2/oauth-authorize"
    assert config["REVOKE_URL"] == pagero_mock.url + "/oauth/v2/oauth-revoke"
    assert config["API_BASE_URL"] == pagero_mock.url + "/api"
    assert config["ISSUER"] == pagero_mock.url
    assert (config["CLIENT_ID"], config["CLIENT_SECRET"]) == (
        pagero_mock.mock.client_id,
        pagero_mock.mock.client_secret,
    )
    assert config["PROTECTED_PATHS"] == [r"^/protected-by-middleware/"]  # the project's own
    stats = requests.get(pagero_mock.url + "/_mock/stats", timeout=5)
    assert stats.status_code == 200


def test_pagero_mock_is_reset_for_every_test(pytester: pytest.Pytester, monkeypatch: Any) -> None:
    """Two tests in a fresh pytest run: what the first leaves behind, the second never sees."""
    pytester.makepyfile(
        """
        from django_pagero_oauth.testing.mock import Fault

        def test_first_dirties(pagero_mock):
            pagero_mock.mock.add_fault(Fault("token", status=503, times=5))
            pagero_mock.mock.issue_tokens()
            pagero_mock.mock.counts["refresh_token"] += 3
            pagero_mock.mock.expires_in = 5
            pagero_mock.mock.client_secret = "changed-by-a-test"

        def test_second_sees_a_clean_mock(pagero_mock, settings):
            mock = pagero_mock.mock
            assert mock.faults == []
            assert mock.issued_refresh_tokens == []
            assert sum(mock.counts.values()) == 0
            assert mock.expires_in == 600
            assert mock.client_secret != "changed-by-a-test"
            assert settings.PAGERO_OAUTH["TOKEN_URL"].startswith(pagero_mock.url)
        """
    )
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    # Without hypothesis's plugin, whose import alone takes seconds.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=2)


def test_token_factory_stores_a_token_the_mock_honours(
    pagero_token_factory: Any, pagero_mock: MockPageroServer, user: Any
) -> None:
    token = pagero_token_factory(user, publicid="acme")
    stored = PageroToken.objects.get(user=user)
    assert stored.pk == token.pk
    assert stored.publicid == "acme"
    assert pagero_mock.mock.is_access_token_valid(stored.access_token)
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
    assert not stored.access_token_needs_refresh()
    assert get_valid_token(user).access_token == stored.access_token
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_token_factory_expired_tokens_refresh_through_the_mock(
    pagero_token_factory: Any, pagero_mock: MockPageroServer, user: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    assert PageroToken.objects.get(pk=token.pk).is_access_token_expired()
    fresh = get_valid_token(user)
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert fresh.refresh_token != token.refresh_token
    assert pagero_mock.mock.is_refresh_token_valid(fresh.refresh_token)
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)


def test_token_factory_sets_extra_fields(
    pagero_token_factory: Any, user: Any, other_user: Any
) -> None:
    pagero_token_factory(user, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    assert PageroToken.objects.get(user=user).needs_reauthorization
    pagero_token_factory(other_user)
    assert PageroToken.objects.get(user=other_user).status == PageroToken.Status.ACTIVE


def test_faults_reach_the_code_through_the_fixture(
    pagero_token_factory: Any, pagero_mock: MockPageroServer, user: Any
) -> None:
    from django_pagero_oauth.exceptions import PageroUnavailable

    token = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault("token", status=503))
    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    assert PageroToken.objects.get(pk=token.pk).refresh_token == token.refresh_token
