"""What the ``pagero_*`` management commands share: exit codes, the configuration preflight,
and progress output that only a terminal sees.

Exit codes, for cron jobs and CI: 0 all good, 1 some items failed (try again later, or look at
them), 2 usage or configuration error (nothing will work until a person fixes it).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.checks import ERROR, CheckMessage
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

EXIT_FAILED = 1
EXIT_CONFIGURATION = 2


class UsageError(CommandError):
    """A wrong option or a broken configuration: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=EXIT_CONFIGURATION)


class SomeFailed(CommandError):
    """The command ran, but some items failed: exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, returncode=EXIT_FAILED)


def format_check_message(message: CheckMessage) -> str:
    """``ERROR django_pagero_oauth.E001: ... HINT: ...`` on one line."""
    level = _("ERROR") if message.level >= ERROR else _("WARNING")
    text = f"{level} {message.id}: {message.msg}"
    if message.hint:
        hint = _("HINT:")
        text += f" {hint} {message.hint}"
    return text


class PageroCommand(BaseCommand):
    """A command whose class-level ``help`` is lazy, resolved when the parser is built (an
    eager ``gettext`` at import would freeze it in the language active then)."""

    help: str | Promise = ""  # type: ignore[assignment]

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = str(self.help) if self.help else None
        return parser


def preflight(command: BaseCommand) -> None:
    """Raise :class:`UsageError` (exit 2) when the configuration cannot work; print warnings."""
    from ...checks import run_configuration_checks

    problems = run_configuration_checks()
    errors = [message for message in problems if message.level >= ERROR]
    for message in problems:
        if message.level < ERROR:
            command.stderr.write(format_check_message(message), command.style.WARNING)
    if errors:
        raise UsageError(
            _("The Pagero configuration is invalid:")
            + "".join(f"\n  {format_check_message(message)}" for message in errors)
        )


class Progress:
    """``\\r 120/2000`` on a terminal, at most ten times a second; nothing when not a TTY."""

    def __init__(self, out: OutputWrapper, total: int, label: str) -> None:
        self.out = out
        self.total = total
        self.label = label
        self.enabled = out.isatty() and total > 0
        self._shown_at = 0.0

    def update(self, done: int, failed: int = 0) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._shown_at < 0.1:
            return
        self._shown_at = now
        details = ""
        if failed:
            details = ", " + ngettext("%(count)d failed", "%(count)d failed", failed) % {
                "count": failed
            }
        self.out.write(f"\r{self.label} {done}/{self.total}{details}", ending="")
        self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self.out.write("")
