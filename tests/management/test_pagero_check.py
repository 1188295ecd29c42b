"""``manage.py pagero_check`` against the real mock server and against broken endpoints."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model

from django_pagero_oauth.testing.mock import Fault

from .conftest import Outcome

COMMAND = "pagero_check"


@pytest.fixture
def configure(pagero_mock: Any, settings: Any, db: None) -> Callable[..., None]:
    """``configure(**values)``: change PAGERO_OAUTH on top of the mock's settings."""
    # A mock on loopback with DEBUG off is W005's case; here that is the point.
    settings.SILENCED_SYSTEM_CHECKS = ["django_pagero_oauth.W005"]

    def change(**values: Any) -> None:
        settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **values}

    return change


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_correct_configuration_passes(
    run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any
) -> None:
    result = run_command(COMMAND)
    assert result.code == 0, result
    assert "OK   configuration (0 warnings)" in result.out
    assert "OK   token endpoint" in result.out and "credentials were accepted" in result.out
    assert "OK   revocation endpoint" in result.out
    assert "OK   login page" in result.out and "OK   API" in result.out
    assert "All Pagero checks passed." in result.out
    mock = pagero_mock.mock
    assert mock.counts["authorization_code"] == 1 and mock.counts["revoke"] == 1
    assert mock.issued_refresh_tokens == []  # nothing was issued or changed


def test_wrong_credentials_are_a_configuration_error(
    run_command: Callable[..., Outcome], configure: Any, settings: Any
) -> None:
    configure(CLIENT_SECRET="not-the-secret")
    result = run_command(COMMAND)
    assert result.code == 2, result
    assert "FAIL token endpoint" in result.err and "FAIL revocation endpoint" in result.err
    assert "rejected the client credentials (invalid_client)" in result.err
    assert "not-the-secret" not in result.text


def test_client_secret_post_works_too(run_command: Callable[..., Outcome], configure: Any) -> None:
    configure(CLIENT_AUTH_METHOD="client_secret_post")
    assert run_command(COMMAND).code == 0


def test_no_revoke_url_is_reported_not_failed(
    run_command: Callable[..., Outcome], configure: Any
) -> None:
    configure(REVOKE_URL="")
    result = run_command(COMMAND)
    assert result.code == 0, result
    assert "revocation endpoint (-): not configured" in result.out


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            Fault("token", status=404, body="<html>Not found</html>", content_type="text/html"),
            "answered HTTP 404 with text/html, not an OAuth JSON error: TOKEN_URL",
        ),
        (
            Fault("token", status=200, body="<html>Welcome</html>", content_type="text/html"),
            "answered HTTP 200 with text/html, not an OAuth JSON error",
        ),
        (Fault("token", status=503), "HTTP 503: temporarily unavailable"),
        (
            Fault(
                "token",
                status=302,
                body="",
                headers=[("Location", "https://auth.pageroonline.com/oauth2/token?x=1")],
            ),
            "redirect (HTTP 302) to https://auth.pageroonline.com/oauth2/token: TOKEN_URL",
        ),
        (Fault("token", drop=True), "cannot connect to"),
        (Fault("revoke", status=503), "FAIL revocation endpoint"),
        (Fault("api", status=502), "FAIL API"),
    ],
)
def test_endpoint_problems_exit_1_in_plain_words(
    run_command: Callable[..., Outcome],
    configure: Any,
    pagero_mock: Any,
    fault: Fault,
    expected: str,
) -> None:
    pagero_mock.mock.add_fault(fault)
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert expected in result.err


def test_unauthorized_grant_is_a_configuration_error(
    run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any
) -> None:
    pagero_mock.mock.add_fault(Fault("token", status=400, body='{"error": "unauthorized_client"}'))
    result = run_command(COMMAND)
    assert result.code == 2, result
    assert "may not use the authorization code grant (unauthorized_client)" in result.err


def test_dns_failure(run_command: Callable[..., Outcome], configure: Any) -> None:
    configure(TOKEN_URL="https://pagero-check.invalid/oauth/v2/oauth-token")
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert "DNS: the host name pagero-check.invalid cannot be resolved" in result.err


