"""Mutation testing of the security-critical core: ``./scripts/mutation [--area NAME] [--ci]``.

Each mutant is one small change to one function (a flipped comparison, a dropped ``raise``, a
changed constant, ...). The area's tests run against it; a mutant they fail on is *killed*, one
they pass is a *survivor*. A survivor is either a rule no test pins (write the test) or a change
that cannot alter any outcome (list it in ``scripts/mutation_equivalents.toml`` with a reason).

How a mutant runs: this process imports Django and the area's test modules once (a pytest
collection), then forks one child per mutant. The child compiles the mutated module source,
takes the mutated function's code object, assigns it to the live function's ``__code__`` (so
every reference to the function, including ``from x import f`` copies, runs the mutant), and
runs ``pytest.main`` on the area's tests with ``-x``. The child's exit code decides: 0 is a
survivor, anything else (a failure, an error, a crash, a hang past the timeout) is killed.

Areas, their targets (``module:qualname``; a class means its methods, a bare module all of its
functions) and their tests are declared in ``scripts/mutation_areas.toml``.

A mutant's id does not depend on line numbers::

    module:qualname | operator | original -> mutated | occurrence

``occurrence`` counts identical (operator, original, mutated) triples within the function.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parent.parent
AREAS_FILE = ROOT / "scripts" / "mutation_areas.toml"
EQUIVALENTS_FILE = ROOT / "scripts" / "mutation_equivalents.toml"

# Calls on these names are logging: their removal and their message strings are not mutated
# (what a log line says is not a rule this tool judges).
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}

CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
}

MAX_TEXT = 120


# --------------------------------------------------------------------------- areas


@dataclasses.dataclass(frozen=True)
class Area:
    name: str
    targets: tuple[str, ...]
    tests: tuple[str, ...]
    ci_sample: int
    description: str = ""
    #: Given to pytest after the tests; the default keeps each worker's test database.
    pytest_args: tuple[str, ...] = ("--reuse-db",)


def load_areas(path: Path = AREAS_FILE) -> dict[str, Area]:
    data = tomllib.loads(path.read_text())
    areas = {}
    for name, spec in data["area"].items():
        areas[name] = Area(
            name=name,
            targets=tuple(spec["targets"]),
            tests=tuple(spec["tests"]),
            ci_sample=int(spec.get("ci_sample", 20)),
            description=spec.get("description", ""),
            pytest_args=tuple(spec.get("pytest_args", ["--reuse-db"])),
        )
    return areas


@dataclasses.dataclass(frozen=True)
class Equivalent:
    id: str
    reason: str


def load_equivalents(path: Path = EQUIVALENTS_FILE) -> dict[str, Equivalent]:
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    found: dict[str, Equivalent] = {}
    for entry in data.get("equivalent", []):
        reason = entry.get("reason", "").strip()
        if not reason:
            raise SystemExit(f"{path.name}: {entry['id']!r} has no reason")
        if entry["id"] in found:
            raise SystemExit(f"{path.name}: {entry['id']!r} is listed twice")
        found[entry["id"]] = Equivalent(entry["id"], reason)
    return found


# --------------------------------------------------------------------------- mutants


@dataclasses.dataclass(frozen=True)
class Mutant:
    module: str
    qualname: str  # the function whose code object is replaced
    operator: str
    original: str
    mutated: str
    occurrence: int
    node_index: int  # position in ast.walk(function node): how to find the node again

    @property
    def id(self) -> str:
        return (
            f"{self.module}:{self.qualname} | {self.operator} | "
            f"{self.original} -> {self.mutated} | {self.occurrence}"
        )


def _text(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _is_log_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    if node.func.attr not in LOG_METHODS:
        return False
    receiver = node.func.value
    name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
    return "log" in name.lower()


def _skipped_nodes(function: ast.AST) -> set[int]:
    """Ids of nodes never mutated: docstrings, annotations, argument defaults, decorators,
    the constant parts of f-strings, logging calls."""
    skipped: set[int] = set()

    def skip_tree(node: ast.AST | None) -> None:
        if node is not None:
            skipped.update(id(sub) for sub in ast.walk(node))

    for node in ast.walk(function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                skip_tree(body[0])
            skip_tree(getattr(node, "returns", None))
            if not isinstance(node, ast.ClassDef):
                skip_tree(node.args)  # defaults live on the function object, not in its code
            for decorator in node.decorator_list:
                skip_tree(decorator)
        elif isinstance(node, (ast.arg, ast.AnnAssign)):
            skip_tree(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            for value in node.values:
                if isinstance(value, ast.Constant):
                    skipped.add(id(value))
                elif isinstance(value, ast.FormattedValue):
                    skip_tree(value.format_spec)
        elif _is_log_call(node) or (isinstance(node, ast.Expr) and _is_log_call(node.value)):
            skip_tree(node)
    return skipped


def _replacements(node: ast.AST, parent: ast.AST | None) -> Iterator[tuple[str, ast.AST]]:
    """(operator, replacement node) pairs for one node; the replacement takes its place."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swap = CMP_SWAP.get(type(op))
            if swap:
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                yield "cmp", new
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "boolop", new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "not", copy.deepcopy(node.operand)
    elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
        new = copy.deepcopy(node)
        new.op = BINOP_SWAP[type(node.op)]()
        yield "binop", new
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            yield "const", ast.Constant(not value)
        elif isinstance(value, (int, float)):
            for changed in dict.fromkeys((value + 1, value - 1, type(value)(0))):
                if changed != value:
                    yield "const", ast.Constant(changed)
        elif isinstance(value, str):
            yield "const", ast.Constant("" if value else "mutant")
        elif isinstance(value, bytes):
            yield "const", ast.Constant(b"" if value else b"mutant")
    elif isinstance(node, ast.Raise):
        yield "raise", ast.Pass()
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield "return", ast.Return(value=None)
    elif isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)):
        yield "call", ast.Pass()


