"""Shared fixtures: a whole offline world (Discord double, provider doubles, real bot)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from doubles.billing import TALLY
from doubles.discord import DiscordDouble
from doubles.harness import World, build_world
from tests.pg import Cluster, PostgresUnavailable, own_database


@pytest.fixture(autouse=True)
def no_limit_refusals() -> Iterator[None]:
    """Suite-wide: a test fails at teardown if Discord (the double) refused any request
    for one of its documented limits, unless the test called
    ``discord.expect_limit_refusals()``. Covers every double built during the test,
    whether through ``world``/``world_factory``, ``build_world`` or directly."""
    built: list[DiscordDouble] = []
    with DiscordDouble.on_created(built.append):
        yield
    problems = [d for d in built if d.unexpected_limit_refusals()]
    for double in problems:
        double.assert_no_limit_refusals()


@pytest.fixture
async def world(tmp_path: Path):
    w = await build_world(tmp_path)
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
async def world_factory(tmp_path: Path):
    """For tests that need custom settings: ``await world_factory(env={...})``."""
    made: list[World] = []

    async def make(**kwargs) -> World:
        w = await build_world(tmp_path / f"w{len(made)}", **kwargs)
        made.append(w)
        return w

    try:
        yield make
    finally:
        for w in made:
            await w.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL URL that may create databases: REELBOT_TEST_POSTGRES_URL, or else a
    throwaway cluster (one per xdist worker; tests/pg.py). Skips the test, saying why,
    where neither is possible."""
    url = os.environ.get("REELBOT_TEST_POSTGRES_URL", "").strip()
    if url:
        yield url  # given explicitly: failing to connect is an error, not a skip
        return
    try:
        cluster = Cluster.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL not available: {exc}; set REELBOT_TEST_POSTGRES_URL")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """This session's own database (tests take a fresh schema in it: tests/pg.py)."""
    with own_database(postgres_server) as url:
        yield url


# --- the double-billing safety net (doubles/billing.py): one line per session ----------------
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput["billing"] = TALLY.as_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    data = getattr(node, "workeroutput", {}).get("billing")
    if isinstance(data, dict):
        TALLY.merge(data)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if getattr(terminalreporter.config, "workeroutput", None) is not None or not TALLY.worlds:
        return
    terminalreporter.write_line(
        f"provider doubles: {TALLY.created} tasks created in {TALLY.worlds} worlds, "
        f"{TALLY.orphans} orphaned, {TALLY.double_billed} double-billed submits, "
        f"{TALLY.unchecked} worlds unchecked"
        + (f" ({'; '.join(TALLY.offenders)})" if TALLY.offenders else "")
    )
