"""Fixtures of the management command tests."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError


class Outcome:
    """What a command run produced: its exit code and output."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def text(self) -> str:
        return self.out + self.err

    def __repr__(self) -> str:
        return f"Outcome(code={self.code}, out={self.out!r}, err={self.err!r})"


class FakeTerminal(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def run_command() -> Callable[..., Outcome]:
    """``run_command(name, *args, stdout=None)`` through ``call_command``: the exit code is
    0, or the ``returncode`` of the ``CommandError`` the command raised."""

    def run(name: str, *args: str, stdout: StringIO | None = None) -> Outcome:
        out, err = stdout or StringIO(), StringIO()
        try:
            call_command(name, *args, stdout=out, stderr=err)
        except CommandError as exc:
            return Outcome(exc.returncode, out.getvalue(), err.getvalue() + str(exc))
        return Outcome(0, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], transactional_db: None) -> Callable[..., Outcome]:
    """``run_cli(name, *argv)`` exactly as ``manage.py`` runs it: the real process exit code.

    ``run_from_argv`` closes the database connections, hence ``transactional_db``.
    """

    def run(name: str, *argv: str) -> Outcome:
        command = load_command_class("django_pagero_oauth", name)
        code: Any = 0
        try:
            command.run_from_argv(["manage.py", name, *argv])
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Outcome(int(code or 0), captured.out, captured.err)

    return run


@pytest.fixture
def terminal() -> FakeTerminal:
    return FakeTerminal()


def assert_no_secret(text: str, *secrets: str) -> None:
    """No 8-character window of any secret appears in ``text``."""
    for secret in secrets:
        for start in range(len(secret) - 7):
            assert secret[start : start + 8] not in text
