"""Scaling past one process: task leases, their renewal, and real processes on PostgreSQL.

The multi-process test runs four real ``python bot.py`` processes against the doubles
(served by this test process) and one PostgreSQL database: a gateway process per shard
of a two-shard Discord double, and two ``--worker`` processes. Every status poll is
held inside the provider doubles, so each task is mid-action in some worker; the test
checks that the leases outlive their first period while held (renewal), then sends
SIGKILL to a worker holding tasks and checks that the survivor takes them over within
one lease period and that every task ends with exactly one final message.

Waiting is on observable state (the Discord double, the store, the processes' logs and
health endpoints); the only timed watches are the ones whose point is the passage of
time (a lease period going by without a takeover). Skipped, saying why, where no
PostgreSQL server can be had (see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from doubles.harness import World, build_world
from providers import PROVIDER_IDS
from tests.helpers import (
    Gate,
    assert_exactly_once,
    eventually,
    finals,
    gate_polls,
    started,
    video_lands,
)
from tests.pg import fresh_schema

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
LEASE = 3.0  # TASK_LEASE_SECONDS for the processes: short, so a takeover is quick to see
# Slack for scheduling on a loaded 2-core CI machine (four bot processes, PostgreSQL, the
# doubles and maybe a parallel test session): a takeover is due at most LEASE after the
# kill plus one poller tick (50 ms here).
TAKEOVER_SLACK = 1.5
DELIVERY_SLACK = 6.0  # after the takeover: a poll, a download and an upload per task
STARTUP = 30.0
# Six tasks, three per guild (one guild per shard), over four provider protocols.
PLAN = (("hiapi", "foxapi", "gptge"), ("higgsfield", "hiapi", "foxapi"))
USED = ("hiapi", "foxapi", "gptge", "higgsfield")
_OWNER = re.compile(r"poller (poller-[0-9a-f]+) started")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BotProcess:
    """One ``python bot.py ARGS`` with the world's environment and its own health port."""

    def __init__(self, name: str, args: list[str], world: World, directory: Path) -> None:
        self.name = name
        self.args = args
        self.health_port = free_port()
        self.log_path = directory / f"{name}.log"
        # Nothing from the caller's environment or a stray .env beyond what is set here:
        # every provider variable is blanked, then the world's values win.
        base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SYSTEMROOT") if k in os.environ}
        blank = {f"{p.upper()}_{s}": "" for p in PROVIDER_IDS for s in ("API_KEY", "BASE_URL")}
        env = {
            **base,
            **blank,
            **world.env,
            "HEALTH_PORT": str(self.health_port),
            "HEALTH_HOST": "127.0.0.1",
            "LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO / "bot.py"), *args],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    async def logged(self, pattern: str, timeout: float = STARTUP) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            self.check_alive()
            return re.search(pattern, self.log())

        return await eventually(found, timeout=timeout, description=f"{self.name}: {pattern!r}")

    async def health(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.health_port}/health") as resp,
        ):
            assert resp.status == 200
            return await resp.json()


def stop_all(processes: list[BotProcess]) -> None:
    """SIGTERM every process still running, then SIGKILL whatever has not exited."""
    for bot in processes:
        if bot.proc.poll() is None:
            bot.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for bot in processes:
        try:
            bot.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            bot.proc.kill()
            bot.proc.wait(5)
        # Shown by pytest only when the test failed.
        print(f"--- {bot.name} (exit {bot.proc.returncode}) ---\n{bot.tail(40)}")


async def leases(conn: asyncpg.Connection) -> dict[int, tuple[str | None, float | None]]:
    rows = await conn.fetch("SELECT id, lease_owner, lease_until FROM tasks ORDER BY id")
    return {r["id"]: (r["lease_owner"], r["lease_until"]) for r in rows}


async def test_two_shards_two_workers_and_a_worker_killed_mid_task(
    tmp_path: Path, postgres_database: str
) -> None:
    async with fresh_schema(postgres_database) as url:
        world = await build_world(
            tmp_path,
            start=False,
            shard_count=2,
            provider_ids=USED,
            env={"DATABASE_URL": url, "TASK_LEASE_SECONDS": str(LEASE)},
        )
        processes: list[BotProcess] = []
        conn = await asyncpg.connect(url)
        try:
            await _scenario(world, tmp_path, processes, conn)
        finally:
            await conn.close()
            stop_all(processes)
            await world.close()


