"""Database faults during a refresh: is the rotated refresh token still stored afterwards?

Pagero's refresh tokens are single-use: once Pagero has answered a refresh, the old one is dead
and the new one exists only in that answer. Each test here makes a refresh be in flight (the
strict mock holds its answer, ``Fault(hold=True)``, after rotating), breaks the database the way
production databases break (a terminated backend, an idle-in-transaction timeout, a
serialization failure, a statement timeout, a restart, a killed worker), lets the answer go,
and then asks: is the stored refresh token the one the mock now honours, and does one more
forced refresh succeed? If not, the user's connection is lost.

Only public behaviour is used (``get_valid_token``, the ``pagero_refresh_tokens`` command, a
view, the mock, SQL on the private cluster), so the suite holds any implementation of the
refresh to the same promise. Every fault runs ``TRIALS`` times; the number of connections lost
must be 0, except for a worker killed after Pagero rotated and before the new token was
committed (the kill window, whose length is measured and reported, not asserted).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone
from psycopg import sql

from django_pagero_oauth.exceptions import PageroAuthorizationRequired, PageroOAuthError
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import TokenResponse
from django_pagero_oauth.testing.mock import Fault, MockPageroServer
from django_pagero_oauth.tokens import get_valid_token

from .cluster import DEADLINE, PrivateCluster
from .conftest import TRIALS

pytestmark = [pytest.mark.faults, pytest.mark.postgres_only]

REPO_ROOT = Path(__file__).resolve().parents[2]


def on_tokens(query: str) -> sql.Composed:
    """``query`` with ``{table}`` as the token table's (quoted) name."""
    return sql.SQL(query).format(table=sql.Identifier(PageroToken._meta.db_table))


# --- helpers ---------------------------------------------------------------------------------


def in_thread(func: Callable[[], Any]) -> Any:
    """``func()`` on a new thread with database connections of its own (closed afterwards):
    after a fault, the main thread's connection may be dead."""
    return start(func).result()


