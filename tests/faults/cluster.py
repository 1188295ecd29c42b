"""A private PostgreSQL cluster for the fault suite: one per run, in a temporary directory.

The suite terminates backends, changes role settings and restarts the server, so it never uses
a shared server. ``initdb`` refuses to run as root; as root, every PostgreSQL program runs as
the ``postgres`` OS user (``runuser``) in a directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

#: The role the application connects as (not a superuser: role settings apply to it).
APP_ROLE = "pagero_app"
#: How long anything the cluster waits for may take, in seconds.
DEADLINE = 30.0


def _bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if os.environ.get("PAGERO_PG_BIN"):
        return Path(os.environ["PAGERO_PG_BIN"])
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` on a free port; :meth:`start`, then :meth:`stop` removes it all."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.root = Path(tempfile.mkdtemp(prefix="pagero-faults-"))
        self.data = self.root / "data"
        self.log = self.root / "postgresql.log"
        self._as_postgres = os.geteuid() == 0

    # --- lifecycle -----------------------------------------------------------------------

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(  # noqa: S603 (PostgreSQL's own programs, fixed arguments)
            command, check=True, capture_output=True, timeout=DEADLINE * 2
        )

    def start(self) -> PrivateCluster:
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")  # fmt: skip
        self.options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                # The kill window is measured with each row's commit time.
                "-c track_commit_timestamp=on",
                "-c max_connections=200",
            ]
        )
        self._pg_ctl("start")
        with self.admin() as admin:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(APP_ROLE)))
        return self

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection ends, the server is back on return."""
        self._pg_ctl("restart", "-m", "fast")

    def _pg_ctl(self, action: str, *args: str) -> None:
        # The log file every time: without it the server would write to (and hold open) the
        # pipe this process reads pg_ctl's output from.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self.options,
                  "-w", "-t", str(int(DEADLINE)), *args, action)  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- what the application and the suite connect with -----------------------------------

    def url(self, dbname: str) -> str:
        return f"postgres://{APP_ROLE}@{self.host}:{self.port}/{dbname}"

    @contextmanager
    def admin(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """A superuser connection in autocommit, for the suite's own SQL."""
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname=dbname, autocommit=True
        ) as connection:
            yield connection

    # --- faults ------------------------------------------------------------------------

    def app_backends(self, dbname: str) -> list[dict[str, Any]]:
        """The application's sessions on ``dbname``: pid, state, application_name, wait."""
        with self.admin() as admin:
            rows = admin.execute(
                "SELECT pid, state, application_name, wait_event_type, wait_event "
                "FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                (dbname, APP_ROLE),
            ).fetchall()
        keys = ("pid", "state", "application_name", "wait_event_type", "wait_event")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def terminate(self, dbname: str, *, application_prefix: str | None = None) -> int:
        """``pg_terminate_backend`` every application session on ``dbname`` (or only those
        whose ``application_name`` starts with ``application_prefix``); how many."""
        pids = [
            backend["pid"]
            for backend in self.app_backends(dbname)
            if application_prefix is None
            or (backend["application_name"] or "").startswith(application_prefix)
        ]
        with self.admin() as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s, %s)", (pid, int(DEADLINE * 1000)))
        return len(pids)

    def set_role(self, name: str, value: str) -> None:
        """``ALTER ROLE <app> SET name = value``: the application's new sessions get it."""
        with self.admin() as admin:
            admin.execute(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(
                    sql.Identifier(APP_ROLE), sql.Identifier(name), sql.Literal(value)
                )
            )

    def reset_role(self) -> None:
        with self.admin() as admin:
            admin.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(APP_ROLE)))

    def wait_until(self, condition: Any, what: str, timeout: float = DEADLINE) -> None:
        """Poll ``condition()`` (SQL against this server) until true; AssertionError after
        ``timeout``. The state it waits for is the server's, which has no event to wait on."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)