async def _scenario(
    world: World, tmp_path: Path, processes: list[BotProcess], conn: asyncpg.Connection
) -> None:
    double = world.discord
    guilds = []  # (guild id, channel id, member id), guild i on shard i
    for shard in (0, 1):
        gid = double.add_guild(f"Shard {shard} server", shard_id=shard)
        assert (gid >> 22) % 2 == shard
        guilds.append((gid, double.add_channel(gid, "videos"), double.add_member(gid, "member")))
    world.env["DISCORD_GUILD_IDS"] = ",".join(str(g[0]) for g in guilds)
    gates: dict[str, Gate] = {}
    for pid in USED:
        # Every task is generated one second after its submit; its first status poll is
        # held (gates) until the test lets it through, so tasks sit mid-action in a worker.
        world.providers[pid].completion_delay = lambda _index: 1.0
        gates[pid] = gate_polls(world.providers[pid])

    def launch(name: str, *args: str) -> BotProcess:
        bot = BotProcess(name, list(args), world, tmp_path)
        processes.append(bot)  # listed at once: the caller's cleanup stops it whatever happens
        return bot

    gateways = [launch(f"shard{s}", "--shards", str(s), "--shard-count", "2") for s in (0, 1)]
    workers = [launch(f"worker{i}", "--worker") for i in (0, 1)]
    owners = {}
    for worker in workers:
        owners[(await worker.logged(_OWNER.pattern)).group(1)] = worker
        await worker.logged("running as worker")
    for gateway in gateways:
        await gateway.logged("connected as")  # on_ready: every shard of it identified
    for gid, _, _ in guilds:
        await double.wait_for(
            lambda gid=gid: double.commands(gid), timeout=STARTUP, description="commands synced"
        )

    # /animate in both guilds: the gateway process owning each guild's shard answers.
    interactions = []
    for (gid, channel_id, member), providers in zip(guilds, PLAN, strict=True):
        for n, pid in enumerate(providers):
            interactions.append(
                await double.invoke(
                    "animate",
                    guild_id=gid,
                    channel_id=channel_id,
                    user_id=member,
                    options={"prompt": f"clip {n} on {gid}", "provider": pid},
                )
            )
    tasks = [await started(world, ix) for ix in interactions]  # (thread id, task id)
    total = len(tasks)

    # Every task submitted once and its first poll held: each is in some worker's hands.
    await eventually(
        lambda: sum(g.calls for g in gates.values()) >= total,
        timeout=20,
        description="every task's first status poll to be held",
    )
    held = await leases(conn)
    assert len(held) == total
    assert all(owner in owners for owner, _ in held.values()), held

    # Renewal: the actions outlive their first lease; no worker may take another's
    # task meanwhile (it would poll it a second time) and the leases must move on.
    first_lapse = max(until for _, until in held.values() if until is not None)
    while time.time() < first_lapse + 0.5:
        assert sum(g.calls for g in gates.values()) == total, "a held task was claimed twice"
        await asyncio.sleep(0.05)
    renewed = await leases(conn)
    for task_id, (owner, until) in held.items():
        assert renewed[task_id][0] == owner, (task_id, held[task_id], renewed[task_id])
        assert renewed[task_id][1] > until, "the lease was not renewed"

    # SIGKILL a worker that holds tasks (the first one, if both do).
    by_owner = Counter(owner for owner, _ in renewed.values())
    in_order = sorted(owners, key=lambda o: workers.index(owners[o]))
    victim_owner = next(o for o in in_order if by_owner[o])
    victim = owners[victim_owner]
    survivor = next(w for w in workers if w is not victim)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(5)
    killed_at = time.time()
    orphaned = {i: until for i, (o, until) in (await leases(conn)).items() if o == victim_owner}
    assert orphaned, "the killed worker held no task"
    assert max(orphaned.values()) <= killed_at + LEASE + 0.1  # never more than one period
    for gate in gates.values():
        gate.release()

    # The survivor takes each orphaned task over once its lease lapsed, not before, and
    # within one lease period of the kill.
    taken_over: dict[int, float] = {}

    async def all_taken_over() -> bool:
        now = time.time()
        for task_id, (owner, _) in (await leases(conn)).items():
            if task_id in orphaned and task_id not in taken_over and owner != victim_owner:
                taken_over[task_id] = now
        return len(taken_over) == len(orphaned)

    await eventually(
        all_taken_over,
        timeout=killed_at + LEASE + TAKEOVER_SLACK - time.time(),
        description="the survivor to take over the killed worker's tasks",
    )
    for task_id, at in taken_over.items():
        assert at >= orphaned[task_id] - 0.05, f"task {task_id} taken before its lease lapsed"

    # Every task delivered, once, soon after: a video in its thread, none anywhere else.
    deadline = max(taken_over.values()) + DELIVERY_SLACK
    for thread_id, task_id in tasks:
        await video_lands(world, thread_id, task_id, timeout=max(0.1, deadline - time.time()))
    await eventually(
        lambda: conn.fetchval(
            "SELECT COUNT(*) = $1 FROM tasks WHERE delivered AND next_action_at IS NULL", total
        ),
        timeout=10,
        description="every task recorded as delivered",
    )
    rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM tasks")}
    for (gid, channel_id, _), providers in zip(guilds, PLAN, strict=True):
        for thread_id, task_id in tasks:
            if rows[task_id]["guild_id"] != gid:
                continue
            copies = finals(world, thread_id, task_id)
            assert len(copies) == 1, (task_id, [m.id for m in copies])
            assert finals(world, channel_id, task_id) == []  # no fallback copy either
            assert rows[task_id]["state"] == "succeeded"
            assert rows[task_id]["result_message_id"] == copies[0].id
        assert len([r for r in rows.values() if r["guild_id"] == gid]) == len(providers)
    # One submit per task: a takeover never re-submits.
    for pid in USED:
        expected = sum(plan.count(pid) for plan in PLAN)
        assert len(world.providers[pid].tasks) == expected, pid
    assert "no longer leased" not in survivor.log()

    # Roles: only the shard processes hold gateway sessions, one shard each, and they
    # claim no work; the workers never connected a gateway.
    sessions = double.sessions
    assert sorted((s.shard_id, s.shard_count) for s in sessions) == [(0, 2), (1, 2)]
    assert all(s.connected for s in sessions)
    for shard, gateway in enumerate(gateways):
        gateway.check_alive()
        health = await gateway.health()
        assert (health["role"], health["shards"]) == ("gateway", [shard])
        assert health["tasks_claimed_total"] == 0
    survivor_health = await survivor.health()
    assert survivor_health["role"] == "worker"
    assert survivor_health["tasks_claimed_total"] >= len(orphaned) * 2  # poll, deliver


# --- one process: a slow action keeps its lease ---------------------------------------------------
async def test_a_slow_action_keeps_its_lease(world_factory) -> None:
    """Without renewal a poll held past the lease would be claimed (and sent) again by
    the same poller; SQLite, so it runs everywhere."""
    world = await world_factory(provider_ids=("hiapi",), env={"TASK_LEASE_SECONDS": "1"})
    gate = gate_polls(world.providers["hiapi"])
    ix = await world.animate("alice", prompt="a slow answer", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await gate.wait_reached()
    store = world.bot.store

    async def lease() -> tuple[str, float]:
        async with store.db.execute(
            "SELECT lease_owner, lease_until FROM tasks WHERE id = ?", (task_id,)
        ) as cur:
            row = await cur.fetchone()
        return row[0], row[1]

    owner, first_until = await lease()
    assert owner == world.bot.poller.owner
    while time.time() < first_until + 0.5:  # a lease period goes by with the poll held
        assert gate.calls == 1, "the task was claimed again while its poll was in flight"
        await asyncio.sleep(0.05)
    still_owner, until = await lease()
    assert still_owner == owner and until > first_until
    gate.release()
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)