class Running:
    """A function running on its own thread; :meth:`result` joins it."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(func,), daemon=True)

    def _run(self, func: Callable[[], Any]) -> None:
        try:
            self.value = func()
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            connections.close_all()

    def join(self) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "a refresh hung"

    def result(self) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def start(func: Callable[[], Any]) -> Running:
    running = Running(func)
    running.thread.start()
    return running


def seed(mock: MockPageroServer) -> int:
    """A new user with a stored token the mock honours (its access token expired); the pk."""

    def make() -> int:
        user = get_user_model().objects.create_user(f"u-{uuid.uuid4().hex[:12]}")
        response = TokenResponse.from_json(mock.mock.issue_tokens())
        with transaction.atomic():
            token = PageroToken.store_for_user(user, response)
        token.access_token_expires_at = timezone.now()
        token.save()
        return int(user.pk)

    return int(in_thread(make))


def force_refresh(user_pk: int) -> Callable[[], Any]:
    return lambda: get_valid_token(get_user_model().objects.get(pk=user_pk), force_refresh=True)


def connection_kept(mock: MockPageroServer, user_pk: int) -> bool:
    """The stored refresh token is the mock's current one, and one more refresh succeeds.

    A refresh that fails for another reason than ``invalid_grant`` (e.g. a "refresh in
    progress" left by a killed worker that has not expired yet) is tried again until
    ``DEADLINE``.
    """

    def stored_is_valid() -> bool:
        token = PageroToken.objects.filter(user_id=user_pk).first()
        return (
            token is not None
            and not token.needs_reauthorization
            and mock.mock.is_refresh_token_valid(token.refresh_token)
        )

    if not in_thread(stored_is_valid):
        return False
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            in_thread(force_refresh(user_pk))
        except PageroAuthorizationRequired:
            return False
        except PageroOAuthError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
            continue
        return bool(in_thread(stored_is_valid))


def hold_next_refresh(mock: MockPageroServer) -> Callable[[], None]:
    """Pagero rotates at once, its answer waits for ``release_held()``; returns the wait for
    that refresh to arrive."""
    target = mock.mock.counts["held"] + 1
    mock.mock.add_fault(Fault("token", grant_type="refresh_token", hold=True, process=True))
    return lambda: _wait_held(mock, target)


def _wait_held(mock: MockPageroServer, target: int) -> None:
    assert mock.mock.wait_held(count=target, timeout=DEADLINE), "no refresh reached Pagero"


@pytest.fixture
def faults(
    fault_cluster: PrivateCluster,
    transactional_db: None,
    pagero_mock: MockPageroServer,
    settings: Any,
) -> Iterator[PrivateCluster]:
    """The cluster, with the role settings and connections a test changed put back.

    The HTTP timeout is the suite's ``DEADLINE``: a held answer is never taken for a Pagero
    that timed out, however slow a fault (a restart) is on a busy machine.
    """
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": DEADLINE}
    try:
        yield fault_cluster
    finally:
        pagero_mock.mock.release_held()
        fault_cluster.reset_role()
        connections.close_all()


def dbname() -> str:
    return str(connections["default"].settings_dict["NAME"])


@contextmanager
def database_option(**changes: Any) -> Iterator[None]:
    """Change the default alias's settings (``OPTIONS`` merged) for new connections."""
    database = connections["default"].settings_dict
    saved = {name: database.get(name) for name in changes}
    for name, value in changes.items():
        database[name] = {**database[name], **value} if name == "OPTIONS" else value
    connections.close_all()
    try:
        yield
    finally:
        database.update(saved)
        connections.close_all()


def run_trials(
    record: Callable[..., None],
    name: str,
    trial: Callable[[], bool],
    *,
    note: Callable[[], str] = lambda: "",
) -> int:
    """``trial()`` (True: connection kept) ``TRIALS`` times; records and returns ``lost``."""
    lost = 0
    for _ in range(TRIALS):
        kept = trial()
        connections.close_all()
        lost += 0 if kept else 1
    record(name, TRIALS, lost, note())
    return lost


# --- (1) the backend is terminated while Pagero answers -------------------------------------


def test_terminated_backend(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    terminated: list[int] = []

    def trial() -> bool:
        user_pk = seed(pagero_mock)
        held = hold_next_refresh(pagero_mock)
        refresher = start(force_refresh(user_pk))
        held()
        terminated.append(faults.terminate(dbname()))
        pagero_mock.mock.release_held()
        refresher.join()
        return connection_kept(pagero_mock, user_pk)

    lost = run_trials(
        fault_table,
        "pg_terminate_backend while Pagero answers",
        trial,
        note=lambda: f"sessions terminated: {sum(terminated)}",
    )
    assert lost == 0


# --- (2) idle_in_transaction_session_timeout shorter than the answer -------------------------


def test_idle_in_transaction_timeout(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    def no_idle_transaction() -> bool:
        return all(b["state"] != "idle in transaction" for b in faults.app_backends(dbname()))

    idle_at_hold: list[int] = []

    def trial() -> bool:
        user_pk = seed(pagero_mock)
        faults.set_role("idle_in_transaction_session_timeout", "200ms")
        held = hold_next_refresh(pagero_mock)
        refresher = start(force_refresh(user_pk))
        held()
        if not no_idle_transaction():
            idle_at_hold.append(user_pk)
        # The answer is late: every transaction left idle meanwhile has been ended by the server.
        faults.wait_until(no_idle_transaction, "the idle transactions to time out")
        pagero_mock.mock.release_held()
        refresher.join()
        faults.reset_role()
        return connection_kept(pagero_mock, user_pk)

    lost = run_trials(
        fault_table,
        "idle_in_transaction_session_timeout (200 ms)",
        trial,
        note=lambda: f"a transaction was idle during the call in {len(idle_at_hold)} trials",
    )
    assert lost == 0


# --- (3) SERIALIZABLE, with an ordinary request writing the user meanwhile -------------------


def test_serializable_with_a_conflicting_writer(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    def ordinary_request(user_pk: int) -> None:
        """Reads the user's token and the user, then writes the user (``last_login``)."""
        with transaction.atomic():
            user = get_user_model().objects.get(pk=user_pk)
            list(PageroToken.objects.filter(user=user).values("fingerprint", "status"))
            user.last_login = timezone.now()
            user.save(update_fields=["last_login"])

    def trial() -> bool:
        user_pk = seed(pagero_mock)
        held = hold_next_refresh(pagero_mock)
        refresher = start(force_refresh(user_pk))
        held()
        in_thread(lambda: ordinary_request(user_pk))
        pagero_mock.mock.release_held()
        refresher.join()
        return connection_kept(pagero_mock, user_pk)

    serializable = {"isolation_level": psycopg.IsolationLevel.SERIALIZABLE}
    with database_option(OPTIONS=serializable):
        lost = run_trials(fault_table, "SERIALIZABLE + a request writing the user", trial)
    assert lost == 0


# --- (4) statement_timeout -------------------------------------------------------------------


def test_statement_timeout(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    """A short ``statement_timeout`` for the application while a refresh is in flight: a second
    caller's wait for the row is cancelled, and a transaction that holds the token row when the
    answer is to be stored (where the refresh holds no lock on it during the call) makes the
    storing statement wait past the timeout."""

    store_waited: list[int] = []

    def waiting_on_the_row() -> bool:
        return any(b["wait_event_type"] == "Lock" for b in faults.app_backends(dbname()))

    def trial() -> bool:
        user_pk = seed(pagero_mock)
        faults.set_role("statement_timeout", "300ms")
        held = hold_next_refresh(pagero_mock)
        refresher = start(force_refresh(user_pk))
        held()
        second = start(force_refresh(user_pk))
        # Its wait for the row (if it waits) is cancelled by the timeout; it may also wait for
        # the first refresh in some other way, so it is joined at the end.
        second.thread.join(2.0)
        with faults.admin(dbname()) as admin, admin.transaction():
            locked = admin.execute(
                on_tokens("SELECT id FROM {table} WHERE user_id = %s FOR UPDATE SKIP LOCKED"),
                (user_pk,),
            ).fetchall()
            pagero_mock.mock.release_held()
            if locked:
                # Hold the row until the refresher's statement has waited on it and given up
                # (if it ever waits on it: storing may not need this row lock).
                with contextlib.suppress(AssertionError):
                    faults.wait_until(waiting_on_the_row, "the store to wait for the row", 5)
                    store_waited.append(user_pk)
                    faults.wait_until(lambda: not waiting_on_the_row(), "the statement timeout")
        refresher.join()
        second.join()
        faults.reset_role()
        return connection_kept(pagero_mock, user_pk)

    lost = run_trials(
        fault_table,
        "statement_timeout (300 ms)",
        trial,
        note=lambda: f"the store waited on a locked row in {len(store_waited)} trials",
    )
    assert lost == 0


# --- (5) PostgreSQL restarted during a refresh -----------------------------------------------


def test_server_restart(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    def trial() -> bool:
        user_pk = seed(pagero_mock)
        held = hold_next_refresh(pagero_mock)
        refresher = start(force_refresh(user_pk))
        held()
        faults.restart()
        pagero_mock.mock.release_held()
        refresher.join()
        return connection_kept(pagero_mock, user_pk)

    assert run_trials(fault_table, "PostgreSQL restarted (pg_ctl restart -m fast)", trial) == 0


# --- the page of a request whose transaction the database killed -----------------------------


@pytest.mark.parametrize(
    ("page", "where"),
    [
        ("/protected/", "decorator, before the transaction"),
        ("/token-info/?use=1", "lazy request.pagero_token, inside it"),
    ],
)
def test_page_of_a_request_whose_transaction_died(
    faults: PrivateCluster,
    pagero_mock: MockPageroServer,
    fault_table: Any,
    page: str,
    where: str,
) -> None:
    """Under ``ATOMIC_REQUESTS``, a page that refreshes while the database terminates its
    backends (the request's, whose transaction dies, and the refresh's) answers with the page
    itself or a 503, never a 500; and the connection is kept. The refresh happens before the
    request's transaction (``@pagero_token_required``) or inside it (the middleware's lazy
    ``request.pagero_token`` read in the view)."""
    statuses: list[int] = []

    def trial() -> bool:
        user_pk = seed(pagero_mock)
        client = Client(raise_request_exception=False)
        in_thread(lambda: client.force_login(get_user_model().objects.get(pk=user_pk)))
        held = hold_next_refresh(pagero_mock)
        request = start(lambda: client.get(page))
        held()
        faults.terminate(dbname())
        pagero_mock.mock.release_held()
        statuses.append(request.result().status_code)
        return connection_kept(pagero_mock, user_pk)

    with database_option(ATOMIC_REQUESTS=True):
        lost = run_trials(
            fault_table,
            f"ATOMIC_REQUESTS page, backends terminated ({where})",
            trial,
            note=lambda: "pages: " + ", ".join(f"{s}" for s in sorted(set(statuses))),
        )
    assert set(statuses) <= {200, 503}, statuses
    assert lost == 0


# --- (6) a worker process killed with SIGKILL mid-refresh -----------------------------------


def keep_alive_worker(faults: PrivateCluster, mock: MockPageroServer) -> subprocess.Popen[bytes]:
    """``manage.py pagero_refresh_tokens --all`` in a process of its own, on the test database;
    its sessions are named ``killed-<pid>``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.processes.settings",
        "DATABASE_URL": faults.url(dbname()),
        "PAGERO_TEST_DB_NAME": dbname(),
        "PAGERO_TEST_OAUTH": json.dumps({**mock.settings(), "TIMEOUT": DEADLINE}),
        "PAGERO_TEST_ROLE": "killed",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "django", "pagero_refresh_tokens", "--all"]
    return subprocess.Popen(  # noqa: S603 (a fixed command)
        command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def only_token(user_pk: int) -> None:
    """The keep-alive command refreshes every token: leave only this user's."""
    in_thread(lambda: PageroToken.objects.exclude(user_id=user_pk).delete())


def kill(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(DEADLINE)


@contextmanager
def store_gate(faults: PrivateCluster) -> Iterator[psycopg.Connection[Any]]:
    """A trigger that makes the write of a NEW refresh token (its fingerprint changes) wait
    for an advisory lock, which the yielded connection holds until it ends: the refresher has
    Pagero's answer and has not committed it yet, for as long as the test wants."""
    with faults.admin(dbname()) as admin:
        admin.execute(
            "CREATE OR REPLACE FUNCTION pagero_fault_gate() RETURNS trigger AS $$ BEGIN "
            "PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        admin.execute(
            on_tokens(
                "CREATE TRIGGER pagero_fault_gate BEFORE UPDATE ON {table} FOR EACH ROW "
                "WHEN (OLD.fingerprint IS DISTINCT FROM NEW.fingerprint) "
                "EXECUTE FUNCTION pagero_fault_gate()"
            )
        )
        try:
            with faults.admin(dbname()) as gate:
                gate.execute("SELECT pg_advisory_lock(4242)")
                yield gate
        finally:
            admin.execute(on_tokens("DROP TRIGGER pagero_fault_gate ON {table}"))


def worker_waits(faults: PrivateCluster, event_type: str, event: str = "") -> Callable[[], bool]:
    """True once the worker's session waits on a lock of this type (and event, if given)."""
    return lambda: any(
        (b["application_name"] or "").startswith("killed-")
        and b["wait_event_type"] == event_type
        and (not event or b["wait_event"] == event)
        for b in faults.app_backends(dbname())
    )


def test_worker_killed_before_calling_pagero(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    """Killed while it waits for the token row (held by another transaction): Pagero was not
    called, nothing may be lost."""

    def trial() -> bool:
        user_pk = seed(pagero_mock)
        only_token(user_pk)
        with faults.admin(dbname()) as admin, admin.transaction():
            admin.execute(
                on_tokens("SELECT id FROM {table} WHERE user_id = %s FOR UPDATE"), (user_pk,)
            )
            worker = keep_alive_worker(faults, pagero_mock)
            waits = worker_waits(faults, "Lock")
            faults.wait_until(
                lambda: worker.poll() is not None or waits(), "the worker to wait for the row"
            )
            kill(worker)
        return connection_kept(pagero_mock, user_pk)

    lost = run_trials(fault_table, "worker SIGKILLed waiting for the row", trial)
    assert pagero_mock.mock.counts["refresh_token"] == TRIALS  # only connection_kept's
    assert lost == 0


def test_worker_killed_after_pagero_rotated(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    """Killed after Pagero rotated: while the answer is on its way (held by the mock), and
    after it arrived but before its commit (held by a trigger). Both are the kill window: the
    new refresh token existed only in the dead process. Counted, not asserted."""

    def killed_while_answer_in_flight() -> bool:
        user_pk = seed(pagero_mock)
        only_token(user_pk)
        held = hold_next_refresh(pagero_mock)
        worker = keep_alive_worker(faults, pagero_mock)
        held()
        kill(worker)
        pagero_mock.mock.release_held()
        return connection_kept(pagero_mock, user_pk)

    def killed_before_commit() -> bool:
        user_pk = seed(pagero_mock)
        only_token(user_pk)
        with store_gate(faults):
            worker = keep_alive_worker(faults, pagero_mock)
            faults.wait_until(
                worker_waits(faults, "Lock", "advisory"), "the worker to store the answer"
            )
            kill(worker)
        return connection_kept(pagero_mock, user_pk)

    run_trials(
        fault_table, "worker SIGKILLed, answer in flight (window)", killed_while_answer_in_flight
    )
    run_trials(fault_table, "worker SIGKILLed, answer not committed (window)", killed_before_commit)


@contextmanager
def rotation_log(faults: PrivateCluster) -> Iterator[Callable[[int], float]]:
    """Yields ``committed(user_pk)``: when the first transaction that wrote a new refresh token
    (its fingerprint changed) for that user committed, in seconds since the epoch.

    A trigger logs each such write in a table; the log row's ``xmin`` is that transaction, and
    ``track_commit_timestamp`` knows its commit time, whatever else the refresh writes later.
    """
    with faults.admin(dbname()) as admin:
        admin.execute("CREATE TABLE pagero_fault_rotations (user_id bigint NOT NULL)")
        admin.execute(
            "CREATE FUNCTION pagero_fault_rotated() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO pagero_fault_rotations VALUES (NEW.user_id); RETURN NULL; END $$ "
            "LANGUAGE plpgsql SECURITY DEFINER"
        )
        admin.execute(
            on_tokens(
                "CREATE TRIGGER pagero_fault_rotated AFTER UPDATE ON {table} FOR EACH ROW "
                "WHEN (OLD.fingerprint IS DISTINCT FROM NEW.fingerprint) "
                "EXECUTE FUNCTION pagero_fault_rotated()"
            )
        )

        def committed(user_pk: int) -> float:
            row = admin.execute(
                "SELECT min(extract(epoch FROM pg_xact_commit_timestamp(xmin))) "
                "FROM pagero_fault_rotations WHERE user_id = %s",
                (user_pk,),
            ).fetchone()
            assert row is not None and row[0] is not None, "no new refresh token was committed"
            return float(row[0])

        try:
            yield committed
        finally:
            admin.execute(on_tokens("DROP TRIGGER pagero_fault_rotated ON {table}"))
            admin.execute("DROP FUNCTION pagero_fault_rotated()")
            admin.execute("DROP TABLE pagero_fault_rotations")


def test_kill_window_length(
    faults: PrivateCluster, pagero_mock: MockPageroServer, fault_table: Any
) -> None:
    """How long a rotated refresh token exists only in the refresher's memory: from the moment
    the mock lets its answer go to the commit of the new token (:func:`rotation_log`). A
    measurement for the documentation, not an assertion."""
    windows: list[float] = []

    def trial(committed: Callable[[int], float]) -> bool:
        user_pk = seed(pagero_mock)
        held = hold_next_refresh(pagero_mock)
        refresher = start(force_refresh(user_pk))
        held()
        released = time.time()
        pagero_mock.mock.release_held()
        refresher.result()
        windows.append((committed(user_pk) - released) * 1000)
        return connection_kept(pagero_mock, user_pk)

    def note() -> str:
        ordered = sorted(windows)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        return (
            f"kill window ms: min {ordered[0]:.1f}, median {statistics.median(ordered):.1f}, "
            f"p95 {p95:.1f}, max {ordered[-1]:.1f}"
        )

    with rotation_log(faults) as committed:
        lost = run_trials(
            fault_table, "no fault (kill window measured)", lambda: trial(committed), note=note
        )
    assert lost == 0
