"""Benchmarks of django-pagero-oauth. One command each; a Markdown report on stdout.

Run from the repository root (``pip install -e ".[test]"`` has everything they need)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py overhead
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py middleware
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py storm
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py leeway
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py window
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py authlib
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py asgi
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/run.py all

- ``overhead``: throughput of one view behind ``@pagero_token_required`` (valid token) and the
  same view behind ``@login_required`` only, alternating on the same gunicorn server, and the
  SQL queries per request of each. With the README's settings (``PageroModelBackend``);
  ``BENCH_AUTH_BACKEND=model`` measures Django's ``ModelBackend`` instead.
- ``middleware``: a view the middleware does not protect, on a server with
  ``PageroTokenMiddleware`` and on one without, alternating; and one at a time in-process.
- ``storm``: the access token expires under a burst of 16 and 64 concurrent requests spread over
  4 gunicorn worker processes, each request calling Pagero's API: refresh calls per expiry,
  failed requests, p50/p95 latency (next to the same burst with a valid token).
- ``leeway``: bursts of 16 and 64 while the access token still works but is inside
  ``REFRESH_LEEWAY`` (one request refreshes, the others use the valid token), alternating with
  the same bursts when no refresh is due: p50/p95 of each, their p95 ratio, refresh calls per
  burst.
- ``window``: one refresh at a time, in-process: the time from having Pagero's answer to having
  it committed (the window in which a killed process loses the new refresh token).
- ``authlib``: the same storm against Authlib's ``OAuth2Session`` refresh-on-call pattern, side
  by side with this package.
- ``asgi``: under uvicorn, the latency of an unrelated async view (one ORM call) while another
  user's refresh takes 2 s at the mock, next to the same with no refresh, and next to the same
  refresh run the way async code ran it before (Django's thread-sensitive executor).

Everything runs on this machine: the strict mock Pagero server (its own process), gunicorn,
the load generator (this process) and the database. ``DATABASE_URL`` names the database
*server*: the benchmarks create a throw-away database on it (``pagero_bench_<pid>``) and drop it
at the end. ``storm`` and ``authlib`` need PostgreSQL (row locks across processes); ``overhead``
and ``middleware`` also run on SQLite (the default without ``DATABASE_URL``). Results also go to
``build/benchmarks/<name>.json``. The figures are a report, not a test: nothing fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make "benchmarks" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness

OVERHEAD_PATHS = {"@login_required": "/login-only/", "@pagero_token_required": "/pagero/"}
STORM_PATHS = {"django-pagero-oauth": "/pagero/api/", "Authlib OAuth2Session": "/authlib/api/"}
STORM_WORKERS = 4


@dataclass
class Context:
    mock_url: str
    env: dict[str, str]
    vendor: str
    args: argparse.Namespace


# --- overhead -------------------------------------------------------------------------------


def count_queries(user: Any, path: str) -> tuple[int, int, list[str]]:
    """(status, number of SQL queries, the queries) of one request, in this process."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    client.get(path)  # warm caches (content types, URL resolver)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    return response.status_code, len(captured), [q["sql"][:90] for q in captured.captured_queries]


def in_process_cost(user: Any, requests: int) -> dict[str, float]:
    """Median milliseconds per request of each view, one request at a time in this process
    (Django's test client; the views alternate request by request)."""
    import time

    from django.test import Client

    client = Client()
    client.force_login(user)
    samples: dict[str, list[float]] = {name: [] for name in OVERHEAD_PATHS}
    for _ in range(requests):
        for name, path in OVERHEAD_PATHS.items():
            began = time.perf_counter()
            client.get(path)
            samples[name].append(time.perf_counter() - began)
    return {name: round(statistics.median(values) * 1000, 3) for name, values in samples.items()}


