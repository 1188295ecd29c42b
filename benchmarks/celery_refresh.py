"""Keep-alive throughput through Celery (4 prefork worker processes) next to the command.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/celery_refresh.py

Same setup as ``refresh_command.py`` (the test settings, a throwaway database
``test_pagero_bench_<pid>``, ``--tokens`` tokens obtained from the mock, which runs in its own
process), then, alternately in the same run against the same mock: ``pagero_refresh_tokens
--all --concurrency 16`` and the Celery fan-out (``refresh_pagero_tokens(within_days=None)``)
worked off by ``celery worker --pool=prefork --concurrency=4`` on Redis (database 13, keys
under ``pagero-bench-<pid>:``, deleted afterwards). Each run refreshes every token; the mock
confirms each was refreshed once and none failed. The Celery time runs from queueing the
fan-out to the last chunk's result. PostgreSQL only (the worker processes share the database).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from benchmarks.refresh_command import mock_server, obtain_tokens, stats

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


def start_worker(env: dict[str, str], app: object, nodename: str, processes: int, log: Path):
    command = [
        sys.executable, "-m", "celery", "-A", "tests.processes.celery_app", "worker",
        "--pool=prefork", f"--concurrency={processes}", "--hostname", nodename,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 (a fixed command)
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while not app.control.ping(destination=[nodename], timeout=1.0):  # type: ignore[attr-defined]
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start; see {log}")
    return process


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending.extend(int(child) for child in children)
    return total


def stop_worker(process: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def celery_run(app: object, chunk_size: int) -> None:
    """Queue the fan-out of every active token; return when every chunk has answered."""
    from celery.signals import after_task_publish

    from django_pagero_oauth.contrib.celery import REFRESH_CHUNK_TASK, refresh_pagero_tokens

    ids: list[str] = []

    def record(sender: object = None, headers: dict | None = None, **kwargs: object) -> None:  # type: ignore[type-arg]
        if sender == REFRESH_CHUNK_TASK and headers is not None:
            ids.append(headers["id"])

    after_task_publish.connect(record, weak=False)
    try:
        refresh_pagero_tokens.apply(kwargs={"within_days": None, "chunk_size": chunk_size}).get()
    finally:
        after_task_publish.disconnect(record)
    for task_id in ids:
        app.AsyncResult(task_id).get(timeout=300)  # type: ignore[attr-defined]


def chunks_in_process(chunk_size: int) -> None:
    """The chunk tasks of a fan-out, run here one after the other (no broker, no worker)."""
    from django_pagero_oauth.contrib.celery import refresh_pagero_token_chunk
    from django_pagero_oauth.management.commands.pagero_refresh_tokens import tokens_to_refresh

    pks = list(tokens_to_refresh(None).values_list("pk", flat=True))
    for start in range(0, len(pks), chunk_size):
        refresh_pagero_token_chunk.apply(args=(pks[start : start + chunk_size], None)).get()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16, help="the command's --concurrency")
    parser.add_argument("--processes", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--chunk-size", type=int, default=50)
    parser.add_argument("--runs", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also run the chunk tasks in this process, one after the other (CPU per token "
        "without the worker machinery)",
    )
    args = parser.parse_args(argv)

    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings, setup_test_environment
    from django.utils import timezone

    from django_pagero_oauth.models import PageroToken
    from django_pagero_oauth.testing.mock import MockPagero
    from tests.processes.celery_app import make_app

    if connection.vendor != "postgresql":
        print("needs PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    setup_test_environment()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"test_pagero_bench_{os.getpid()}"
    old_name = connection.settings_dict["NAME"]
    db_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    prefix = f"pagero-bench-{os.getpid()}:"
    app = make_app(args.redis, prefix)
    app.set_current()
    redis_client = redis.Redis.from_url(args.redis)
    build = REPO_ROOT / "build" / "benchmarks"
    build.mkdir(parents=True, exist_ok=True)
    kinds = ("command", "celery", "chunks in-process") if args.in_process else ("command", "celery")
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu_ms: dict[str, list[float]] = {kind: [] for kind in kinds}
    worker_cpu_ms: dict[str, list[float]] = {kind: [] for kind in kinds}
    worker = None
    try:
        with mock_server("process") as url:
            mock_settings = MockPagero().settings_for(url)
            with override_settings(PAGERO_OAUTH={**settings.PAGERO_OAUTH, **mock_settings}):
                responses = obtain_tokens(args.tokens)
                users = get_user_model().objects.bulk_create(
                    [get_user_model()(username=f"bench{i}") for i in range(args.tokens)]
                )
                now = timezone.now()
                rows = []
                for user, response in zip(users, responses, strict=True):
                    token = PageroToken(user=user)
                    token.apply_token_response(response, now=now)
                    rows.append(token)
                PageroToken.objects.bulk_create(rows, batch_size=500)
                worker = start_worker(
                    {
                        "DJANGO_SETTINGS_MODULE": "tests.processes.settings",
                        "PAGERO_TEST_DB_NAME": db_name,
                        "PAGERO_TEST_OAUTH": json.dumps(mock_settings),
                        "PAGERO_TEST_ROLE": "celery",
                        "PAGERO_TEST_REDIS_URL": args.redis,
                        "PAGERO_TEST_REDIS_PREFIX": prefix,
                        "PYTHONPATH": str(REPO_ROOT),
                    },
                    app,
                    f"pagero-bench-{os.getpid()}@localhost",
                    args.processes,
                    build / "celery-worker.log",
                )
                load_before = os.getloadavg()[0]
                print(
                    f"{connection.vendor}: {args.tokens} tokens; command with --concurrency "
                    f"{args.threads} vs Celery, {args.processes} prefork processes, chunks of "
                    f"{args.chunk_size}; mock in its own process; {os.cpu_count()} CPUs",
                    flush=True,
                )
                for run in range(1, args.runs + 1):
                    for kind in kinds:
                        before = stats(url)
                        assert worker is not None
                        worker_before = process_tree_cpu(worker.pid)
                        cpu_before = time.process_time() + worker_before
                        started = time.perf_counter()
                        if kind == "command":
                            out = StringIO()
                            call_command(
                                "pagero_refresh_tokens", "--all", "--concurrency",
                                str(args.threads), stdout=out, stderr=out,
                            )  # fmt: skip
                        elif kind == "celery":
                            celery_run(app, args.chunk_size)
                        else:
                            chunks_in_process(args.chunk_size)
                        elapsed = time.perf_counter() - started
                        worker_after = process_tree_cpu(worker.pid)
                        cpu = time.process_time() + worker_after - cpu_before
                        cpu_ms[kind].append(cpu * 1000 / args.tokens)
                        worker_cpu_ms[kind].append(
                            (worker_after - worker_before) * 1000 / args.tokens
                        )
                        after = stats(url)
                        refreshes = after["refresh_token"] - before["refresh_token"]
                        failed = after["refresh_token_failed"] - before["refresh_token_failed"]
                        assert refreshes == args.tokens and failed == 0, (kind, refreshes, failed)
                        rate = args.tokens / elapsed
                        results[kind].append(rate)
                        print(
                            f"  run {run}, {kind}: {elapsed:.2f} s, {rate:.0f} tokens/s, "
                            f"{cpu_ms[kind][-1]:.1f} ms CPU per token (driver + worker; "
                            f"{worker_cpu_ms[kind][-1]:.1f} ms of it in the worker)",
                            flush=True,
                        )
                load_after = os.getloadavg()[0]
    finally:
        if worker is not None:
            stop_worker(worker)
        for key in redis_client.scan_iter(match=f"{prefix}*", count=1000):
            redis_client.delete(key)
        app.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    for kind, rates in results.items():
        if rates:
            print(f"best {kind}: {max(rates):.0f} tokens/s")
    print(f"load average (1 min) before/after: {load_before:.1f} / {load_after:.1f}")
    (build / "celery_refresh.json").write_text(
        json.dumps(
            {
                "tokens": args.tokens,
                "processes": args.processes,
                "tokens_per_second": results,
                "cpu_ms_per_token": cpu_ms,
                "worker_cpu_ms_per_token": worker_cpu_ms,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
