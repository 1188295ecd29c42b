"""``manage.py pagero_check``: is this site's Pagero configuration right, and can it reach Pagero?

1. The configuration system checks (``django_pagero_oauth.E0xx/W0xx``), and whether the stored
   tokens decrypt with the configured keys.
2. The token endpoint, asked to exchange a made-up authorization code with this site's client
   authentication. A correctly configured client gets the OAuth error ``invalid_grant`` (the
   code is unknown); ``invalid_client`` means wrong credentials (RFC 6749 5.2).
3. The revocation endpoint (when ``REVOKE_URL`` is set), asked to revoke a made-up token: RFC 7009
   2.2 answers 200 for an unknown token, so only the client authentication is tested.
4. The login page and the API: reachable (any HTTP answer below 500).

Nothing is changed at Pagero: a made-up code or token matches nothing. Problems are reported in
plain words (DNS, refused connection, TLS, timeout, a redirect, an answer that is not JSON).

Exit codes: 0 all good, 1 an endpoint cannot be reached or answers wrongly, 2 the configuration
is invalid (including credentials that Pagero rejects).
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.checks import ERROR
from django.core.management.base import CommandParser
from django.db import router
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.debug import sensitive_variables

from ... import oauth, transport
from ...checks import check_stored_tokens_decrypt, run_configuration_checks
from ...conf import app_settings
from ...exceptions import (
    OAuthErrorResponse,
    PageroConfigurationError,
    PageroOAuthError,
    PageroUnavailable,
)
from ...models import PageroToken
from ...transport import Reply
from ._common import PageroCommand, SomeFailed, UsageError, format_check_message

#: ``redirect_uri`` sent with the made-up code when ``REDIRECT_URI`` is not set.
PLACEHOLDER_REDIRECT_URI = "https://pagero-check.invalid/callback"


@dataclass
class Result:
    ok: bool
    message: str
    configuration: bool = False  # a problem only a configuration change fixes


@dataclass(frozen=True)
class Answer(Reply):
    #: What the package makes of a non-200 answer (:func:`oauth.error_for`).
    error: PageroOAuthError | None = None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (requests -> urllib3 -> socket)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nested in (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ):
            if isinstance(nested, BaseException):
                todo.append(nested)


def describe_connection_error(exc: requests.RequestException, url: str) -> str:
    """A transport failure in plain words: DNS, refused, TLS, timeout."""
    split = urlsplit(url)
    values = {
        "host": split.hostname or "?",
        "port": split.port or (443 if split.scheme == "https" else 80),
        "timeout": app_settings.TIMEOUT,
        "error": type(exc).__name__,
    }
    causes = list(_causes(exc))
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            _(
                "TLS failed with %(host)s: the certificate could not be verified or the server "
                "does not speak TLS on port %(port)s. Check the URL (https, host, port) and the "
                "system's CA certificates."
            )
            % values
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return _("%(host)s did not answer in time (TIMEOUT is %(timeout)g s).") % values
    if any(
        isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError"
        for cause in causes
    ):
        return _("DNS: the host name %(host)s cannot be resolved. Check the URL.") % values
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return _("%(host)s refused the connection on port %(port)s.") % values
    return _("cannot connect to %(host)s:%(port)s (%(error)s).") % values


def describe_unavailable(exc: PageroUnavailable, url: str) -> str:
    """Why :func:`transport.post_form` got no answer, in plain words: from the transport error
    it keeps as ``__context__`` (it raises ``from None``)."""
    cause = exc.__context__
    if isinstance(cause, requests.RequestException):
        return describe_connection_error(cause, url)
    return _("the answer cannot be used (%(reason)s).") % {"reason": exc.description}


class Command(PageroCommand):
    requires_system_checks: list[str] = []  # it runs them itself (check_configuration)
    help = gettext_lazy(
        "Check the Pagero configuration and reach Pagero's endpoints. Exit codes: 0 all good, "
        "1 an endpoint problem, 2 a configuration problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        offline = _("Check the configuration only; do not contact Pagero.")
        parser.add_argument("--offline", action="store_true", help=offline)

    def handle(self, *args: Any, **options: Any) -> None:
        if not self.check_configuration():
            raise UsageError(_("The Pagero configuration is invalid; see above."))
        if options["offline"]:
            self.stdout.write(_("Configuration OK (endpoints not contacted)."), self.style.SUCCESS)
            return
        results = [
            self.show(_("token endpoint"), app_settings.TOKEN_URL, self.probe_token_endpoint()),
            self.show(
                _("revocation endpoint"), app_settings.REVOKE_URL, self.probe_revoke_endpoint()
            ),
            self.show(
                _("login page"), app_settings.AUTHORIZE_URL, self.probe_reachable("AUTHORIZE_URL")
            ),
            self.show(_("API"), app_settings.API_BASE_URL, self.probe_reachable("API_BASE_URL")),
        ]
        problems = [result for result in results if not result.ok]
        count = len(problems)
        if any(result.configuration for result in problems):
            raise UsageError(
                ngettext(
                    "Pagero rejects this configuration: %(count)d problem; see above.",
                    "Pagero rejects this configuration: %(count)d problems; see above.",
                    count,
                )
                % {"count": count}
            )
        if problems:
            raise SomeFailed(
                ngettext(
                    "%(count)d Pagero endpoint cannot be used; see above.",
                    "%(count)d Pagero endpoints cannot be used; see above.",
                    count,
                )
                % {"count": count}
            )
        self.stdout.write(_("All Pagero checks passed."), self.style.SUCCESS)

    def show(self, name: str, url: str, result: Result) -> Result:
        label = _("OK") if result.ok else _("FAIL")
        style = self.style.SUCCESS if result.ok else self.style.ERROR
        line = f"{label:4} {name} ({url or '-'}): {result.message}"
        (self.stdout if result.ok else self.stderr).write(line, style)
        return result

    def check_configuration(self) -> bool:
        problems = run_configuration_checks()
        if not any(message.level >= ERROR for message in problems):
            problems += check_stored_tokens_decrypt(databases=[router.db_for_read(PageroToken)])
        for message in problems:
            style = self.style.ERROR if message.level >= ERROR else self.style.WARNING
            self.stderr.write(format_check_message(message), style)
        ok = not any(message.level >= ERROR for message in problems)
        if ok:
            self.stdout.write(
                ngettext(
                    "OK   configuration (%(warnings)d warning)",
                    "OK   configuration (%(warnings)d warnings)",
                    len(problems),
                )
                % {"warnings": len(problems)},
                self.style.SUCCESS,
            )
        return ok

    @sensitive_variables()  # the client credentials
    def post(self, url: str, data: dict[str, str], *, what: str) -> Answer | Result:
        """POST ``data`` the way the app does (:func:`oauth.post`: client authentication, no
        ``.netrc``, no redirects, timeout, verified TLS, the 1 MiB cap) and read the answer as
        it does (:func:`oauth.error_for`: the same parsing and secret scrubbing)."""
        try:
            reply = oauth.post(url, data, what=what)
        except PageroUnavailable as exc:
            return Result(False, describe_unavailable(exc, url))
        error = oauth.error_for(reply, what, data) if reply.status != 200 else None
        return Answer(reply.status, reply.data, reply.headers, error)

    def _common_failure(self, answer: Answer, setting: str) -> Result | None:
        """Redirects, rejected credentials, 5xx/429 and non-JSON answers, the same for every
        OAuth endpoint."""
        if 300 <= answer.status < 400:
            target = urlsplit(answer.headers.get("Location", ""))
            return Result(
                False,
                _(
                    "answered with a redirect (HTTP %(status)d) to %(target)s: %(setting)s is "
                    "probably outdated (Pagero retired its legacy endpoints)."
                )
                % {
                    "status": answer.status,
                    "target": f"{target.scheme}://{target.netloc}{target.path}",
                    "setting": setting,
                },
            )
        if isinstance(answer.error, PageroConfigurationError):
            return Result(
                False,
                _(
                    "Pagero rejected the client credentials (invalid_client): CLIENT_ID or "
                    "CLIENT_SECRET is wrong, or the client is registered for another "
                    "CLIENT_AUTH_METHOD than %(method)s."
                )
                % {"method": app_settings.CLIENT_AUTH_METHOD},
                configuration=True,
            )
        if answer.status == 429 or answer.status >= 500:
            return Result(
                False,
                _("Pagero answered HTTP %(status)d: temporarily unavailable, try again later.")
                % {"status": answer.status},
            )
        if not isinstance(answer.data, dict):
            return Result(
                False,
                _(
                    "answered HTTP %(status)d with %(type)s, not an OAuth JSON error: "
                    "%(setting)s is probably not Pagero's endpoint."
                )
                % {
                    "status": answer.status,
                    "type": answer.headers.get("Content-Type", "").split(";")[0].strip()
                    or _("no content type"),
                    "setting": setting,
                },
            )
        return None

    @staticmethod
    def _unexpected(answer: Answer) -> Result:
        error = answer.error
        return Result(
            False,
            _("unexpected OAuth error %(error)s (HTTP %(status)d): %(description)s")
            % {
                "error": error.error if isinstance(error, OAuthErrorResponse) else "-",
                "status": answer.status,
                "description": error.description if isinstance(error, OAuthErrorResponse) else "",
            },
        )

    @sensitive_variables()  # the client credentials
    def probe_token_endpoint(self) -> Result:
        data = {
            "grant_type": "authorization_code",
            "code": "pagero-check-" + secrets.token_urlsafe(16),
            "redirect_uri": app_settings.REDIRECT_URI or PLACEHOLDER_REDIRECT_URI,
        }
        answer = self.post(app_settings.TOKEN_URL, data, what="check: token endpoint")
        if isinstance(answer, Result):
            return answer
        failure = self._common_failure(answer, "TOKEN_URL")
        if failure is not None:
            return failure
        error = answer.error.error if isinstance(answer.error, OAuthErrorResponse) else ""
        if error == "invalid_grant":
            return Result(
                True,
                _("the client credentials were accepted (a made-up code got invalid_grant)."),
            )
        if error in ("unauthorized_client", "unsupported_grant_type"):
            return Result(
                False,
                _("the client may not use the authorization code grant (%(error)s).")
                % {"error": error},
                configuration=True,
            )
        if answer.status == 200:
            return Result(
                False,
                _("answered HTTP 200 to a made-up code: this is not a standard token endpoint."),
            )
        return self._unexpected(answer)

    @sensitive_variables()  # the client credentials
    def probe_revoke_endpoint(self) -> Result:
        if not app_settings.REVOKE_URL:
            return Result(
                True,
                _("not configured: revoking a token only deletes it here (Pagero is not told)."),
            )
        data = {
            "token": "pagero-check-" + secrets.token_urlsafe(16),
            "token_type_hint": "refresh_token",
        }
        answer = self.post(app_settings.REVOKE_URL, data, what="check: revocation endpoint")
        if isinstance(answer, Result):
            return answer
        if answer.status == 200:
            return Result(True, _("the client credentials were accepted."))
        return self._common_failure(answer, "REVOKE_URL") or self._unexpected(answer)

    def probe_reachable(self, setting: str) -> Result:
        """GET the login page or the API: any answer below 500 will do. No credentials are
        sent (``.netrc``'s neither); the body is not read."""
        url = getattr(app_settings, setting)
        try:
            status = transport.status_of(url)
        except requests.RequestException as exc:
            return Result(False, describe_connection_error(exc, url))
        if status >= 500:
            return Result(
                False,
                _("answered HTTP %(status)d: temporarily unavailable, try again later.")
                % {"status": status},
            )
        return Result(True, _("reachable (HTTP %(status)d).") % {"status": status})