def overhead(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    user = harness.connected_user(ctx.mock_url, "overhead")
    cookies = harness.session_cookies(user, args.clients)
    queries = {name: count_queries(user, path) for name, path in OVERHEAD_PATHS.items()}
    single = in_process_cost(user, args.single)
    names = list(OVERHEAD_PATHS)
    rounds: list[dict[str, harness.Throughput]] = []
    with harness.gunicorn(
        workers=args.workers, threads=args.threads, env=ctx.env, log_name="overhead"
    ) as url:
        for path in OVERHEAD_PATHS.values():  # warm up workers and connections
            harness.closed_loop(url, path, cookies, 1.0)
        for index in range(args.rounds):
            order = names if index % 2 == 0 else names[::-1]
            measured = {
                name: harness.closed_loop(url, OVERHEAD_PATHS[name], cookies, args.seconds)
                for name in order
            }
            rounds.append(measured)

    def rate(name: str) -> float:
        return sum(r[name].requests for r in rounds) / sum(r[name].seconds for r in rounds)

    base, pagero = names
    ratios = [r[pagero].per_second / r[base].per_second for r in rounds]
    result = {
        "server": f"gunicorn gthread, {args.workers} workers x {args.threads} threads",
        "clients": args.clients,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "views": {
            name: {
                "requests_per_second": round(rate(name), 1),
                "errors": sum(r[name].errors for r in rounds),
                "status": queries[name][0],
                "sql_queries_per_request": queries[name][1],
                "ms_per_request_single": single[name],
                "sql": queries[name][2],
            }
            for name in names
        },
        "ratio": round(rate(pagero) / rate(base), 3),
        "ratio_median_of_rounds": round(statistics.median(ratios), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "extra_sql_queries": queries[pagero][1] - queries[base][1],
        "extra_ms_per_request_single": round(single[pagero] - single[base], 3),
    }
    print("## Overhead: `@pagero_token_required` vs `@login_required`\n")
    print(
        f"{result['server']}; {args.clients} keep-alive clients; {args.rounds} rounds of "
        f"{args.seconds:g} s per view, alternating; valid token.\n"
    )
    print(
        "| view | requests/s (gunicorn) | errors | SQL queries per request | "
        "ms per request, one at a time |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, view in result["views"].items():
        print(
            f"| `{name}` | {view['requests_per_second']:.0f} | {view['errors']} | "
            f"{view['sql_queries_per_request']} | {view['ms_per_request_single']:.2f} |"
        )
    print(
        f"\nThroughput ratio (`@pagero_token_required` / `@login_required`), median of the "
        f"{args.rounds} rounds: **{result['ratio_median_of_rounds']:.3f}** (rounds "
        f"{min(ratios):.3f}-{max(ratios):.3f}; all requests together {result['ratio']:.3f}); "
        "target >= 0.97."
    )
    print(f"Extra SQL queries per request: **{result['extra_sql_queries']}**; target <= 1.")
    print(
        f"Extra time per request, one at a time in-process (median of {args.single}): "
        f"**{result['extra_ms_per_request_single']:.2f} ms**."
    )
    for name, (_, _, sql) in queries.items():
        print(f"\n`{name}` queries:")
        for statement in sql:
            print(f"    {statement}")
    print()
    return result


# --- middleware on requests it does not protect ----------------------------------------------

MIDDLEWARE_PATH = "/login-only/"
MIDDLEWARE_SERVERS = ("without PageroTokenMiddleware", "with PageroTokenMiddleware")


def middleware_in_process(user: Any, requests: int) -> dict[str, Any]:
    """Per configuration: median ms per request, one at a time in this process, and the SQL
    queries of one request (the two test clients alternate request by request)."""
    import time

    from django.conf import settings
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    ours = "django_pagero_oauth.middleware.PageroTokenMiddleware"
    without = [m for m in settings.MIDDLEWARE if m != ours]
    clients = {}
    for name, stack in zip(MIDDLEWARE_SERVERS, (without, settings.MIDDLEWARE), strict=True):
        with override_settings(MIDDLEWARE=stack):
            client = Client()
            client.force_login(user)
            client.get(MIDDLEWARE_PATH)  # loads the middleware chain under these settings
        clients[name] = client
    queries = {}
    for name, client in clients.items():
        with CaptureQueriesContext(connection) as captured:
            client.get(MIDDLEWARE_PATH)
        queries[name] = len(captured)
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(requests):
        for name, client in clients.items():
            began = time.perf_counter()
            client.get(MIDDLEWARE_PATH)
            samples[name].append(time.perf_counter() - began)
    return {
        name: {
            "ms_per_request_single": round(statistics.median(values) * 1000, 3),
            "sql_queries_per_request": queries[name],
        }
        for name, values in samples.items()
    }


def middleware(ctx: Context) -> dict[str, Any]:
    """The same unprotected view on two gunicorn servers, one without the middleware."""
    args = ctx.args
    user = harness.connected_user(ctx.mock_url, "middleware")
    cookies = harness.session_cookies(user, args.clients)
    single = middleware_in_process(user, args.single)
    rounds: list[dict[str, harness.Throughput]] = []
    server_env = dict(zip(MIDDLEWARE_SERVERS, ({"BENCH_MIDDLEWARE": "off"}, {}), strict=True))
    with (
        harness.gunicorn(
            workers=args.workers,
            threads=args.threads,
            env={**ctx.env, **server_env[MIDDLEWARE_SERVERS[0]]},
            log_name="middleware-off",
        ) as url_without,
        harness.gunicorn(
            workers=args.workers, threads=args.threads, env=ctx.env, log_name="middleware-on"
        ) as url_with,
    ):
        urls = dict(zip(MIDDLEWARE_SERVERS, (url_without, url_with), strict=True))
        for url in urls.values():
            harness.closed_loop(url, MIDDLEWARE_PATH, cookies, 1.0)  # warm up
        for index in range(args.rounds):
            order = MIDDLEWARE_SERVERS if index % 2 == 0 else MIDDLEWARE_SERVERS[::-1]
            rounds.append(
                {
                    name: harness.closed_loop(urls[name], MIDDLEWARE_PATH, cookies, args.seconds)
                    for name in order
                }
            )

    def rate(name: str) -> float:
        return sum(r[name].requests for r in rounds) / sum(r[name].seconds for r in rounds)

    base, ours = MIDDLEWARE_SERVERS
    ratios = [r[ours].per_second / r[base].per_second for r in rounds]
    result = {
        "path": MIDDLEWARE_PATH,
        "protected_paths": ["^/invoices/"],
        "server": f"gunicorn gthread, {args.workers} workers x {args.threads} threads, each",
        "clients": args.clients,
        "rounds": args.rounds,
        "configurations": {
            name: {
                "requests_per_second": round(rate(name), 1),
                "errors": sum(r[name].errors for r in rounds),
                **single[name],
            }
            for name in MIDDLEWARE_SERVERS
        },
        "ratio_median_of_rounds": round(statistics.median(ratios), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "extra_sql_queries": single[ours]["sql_queries_per_request"]
        - single[base]["sql_queries_per_request"],
        "extra_ms_per_request_single": round(
            single[ours]["ms_per_request_single"] - single[base]["ms_per_request_single"], 3
        ),
    }
    print("## Middleware on a request it does not protect\n")
    print(
        f"`@login_required` view at `{MIDDLEWARE_PATH}`, `PROTECTED_PATHS` = `^/invoices/`; "
        f"two servers ({result['server']}), {args.clients} keep-alive clients, "
        f"{args.rounds} alternating rounds of {args.seconds:g} s.\n"
    )
    print("| configuration | requests/s | errors | SQL queries | ms per request, one at a time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in result["configurations"].items():
        print(
            f"| {name} | {row['requests_per_second']:.0f} | {row['errors']} | "
            f"{row['sql_queries_per_request']} | {row['ms_per_request_single']:.3f} |"
        )
    print(
        f"\nThroughput ratio (with / without), median of {args.rounds} rounds: "
        f"**{result['ratio_median_of_rounds']:.3f}** (rounds {min(ratios):.3f}-"
        f"{max(ratios):.3f}). Extra SQL queries: **{result['extra_sql_queries']}**. Extra time "
        f"per request in-process: **{result['extra_ms_per_request_single'] * 1000:.0f} µs**.\n"
    )
    return result


# --- refresh storm ----------------------------------------------------------------------------


def run_storm(ctx: Context, labels: list[str]) -> list[dict[str, Any]]:
    """Expire each client's token ``expiries`` times under bursts of each concurrency level.

    With several clients, their bursts alternate on the same server, so that a change in the
    machine's load affects them alike.
    """
    from django_pagero_oauth.exceptions import PageroOAuthError
    from django_pagero_oauth.models import PageroToken
    from django_pagero_oauth.tokens import refresh_now

    args = ctx.args
    users = {
        label: harness.connected_user(ctx.mock_url, f"storm-{os.urandom(4).hex()}")
        for label in labels
    }
    queries = {label: count_queries(users[label], STORM_PATHS[label])[1] for label in labels}
    levels: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for concurrency in args.levels:
        threads = max(1, concurrency // STORM_WORKERS)
        cookies = {label: harness.session_cookies(users[label], concurrency) for label in labels}
        calm: dict[str, list[harness.Answer]] = {label: [] for label in labels}
        stormy: dict[str, list[harness.Answer]] = {label: [] for label in labels}
        calls: dict[str, list[int]] = {label: [] for label in labels}
        rejected: dict[str, int] = dict.fromkeys(labels, 0)
        with harness.gunicorn(
            workers=STORM_WORKERS,
            threads=threads,
            worker_connections=threads,  # spread every burst evenly over the workers
            keepalive=0,
            env=ctx.env,
            log_name="storm",
        ) as url:
            for label in labels:  # warm up
                harness.burst(url, STORM_PATHS[label], cookies[label])
            for _ in range(args.expiries):
                for label in labels:
                    path = STORM_PATHS[label]
                    calm[label] += harness.burst(url, path, cookies[label])
                    harness.expire_access_token(users[label])
                    before = harness.mock_stats(ctx.mock_url)["counts"]
                    stormy[label] += harness.burst(url, path, cookies[label])
                    after = harness.mock_stats(ctx.mock_url)["counts"]
                    calls[label].append(after["refresh_token"] - before["refresh_token"])
                    rejected[label] += (
                        after["refresh_token_failed"] - before["refresh_token_failed"]
                    )
        for label in labels:
            storm_seconds = [answer.seconds for answer in stormy[label]]
            calm_seconds = [answer.seconds for answer in calm[label]]
            levels[label].append(
                {
                    "concurrency": concurrency,
                    "processes": STORM_WORKERS,
                    "threads_per_process": threads,
                    "expiries": args.expiries,
                    "refresh_calls_per_expiry": {
                        "min": min(calls[label]),
                        "mean": round(statistics.mean(calls[label]), 2),
                        "max": max(calls[label]),
                    },
                    "rejected_refresh_calls": rejected[label],
                    "failed_requests": sum(answer.status != 200 for answer in stormy[label]),
                    "requests": len(stormy[label]),
                    "failed_requests_without_expiry": sum(a.status != 200 for a in calm[label]),
                    "p50_ms": round(harness.percentile(storm_seconds, 50) * 1000, 1),
                    "p95_ms": round(harness.percentile(storm_seconds, 95) * 1000, 1),
                    "p50_ms_without_expiry": round(harness.percentile(calm_seconds, 50) * 1000, 1),
                    "p95_ms_without_expiry": round(harness.percentile(calm_seconds, 95) * 1000, 1),
                }
            )
    results = []
    for label in labels:
        token = PageroToken.objects.get(user_id=users[label].pk)
        try:  # can the user still be refreshed without logging in again?
            refresh_now(token)
            kept = True
        except PageroOAuthError:
            kept = False
        results.append(
            {
                "client": label,
                "view": STORM_PATHS[label],
                "sql_queries_per_request_without_expiry": queries[label],
                "levels": levels[label],
                "connection_kept": kept,
            }
        )
    return results


def print_storm(results: list[dict[str, Any]]) -> None:
    print(
        "| client | concurrent requests | refresh calls per expiry (min/mean/max) | rejected "
        "refresh calls | failed requests | p50 | p95 | p50 / p95 without expiry |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        for level in result["levels"]:
            calls = level["refresh_calls_per_expiry"]
            print(
                f"| {result['client']} | {level['concurrency']} | "
                f"{calls['min']} / {calls['mean']:g} / {calls['max']} | "
                f"{level['rejected_refresh_calls']} | "
                f"{level['failed_requests']} of {level['requests']} | "
                f"{level['p50_ms']:.0f} ms | {level['p95_ms']:.0f} ms | "
                f"{level['p50_ms_without_expiry']:.0f} / {level['p95_ms_without_expiry']:.0f} ms |"
            )
    print()
    for result in results:
        state = "kept" if result["connection_kept"] else "LOST (the user must log in again)"
        print(
            f"- {result['client']} (`{result['view']}`, "
            f"{result['sql_queries_per_request_without_expiry']} SQL queries per request "
            f"without expiry): the user's Pagero connection was {state} afterwards."
        )
    print()


def _storm_header(ctx: Context) -> None:
    args = ctx.args
    print(
        f"{STORM_WORKERS} gunicorn worker processes (gthread, concurrency/{STORM_WORKERS} threads "
        f"each); {args.expiries} expiries per level (bursts of the clients alternate); every "
        "request calls the mock's API "
        "`GET v1/me` as the user; the mock takes single-use refresh tokens and answers "
        "`invalid_grant` to a reused one.\n"
    )


def storm(ctx: Context) -> dict[str, Any]:
    print("## Refresh storm\n")
    _storm_header(ctx)
    results = run_storm(ctx, ["django-pagero-oauth"])
    print_storm(results)
    return results[0]


def authlib(ctx: Context) -> dict[str, Any]:
    print("## Refresh storm: django-pagero-oauth vs Authlib's `OAuth2Session`\n")
    _storm_header(ctx)
    results = run_storm(ctx, list(STORM_PATHS))
    print_storm(results)
    return {"clients": results}


# --- ASGI: an unrelated async view while a refresh waits for Pagero ------------------------------

ASGI_REFRESH_SECONDS = 2.0
ASGI_MODES = {
    "no refresh": ("own-thread", False),
    "refresh, on a worker thread (this version)": ("own-thread", True),
    "refresh, in the thread-sensitive executor (before)": ("shared-thread", True),
}


def _asgi_round(
    ctx: Context, url: str, refresher: Any, refresh: bool, cookies: dict[str, list[str]]
) -> tuple[list[harness.Sample], float, int]:
    """One round: the unrelated view under load for the refresh window, while ``refresher``'s
    protected async view is called once (its token expired, or not)."""
    import http.client
    import threading
    import time
    from urllib.parse import urlsplit

    if refresh:
        harness.expire_access_token(refresher)
        harness.requests.post(
            f"{ctx.mock_url}/_mock/fault",
            data={
                "endpoint": "token",
                "grant_type": "refresh_token",
                "delay": str(ASGI_REFRESH_SECONDS),
                "process": "1",
            },
            timeout=10,
        ).raise_for_status()
    before = harness.mock_stats(ctx.mock_url)["counts"]["refresh_token"]
    protected: list[float] = []

    def call_protected() -> None:
        split = urlsplit(url)
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
        started = time.perf_counter()
        connection.request("GET", "/pagero-async/", headers=harness._headers(cookies["a"][0]))
        response = connection.getresponse()
        response.read()
        seconds = time.perf_counter() - started
        protected.append(seconds if response.status == 200 else -float(response.status))
        connection.close()

    began = time.perf_counter()
    caller = threading.Thread(target=call_protected)
    caller.start()
    samples = harness.timed_loop(
        url, "/unrelated-async/", cookies["b"], began, ASGI_REFRESH_SECONDS
    )
    caller.join()
    refreshes = harness.mock_stats(ctx.mock_url)["counts"]["refresh_token"] - before
    return samples, protected[0], refreshes


def asgi(ctx: Context) -> dict[str, Any]:
    from contextlib import ExitStack

    args = ctx.args
    refresher = harness.connected_user(ctx.mock_url, "asgi-refresher")
    bystander = harness.connected_user(ctx.mock_url, "asgi-bystander")
    cookies = {
        "a": harness.session_cookies(refresher, 1),
        "b": harness.session_cookies(bystander, args.asgi_clients),
    }
    samples: dict[str, list[harness.Sample]] = {mode: [] for mode in ASGI_MODES}
    protected: dict[str, list[float]] = {mode: [] for mode in ASGI_MODES}
    refreshes: dict[str, list[int]] = {mode: [] for mode in ASGI_MODES}
    with ExitStack() as stack:
        servers = {
            flavour: stack.enter_context(
                harness.uvicorn(
                    # Django's advice for ASGI: no persistent connections (a thread per request).
                    env={**ctx.env, "BENCH_ASYNC_REFRESH": flavour, "BENCH_CONN_MAX_AGE": "0"},
                    log_name=f"asgi-{flavour}",
                )
            )
            for flavour in ("own-thread", "shared-thread")
        }
        for url in servers.values():  # warm up: connections, URL resolver, the token path
            _asgi_round(ctx, url, refresher, False, cookies)
        for _ in range(args.asgi_rounds):
            for mode, (flavour, refresh) in ASGI_MODES.items():
                got, seconds, count = _asgi_round(
                    ctx, servers[flavour], refresher, refresh, cookies
                )
                samples[mode] += got
                protected[mode].append(seconds)
                refreshes[mode].append(count)
    baseline_p95 = harness.percentile([s.seconds for s in samples["no refresh"]], 95)
    result: dict[str, Any] = {
        "server": "uvicorn, 1 process (asyncio, h11), CONN_MAX_AGE=0",
        "clients": args.asgi_clients,
        "rounds": args.asgi_rounds,
        "refresh_seconds_at_the_mock": ASGI_REFRESH_SECONDS,
        "modes": {},
    }
    for mode in ASGI_MODES:
        latencies = [sample.seconds for sample in samples[mode]]
        p95 = harness.percentile(latencies, 95)
        result["modes"][mode] = {
            "requests": len(latencies),
            "errors": sum(sample.status != 200 for sample in samples[mode]),
            "p50_ms": round(harness.percentile(latencies, 50) * 1000, 1),
            "p95_ms": round(p95 * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1),
            "p95_added_ms": round((p95 - baseline_p95) * 1000, 1),
            "protected_request_s": [round(value, 2) for value in protected[mode]],
            "refreshes_per_round": refreshes[mode],
        }
    print("## ASGI: an unrelated async view while a refresh waits 2 s for Pagero\n")
    print(
        f"{result['server']}; {args.asgi_clients} keep-alive clients call an unrelated async "
        f"view (`await User.objects.acount()`) for {ASGI_REFRESH_SECONDS:g} s while one request "
        f"of another user hits an async `@pagero_token_required` view whose refresh the mock "
        f"answers after {ASGI_REFRESH_SECONDS:g} s; {args.asgi_rounds} rounds per mode, "
        "alternating.\n"
    )
    print(
        "| mode | requests | errors | p50 | p95 | max | p95 added | refreshes per round | "
        "protected request (median) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for mode, row in result["modes"].items():
        print(
            f"| {mode} | {row['requests']} | {row['errors']} | {row['p50_ms']:.1f} ms | "
            f"{row['p95_ms']:.1f} ms | {row['max_ms']:.0f} ms | {row['p95_added_ms']:+.1f} ms | "
            f"{', '.join(str(count) for count in row['refreshes_per_round'])} | "
            f"{statistics.median(row['protected_request_s']):.2f} s |"
        )
    print()
    return result


# --- a refresh due while the token still works; the store's window ---------------------------


def leeway(ctx: Context) -> dict[str, Any]:
    """Bursts while the access token is inside the leeway (one caller refreshes, the others use
    the still-valid token), alternating with the same bursts when no refresh is due."""
    print("## A refresh due while the access token still works\n")
    args = ctx.args
    user = harness.connected_user(ctx.mock_url, f"leeway-{os.urandom(4).hex()}")
    levels = []
    for concurrency in args.levels:
        threads = max(1, concurrency // STORM_WORKERS)
        cookies = harness.session_cookies(user, concurrency)
        calm: list[harness.Answer] = []
        due: list[harness.Answer] = []
        calls: list[int] = []
        with harness.gunicorn(
            workers=STORM_WORKERS,
            threads=threads,
            worker_connections=threads,
            keepalive=0,
            env=ctx.env,
            log_name="leeway",
        ) as url:
            harness.burst(url, STORM_PATHS["django-pagero-oauth"], cookies)  # warm up
            for _ in range(args.expiries):
                calm += harness.burst(url, STORM_PATHS["django-pagero-oauth"], cookies)
                harness.access_token_inside_leeway(user)
                before = harness.mock_stats(ctx.mock_url)["counts"]["refresh_token"]
                due += harness.burst(url, STORM_PATHS["django-pagero-oauth"], cookies)
                calls.append(harness.mock_stats(ctx.mock_url)["counts"]["refresh_token"] - before)
        levels.append(_leeway_level(concurrency, threads, calm, due, calls))
    print("| concurrent requests | refresh calls per burst (min/max) | failed requests | "
          "p50 / p95 refresh due | p50 / p95 no refresh due | p95 ratio |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for level in levels:
        print(
            f"| {level['concurrency']} | {level['refresh_calls_min']} / "
            f"{level['refresh_calls_max']} | {level['failed_requests']} of {level['requests']} | "
            f"{level['p50_ms']:.0f} / {level['p95_ms']:.0f} ms | "
            f"{level['p50_ms_no_refresh_due']:.0f} / {level['p95_ms_no_refresh_due']:.0f} ms | "
            f"**{level['p95_ratio']:.2f}** |"
        )
    print()
    return {"levels": levels}


def _leeway_level(
    concurrency: int,
    threads: int,
    calm: list[harness.Answer],
    due: list[harness.Answer],
    calls: list[int],
) -> dict[str, Any]:
    due_seconds = [answer.seconds for answer in due]
    calm_seconds = [answer.seconds for answer in calm]
    p95 = harness.percentile(due_seconds, 95)
    p95_calm = harness.percentile(calm_seconds, 95)
    return {
        "concurrency": concurrency,
        "processes": STORM_WORKERS,
        "threads_per_process": threads,
        "bursts": len(calls),
        "refresh_calls_min": min(calls),
        "refresh_calls_max": max(calls),
        "failed_requests": sum(answer.status != 200 for answer in due + calm),
        "requests": len(due) + len(calm),
        "p50_ms": round(harness.percentile(due_seconds, 50) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "p50_ms_no_refresh_due": round(harness.percentile(calm_seconds, 50) * 1000, 1),
        "p95_ms_no_refresh_due": round(p95_calm * 1000, 1),
        "p95_ratio": round(p95 / p95_calm, 3),
    }


def window(ctx: Context) -> dict[str, Any]:
    """From the moment Pagero's refresh answer is in this process to the moment it is committed
    (the ``token_refreshed`` signal, sent after the commit), in-process, one refresh at a time."""
    import time

    from django_pagero_oauth import oauth, tokens
    from django_pagero_oauth.models import PageroToken
    from django_pagero_oauth.signals import token_refreshed

    print("## The window between Pagero's answer and its commit\n")
    user = harness.connected_user(ctx.mock_url, f"window-{os.urandom(4).hex()}")
    answered: list[float] = []
    windows: list[float] = []
    real = oauth.refresh_access_token

    def timed(refresh_token: str) -> Any:
        response = real(refresh_token)
        answered.append(time.perf_counter())
        return response

    def committed(**kwargs: Any) -> None:
        windows.append(time.perf_counter() - answered[-1])

    tokens.oauth.refresh_access_token = timed  # type: ignore[attr-defined]
    token_refreshed.connect(committed)
    try:
        for _ in range(ctx.args.refreshes):
            tokens.refresh_now(PageroToken.objects.get(user_id=user.pk))
    finally:
        token_refreshed.disconnect(committed)
        tokens.oauth.refresh_access_token = real  # type: ignore[attr-defined]
    result = {
        "refreshes": len(windows),
        "p50_ms": round(harness.percentile(windows, 50) * 1000, 2),
        "p95_ms": round(harness.percentile(windows, 95) * 1000, 2),
        "max_ms": round(max(windows) * 1000, 2),
    }
    print(
        f"{result['refreshes']} refreshes on {ctx.vendor}: from the answer read to the commit "
        f"of the store, p50 **{result['p50_ms']} ms**, p95 **{result['p95_ms']} ms**, max "
        f"{result['max_ms']} ms.\n"
    )
    return result


BENCHMARKS = {
    "overhead": overhead,
    "middleware": middleware,
    "storm": storm,
    "leeway": leeway,
    "window": window,
    "authlib": authlib,
    "asgi": asgi,
}


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("benchmark", choices=[*BENCHMARKS, "all"])
    overhead_group = parser.add_argument_group("overhead")
    overhead_group.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    overhead_group.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    overhead_group.add_argument("--clients", type=int, default=8, help="keep-alive clients (8)")
    overhead_group.add_argument("--rounds", type=int, default=10, help="rounds per view (10)")
    overhead_group.add_argument(
        "--seconds", type=float, default=1.5, help="seconds per round and view (1.5)"
    )
    overhead_group.add_argument(
        "--single", type=int, default=300, help="in-process requests per view (300)"
    )
    storm_group = parser.add_argument_group("storm, leeway, authlib")
    storm_group.add_argument(
        "--levels", type=int, nargs="+", default=[16, 64], help="concurrent requests (16 64)"
    )
    storm_group.add_argument(
        "--expiries", type=int, default=8, help="expiries (leeway: bursts) per level (8)"
    )
    parser.add_argument_group("window").add_argument(
        "--refreshes", type=int, default=200, help="refreshes timed (200)"
    )
    asgi_group = parser.add_argument_group("asgi")
    asgi_group.add_argument(
        "--asgi-clients", type=int, default=4, help="clients of the unrelated view (4)"
    )
    asgi_group.add_argument("--asgi-rounds", type=int, default=5, help="rounds per mode (5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    with harness.mock_server() as mock_url:
        pagero_oauth = json.dumps(harness.mock_settings(mock_url))
        os.environ["BENCH_PAGERO_OAUTH"] = pagero_oauth
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        if connection.vendor != "postgresql" and set(selected) & {"storm", "leeway", "authlib"}:
            print(
                "storm, leeway and authlib need PostgreSQL: set DATABASE_URL=postgres://...",
                file=sys.stderr,
            )
            return 2
        with harness.bench_database() as db_name:
            ctx = Context(
                mock_url=mock_url,
                env={"BENCH_DB_NAME": db_name, "BENCH_PAGERO_OAUTH": pagero_oauth},
                vendor=connection.vendor,
                args=args,
            )
            print("# django-pagero-oauth benchmarks\n")
            print(
                f"{os.cpu_count()} CPUs, Python {platform.python_version()}, Django "
                f"{django.get_version()}, {connection.vendor} "
                f"(CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}), "
                f"mock Pagero at {mock_url}.\n"
            )
            harness.BUILD_DIR.mkdir(parents=True, exist_ok=True)
            for name in selected:
                load_before = os.getloadavg()[0]
                result = BENCHMARKS[name](ctx)
                load_after = os.getloadavg()[0]
                print(
                    f"_Load average (1 min) before/after: {load_before:.1f} / {load_after:.1f} "
                    f"on {os.cpu_count()} CPUs; above the CPU count, other processes competed "
                    "for the machine._\n"
                )
                result["machine"] = {
                    "cpus": os.cpu_count(),
                    "database": connection.vendor,
                    "load_average_before_after": [load_before, load_after],
                }
                (harness.BUILD_DIR / f"{name}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