def test_connection_refused(run_command: Callable[..., Outcome], configure: Any) -> None:
    port = closed_port()
    configure(TOKEN_URL=f"http://127.0.0.1:{port}/oauth/v2/oauth-token")
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert f"127.0.0.1 refused the connection on port {port}" in result.err


def test_tls_failure(run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any) -> None:
    configure(TOKEN_URL=pagero_mock.url.replace("http://", "https://") + "/oauth/v2/oauth-token")
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert "TLS failed with 127.0.0.1" in result.err


def test_timeout(run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any) -> None:
    configure(TIMEOUT=0.2)
    pagero_mock.mock.add_fault(Fault("token", delay=5))
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert "did not answer in time (TIMEOUT is 0.2 s)" in result.err


def test_configuration_errors_exit_2_without_contacting_pagero(
    run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any
) -> None:
    configure(CLIENT_ID="", CLIENT_SECERT="typo")
    result = run_command(COMMAND)
    assert result.code == 2, result
    assert "ERROR django_pagero_oauth.E001: PAGERO_OAUTH['CLIENT_ID'] is not set." in result.err
    assert "WARNING django_pagero_oauth.W001" in result.err and "HINT:" in result.err
    assert pagero_mock.mock.counts.total() == 0


def test_undecryptable_stored_tokens_are_counted_as_a_warning(
    run_command: Callable[..., Outcome], configure: Any, pagero_token_factory: Any
) -> None:
    """A lost key means "connect again" for those users: reported with how many, exit code as
    for any other warning (0 when the endpoints are fine)."""
    for name in ("old1", "old2"):
        pagero_token_factory(get_user_model().objects.create_user(name, password="pw"))
    configure(ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
    pagero_token_factory(get_user_model().objects.create_user("new", password="pw"))
    result = run_command(COMMAND)
    assert result.code == 0, result
    assert (
        "WARNING django_pagero_oauth.W003: 2 stored Pagero token(s) in database 'default' "
        "cannot be decrypted" in result.err
    )
    assert "OK   configuration (1 warning)" in result.out


def test_offline_checks_only_the_configuration(
    run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any
) -> None:
    result = run_command(COMMAND, "--offline")
    assert result.code == 0, result
    assert "endpoints not contacted" in result.out
    assert pagero_mock.mock.counts.total() == 0


def test_exit_codes_from_the_command_line(
    run_cli: Callable[..., Outcome], pagero_mock: Any, settings: Any
) -> None:
    assert run_cli(COMMAND).code == 0
    pagero_mock.mock.add_fault(Fault("api", status=503))
    assert run_cli(COMMAND).code == 1
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_SECRET": "wrong"}
    assert run_cli(COMMAND).code == 2
    assert run_cli(COMMAND, "--no-such-option").code == 2


# --- the probes use the package's own HTTP path (oauth.post, transport) ---------------------


def test_a_netrc_entry_does_not_replace_the_client_credentials(
    run_command: Callable[..., Outcome],
    configure: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests puts ~/.netrc credentials for the host in place of the Basic header unless the
    # request has an explicit auth, as transport's requests have.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    configure(CLIENT_AUTH_METHOD="client_secret_basic")
    result = run_command(COMMAND)
    assert result.code == 0, result
    assert "credentials were accepted" in result.out


def test_an_echoed_secret_is_scrubbed_from_the_report(
    run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any, settings: Any
) -> None:
    secret = settings.PAGERO_OAUTH["CLIENT_SECRET"]
    body = f'{{"error": "invalid_request", "error_description": "bad client secret {secret}"}}'
    pagero_mock.mock.add_fault(Fault("token", status=400, body=body))
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert "unexpected OAuth error invalid_request (HTTP 400): bad client secret" in result.err
    assert "[redacted]" in result.err and secret not in result.text


def test_an_answer_over_the_size_cap_is_not_read(
    run_command: Callable[..., Outcome], configure: Any, pagero_mock: Any
) -> None:
    body = '{"error": "invalid_grant", "padding": "' + "x" * (1024 * 1024) + '"}'
    pagero_mock.mock.add_fault(Fault("token", status=400, body=body))
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert "FAIL token endpoint" in result.err and "larger than 1 MiB" in result.err
