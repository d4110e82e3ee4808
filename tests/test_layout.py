"""The shape of the code: no import cycles among product modules (issue 12), counting
imports inside functions and under TYPE_CHECKING too, since those only hide a cycle."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("providers", "reelbot", "cogs")
TEST_ONLY = ("doubles", "tests", "benchmarks")


def product_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_product_module_imports() -> None:
    for name in sorted(product_modules()):
        importlib.import_module(name)


def test_no_import_cycles() -> None:
    assert cycles(import_graph(product_modules())) == []


def test_nothing_test_only_in_the_product() -> None:
    """The doubles and the tests stay outside the installed package (bot.py imports
    the sandbox only for --sandbox, from a source checkout)."""
    offenders = []
    for name, path in product_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            offenders += [
                f"{name}:{node.lineno} {t}" for t in targets if t.split(".")[0] in TEST_ONLY
            ]
    assert offenders == []


def test_the_checker_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Store methods that change a task row. The worker half writes a claimed row only from
# the poller (its outcome, in one release) and through the poller's Lease (checkpoints
# that must precede a side effect). The request half creates tasks and posts their
# status before any claim; a cancel is the one competing write, and wins by design
# (cancel_task clears the lease; the poller's release then expects the old state).
TASK_WRITES = {"update_task", "release", "mark_delivered", "refund", "claim_due", "renew_leases"}
ALLOWED_WRITERS = {
    "reelbot.jobs.poller",  # the only writer of a claimed row
    "reelbot.jobs.lease",  # the poller's handle, passed to the step it runs
    "reelbot.generations.service",  # the request half: before the poller ever sees the task
    "reelbot.wiring",  # start-up (prepare): release_all_leases in a single process
}


def test_only_the_poller_writes_a_claimed_task_row() -> None:
    offenders = []
    for name, path in product_modules().items():
        if name in ALLOWED_WRITERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in TASK_WRITES
                and "store" in ast.unparse(node.func.value)
            ):
                offenders.append(f"{name}:{node.lineno} {ast.unparse(node.func)}")
    assert offenders == []