def _parents(function: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    parents: dict[int, tuple[ast.AST, str, int | None]] = {}
    for node in ast.walk(function):
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        parents[id(item)] = (node, field, i)
            elif isinstance(value, ast.AST):
                parents[id(value)] = (node, field, None)
    return parents


def _mutation_sites(function: ast.AST) -> Iterator[tuple[int, str, ast.AST, ast.AST]]:
    """(node index, operator, original node, replacement) in a deterministic order."""
    skipped = _skipped_nodes(function)
    parents = _parents(function)
    for index, node in enumerate(ast.walk(function)):
        if index == 0 or id(node) in skipped:
            continue
        parent = parents.get(id(node), (None,))[0]
        for operator, replacement in _replacements(node, parent):
            yield index, operator, node, replacement


def _find(tree: ast.AST, qualname: str) -> ast.AST:
    node: ast.AST = tree
    for part in qualname.split("."):
        for child in ast.iter_child_nodes(node):
            if (
                isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and child.name == part
            ):
                node = child
                break
        else:
            raise LookupError(f"{qualname}: no {part!r}")
    return node


def _functions_in(node: ast.AST, prefix: str) -> Iterator[str]:
    """Qualnames of the functions a target names (a class or module: each function in it)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{child.name}"
        elif isinstance(child, ast.ClassDef):
            yield from _functions_in(child, f"{prefix}{child.name}.")


def module_source(module: str) -> tuple[Path, str]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"no module {module}")
    path = Path(spec.origin)
    return path, path.read_text()


def expand_target(target: str) -> list[tuple[str, str]]:
    """``module:qualname`` -> [(module, function qualname), ...]."""
    module, _, qualname = target.partition(":")
    _, source = module_source(module)
    tree = ast.parse(source)
    if not qualname:
        return [(module, name) for name in _functions_in(tree, "")]
    node = _find(tree, qualname)
    if isinstance(node, ast.ClassDef):
        return [(module, name) for name in _functions_in(node, f"{qualname}.")]
    return [(module, qualname)]


def mutants_of(module: str, qualname: str) -> list[Mutant]:
    _, source = module_source(module)
    function = _find(ast.parse(source), qualname)
    seen: dict[tuple[str, str, str], int] = {}
    found = []
    for index, operator, node, replacement in _mutation_sites(function):
        original, mutated = _text(node), _text(replacement)
        if original == mutated:
            continue
        key = (operator, original, mutated)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        found.append(Mutant(module, qualname, operator, original, mutated, occurrence, index))
    return found


def area_mutants(area: Area) -> list[Mutant]:
    found: list[Mutant] = []
    done: set[tuple[str, str]] = set()
    for target in area.targets:
        for function in expand_target(target):
            if function not in done:
                done.add(function)
                found.extend(mutants_of(*function))
    return found


def ci_sample(mutants: list[Mutant], size: int) -> list[Mutant]:
    """A fixed sample: the ``size`` mutants whose id hashes lowest (stable, line-independent)."""

    def rank(mutant: Mutant) -> str:
        return hashlib.sha256(mutant.id.encode()).hexdigest()

    return sorted(mutants, key=rank)[:size]


# --------------------------------------------------------------------------- applying


def mutated_code(mutant: Mutant) -> types.CodeType:
    path, source = module_source(mutant.module)
    tree = ast.parse(source)
    function = _find(tree, mutant.qualname)
    nodes = list(ast.walk(function))
    parents = _parents(function)
    node = nodes[mutant.node_index]
    for operator, replacement in _replacements(node, None):
        if operator == mutant.operator and _text(replacement) == mutant.mutated:
            break
    else:  # pragma: no cover - the tree is the one the mutant was made from
        raise LookupError(mutant.id)
    parent, field, index = parents[id(node)]
    if index is None:
        setattr(parent, field, replacement)
    else:
        getattr(parent, field)[index] = replacement
    ast.fix_missing_locations(tree)
    code = compile(tree, str(path), "exec", dont_inherit=True)
    found = _code_named(code, mutant.qualname)
    if found is None:  # pragma: no cover
        raise LookupError(f"no code object {mutant.qualname} in {path}")
    return found


def _code_named(code: types.CodeType, qualname: str) -> types.CodeType | None:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_qualname == qualname:
                return const
            inner = _code_named(const, qualname)
            if inner is not None:
                return inner
    return None


def _unwrap(obj: Any) -> Any:
    """The plain function behind a staticmethod, classmethod, property or functools wrapper."""
    for _ in range(10):
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        elif isinstance(obj, property):
            obj = obj.fget
        elif hasattr(obj, "__wrapped__"):
            obj = obj.__wrapped__
        elif isinstance(obj, types.FunctionType):
            return obj
        elif hasattr(obj, "func") and isinstance(obj.func, types.FunctionType):
            obj = obj.func  # functools.cached_property
        else:
            break
    raise LookupError(f"not a function: {obj!r}")


def live_function(module: str, qualname: str) -> types.FunctionType:
    obj: Any = importlib.import_module(module)
    parts = qualname.split(".")
    for part in parts[:-1]:
        obj = getattr(obj, part)
    holder = vars(obj)
    return _unwrap(holder[parts[-1]])  # the class dict: no descriptor binding


def apply(mutant: Mutant) -> None:
    live_function(mutant.module, mutant.qualname).__code__ = mutated_code(mutant)


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | equivalent
    seconds: float


def _pytest_args(tests: tuple[str, ...], extra: list[str]) -> list[str]:
    return [
        *tests,
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not browser and not faults",
        *extra,
    ]


def _child(run: Callable[[], int], db_slot: int, log: Path | None) -> None:
    """In the forked child: own process group, own test database, quiet output; never returns."""
    code = 70
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setpgid(0, 0)
        fd = os.open(str(log) if log else os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        _own_database(db_slot)
        code = run()
    except BaseException:
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
        code = 71
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(int(code))


def _own_database(slot: int) -> None:
    """Each worker slot gets its own test database (kept between mutants with --reuse-db)."""
    from django.conf import settings
    from django.db import connections

    for alias, config in settings.DATABASES.items():
        test = config.setdefault("TEST", {})
        if "sqlite" in config["ENGINE"]:
            name = Path(tempfile.gettempdir()) / f"pagero-mutation-{os.getppid()}-{slot}.sqlite3"
            test["NAME"] = str(name)
        else:
            base = test.get("NAME") or f"test_{config['NAME']}"
            test["NAME"] = f"{base}_mutation{slot}"
        with contextlib.suppress(Exception):
            connections[alias].settings_dict["TEST"] = dict(test)


class FastestFirst:
    """A pytest plugin: the baseline records each test's duration, a mutant's run sorts its
    tests fastest first (with ``-x``, the first failure ends the run: most kills are quick)."""

    def __init__(self, durations: dict[str, float] | None = None) -> None:
        self.durations: dict[str, float] = dict(durations or {})
        self.recording = durations is None

    def pytest_runtest_logreport(self, report: Any) -> None:
        if self.recording:
            self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        if not self.recording:
            items.sort(key=lambda item: self.durations.get(item.nodeid, float("inf")))


def _run_pytest(args: list[str], plugins: list[Any] | None = None) -> int:
    import pytest

    return int(pytest.main(args, plugins=plugins or []))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def run_mutants(
    mutants: list[Mutant],
    tests: tuple[str, ...],
    *,
    jobs: int,
    timeout: float,
    on_done: Callable[[Outcome], None],
    pytest_extra: list[str] | None = None,
    durations: dict[str, float] | None = None,
) -> list[Outcome]:
    """Fork one child per mutant, at most ``jobs`` at a time."""
    args = _pytest_args(tests, pytest_extra or [])
    pending = list(mutants)
    running: dict[int, tuple[Mutant, float, int]] = {}

    def stop(signum: int, frame: Any) -> None:
        for child in running:
            _kill_group(child)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    free_slots = list(range(jobs))
    outcomes: list[Outcome] = []
    while pending or running:
        while pending and free_slots:
            mutant = pending.pop(0)
            slot = free_slots.pop(0)
            pid = os.fork()
            if pid == 0:
                order = FastestFirst(durations or {})
                _child(lambda m=mutant, o=order: (apply(m), _run_pytest(args, [o]))[1], slot, None)
            running[pid] = (mutant, time.monotonic(), slot)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.monotonic()
            for child, (mutant, started, slot) in list(running.items()):
                if now - started > timeout:
                    _kill_group(child)
                    os.waitpid(child, 0)
                    del running[child]
                    free_slots.append(slot)
                    outcome = Outcome(mutant, "timeout", now - started)
                    outcomes.append(outcome)
                    on_done(outcome)
            time.sleep(0.05)
            continue
        if pid not in running:
            continue
        mutant, started, slot = running.pop(pid)
        _kill_group(pid)  # anything the tests left behind
        free_slots.append(slot)
        code = os.waitstatus_to_exitcode(status)
        outcome = Outcome(mutant, "survived" if code == 0 else "killed", time.monotonic() - started)
        outcomes.append(outcome)
        on_done(outcome)
    return outcomes


def baseline(
    tests: tuple[str, ...], jobs: int, pytest_extra: list[str]
) -> tuple[float, dict[str, float]]:
    """Run the unmutated tests once per slot (creating each slot's database); they must pass.

    Returns the slowest run's seconds and each test's duration."""
    started = time.monotonic()
    fresh = ["--create-db"] if "--reuse-db" in pytest_extra else []
    args = _pytest_args(tests, [*pytest_extra, *fresh])
    log = Path(tempfile.gettempdir()) / f"pagero-mutation-baseline-{os.getpid()}.log"
    timings = Path(tempfile.gettempdir()) / f"pagero-mutation-durations-{os.getpid()}.json"
    pids = {}
    for slot in range(jobs):
        pid = os.fork()
        if pid == 0:

            def run(slot: int = slot) -> int:
                recorder = FastestFirst()
                code = _run_pytest(args, [recorder])
                if slot == 0:
                    timings.write_text(json.dumps(recorder.durations))
                return code

            _child(run, slot, log if slot == 0 else None)
        pids[pid] = slot
    failed = False
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        failed |= os.waitstatus_to_exitcode(status) != 0
    if failed:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"mutation: the unmutated tests fail: {' '.join(tests)} (log: {log})")
    log.unlink(missing_ok=True)
    durations = json.loads(timings.read_text())
    timings.unlink()
    return time.monotonic() - started, durations


def quick_hypothesis() -> None:
    """The same examples for every mutant, no example database, and no shrinking: a failing
    example kills the mutant, its smallest form does not matter here (shrinking takes minutes).

    Loaded before the test modules are imported: ``@settings`` copies the profile then."""
    with contextlib.suppress(ImportError):
        from hypothesis import Phase, settings

        settings.register_profile(
            "mutation",
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        )
        settings.load_profile("mutation")


def collect(tests: tuple[str, ...], pytest_extra: list[str]) -> None:
    """Import the test modules (with pytest's assertion rewriting) once, in this process."""
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        code = _run_pytest([*_pytest_args(tests, pytest_extra), "--collect-only"])
    if code != 0:
        raise SystemExit(f"mutation: collecting {' '.join(tests)} failed ({code})")


# --------------------------------------------------------------------------- report


@dataclasses.dataclass
class Report:
    area: str
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    survivors: list[Mutant] = dataclasses.field(default_factory=list)

    @property
    def score(self) -> float:
        return 100.0 * (self.killed + self.equivalent) / self.total if self.total else 100.0


def stale_entries(areas: dict[str, Area], equivalents: dict[str, Equivalent]) -> list[str]:
    ids = {mutant.id for area in areas.values() for mutant in area_mutants(area)}
    return [entry for entry in equivalents if entry not in ids]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__.split("\n")[0])
    parser.add_argument("--area", action="append", help="only this area (repeatable)")
    parser.add_argument("--ci", action="store_true", help="the fixed CI sample of each area")
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--timeout", type=float, help="seconds per mutant (default: from the baseline)"
    )
    parser.add_argument("--match", help="only mutants whose id contains this text")
    parser.add_argument("--ids", type=Path, help="only the mutants listed in this file, one a line")
    parser.add_argument("--areas-file", type=Path, default=AREAS_FILE)
    parser.add_argument("--equivalents-file", type=Path, default=EQUIVALENTS_FILE)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every outcome")
    options = parser.parse_args(argv)

    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

    areas = load_areas(options.areas_file)
    equivalents = load_equivalents(options.equivalents_file)
    chosen = options.area or list(areas)
    unknown = [name for name in chosen if name not in areas]
    if unknown:
        parser.error(f"unknown area {', '.join(unknown)}; known: {', '.join(areas)}")

    quick_hypothesis()
    stale = stale_entries(areas, equivalents)
    reports: list[Report] = []
    started = time.monotonic()
    for name in chosen:
        area = areas[name]
        mutants = area_mutants(area)
        report = Report(name, total=len(mutants))
        selected = [m for m in mutants if not options.match or options.match in m.id]
        if options.ids:
            wanted = set(options.ids.read_text().splitlines())
            selected = [m for m in selected if m.id in wanted]
        if options.ci:
            selected = ci_sample(selected, area.ci_sample)
            report.total = len(selected)
        to_run = [m for m in selected if m.id not in equivalents]
        report.equivalent = len(selected) - len(to_run)
        report.total = len(selected)
        if options.list:
            for mutant in selected:
                mark = "  (equivalent)" if mutant.id in equivalents else ""
                print(f"{name}: {mutant.id}{mark}")
            continue
        print(
            f"== {name}: {len(to_run)} to run, {report.equivalent} accepted equivalents", flush=True
        )
        if to_run:
            extra = list(area.pytest_args)
            collect(area.tests, extra)
            base, durations = baseline(area.tests, min(options.jobs, len(to_run)), extra)
            timeout = options.timeout or max(30.0, 3 * base + 10)

            def done(outcome: Outcome, report: Report = report) -> None:
                if outcome.status == "survived":
                    report.survivors.append(outcome.mutant)
                    print(f"   SURVIVED {outcome.mutant.id}", flush=True)
                else:
                    report.killed += 1
                    if options.verbose:
                        print(
                            f"   {outcome.status} ({outcome.seconds:.1f}s) {outcome.mutant.id}",
                            flush=True,
                        )

            run_mutants(
                to_run,
                area.tests,
                jobs=options.jobs,
                timeout=timeout,
                on_done=done,
                durations=durations,
                pytest_extra=extra,
            )
        reports.append(report)

    failed = False
    if stale:
        failed = True
        print(f"\nStale entries in {options.equivalents_file.name} (no such mutant any more):")
        for entry in stale:
            print(f"  {entry}")
    if options.list:
        return 1 if failed else 0
    print()
    print(f"{'area':<14} {'killed':>7} {'equiv':>6} {'survived':>9} {'total':>6} {'score':>7}")
    for report in reports:
        print(
            f"{report.area:<14} {report.killed:>7} {report.equivalent:>6} "
            f"{len(report.survivors):>9} {report.total:>6} {report.score:>6.1f}%"
        )
    print(f"({time.monotonic() - started:.0f}s)")
    survivors = [m for report in reports for m in report.survivors]
    if survivors:
        failed = True
        print("\nSurvivors not listed as equivalent (write a test, or list them with a reason):")
        for mutant in survivors:
            print(f"  {mutant.id}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
