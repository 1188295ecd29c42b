"""The fault suite's database: a private PostgreSQL cluster, started for the run.

``./scripts/faults`` runs this directory on its own (``PAGERO_FAULTS=1``); anywhere else its
tests skip, so a normal run never starts a cluster. The default database alias is pointed at
the cluster before pytest-django creates the test database there (``django_db_modify_db_settings``
is pytest-django's hook for exactly that), whatever ``DATABASE_URL`` says.

Each test records ``(fault, trials, lost, note)`` rows with the ``fault_table`` fixture; the
terminal summary prints them as one table (and ``PAGERO_FAULT_REPORT=<file>`` writes them as
JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster import APP_ROLE, PrivateCluster

ENABLED = os.environ.get("PAGERO_FAULTS") == "1"
#: Trials per fault: 5 by default, ``PAGERO_FAULT_TRIALS`` (CI: 20).
TRIALS = int(os.environ.get("PAGERO_FAULT_TRIALS") or 5)
#: The rows of the summary table, in the order the tests recorded them.
ROWS: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def fault_cluster() -> Iterator[PrivateCluster]:
    if not ENABLED:
        pytest.skip("the fault suite runs with ./scripts/faults (PAGERO_FAULTS=1)")
    cluster = PrivateCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(fault_cluster: PrivateCluster) -> None:
    """The default alias, in place (every thread's connection reads this dict), on the cluster."""
    from django.conf import settings
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close()
    database = settings.DATABASES["default"]
    database.update(
        ENGINE="django.db.backends.postgresql",
        NAME="pagero_faults",
        USER=APP_ROLE,
        PASSWORD="",
        HOST=fault_cluster.host,
        PORT=str(fault_cluster.port),
        OPTIONS={"application_name": "pagero-faults"},
        CONN_MAX_AGE=0,
        ATOMIC_REQUESTS=False,
        TEST={"CHARSET": None, "COLLATION": None, "MIGRATE": True, "MIRROR": None, "NAME": None},
    )
    del connections["default"]  # the next use builds a PostgreSQL wrapper from the dict


@pytest.fixture
def fault_table() -> Any:
    """``record(fault, trials, lost, note="")``: a row of the summary table."""

    def record(fault: str, trials: int, lost: int, note: str = "") -> None:
        ROWS.append({"fault": fault, "trials": trials, "lost": lost, "note": note})

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    width = max(len(row["fault"]) for row in ROWS)
    terminalreporter.section("database faults: connections lost")
    terminalreporter.write_line(f"{'fault':<{width}}  trials  lost  note")
    for row in ROWS:
        terminalreporter.write_line(
            f"{row['fault']:<{width}}  {row['trials']:>6}  {row['lost']:>4}  {row['note']}"
        )
    report = os.environ.get("PAGERO_FAULT_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as file:
            json.dump(ROWS, file, indent=2)
