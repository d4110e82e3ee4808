"""The real bot on PostgreSQL: all in one process, and split into a gateway process and
two workers sharing the database (leases, SKIP LOCKED claiming, LISTEN/NOTIFY wake-ups).

Skipped, saying why, where no PostgreSQL server can be had (see tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from doubles.harness import free_port
from reelbot.ops.roles import WORKER, Role
from tests.helpers import (
    assert_exactly_once,
    eventually,
    finals,
    finish,
    hold,
    started,
    video_lands,
)
from tests.pg import fresh_schema

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def postgres_url(postgres_database: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres_database) as url:
        yield url


# postgres_url comes first: set up first, torn down last, so the World's teardown (the
# double-billing check reads the store) still finds its schema.
async def test_the_bot_delivers_on_postgres(postgres_url: str, world_factory) -> None:
    world = await world_factory(env={"DATABASE_URL": postgres_url})
    assert world.bot.store.single_process is False
    ix = await world.animate("alice", prompt="a heron on postgres", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


async def test_a_gateway_and_two_workers_deliver_every_task_exactly_once(
    postgres_url: str, world_factory
) -> None:
    world = await world_factory(start=False, env={"DATABASE_URL": postgres_url})
    gateway = await world.start_process(Role(gateway=True, worker=False))
    workers = [await world.start_process(WORKER) for _ in range(2)]
    started_tasks = []
    for n in range(4):
        ix = await world.animate("alice", prompt=f"clip {n}", provider="hiapi")
        started_tasks.append(await started(world, ix))
    for thread_id, task_id in started_tasks:
        await video_lands(world, thread_id, task_id)
    for thread_id, task_id in started_tasks:
        assert len(finals(world, thread_id, task_id)) == 1

        # The store records the delivery just after Discord accepted the message.
        async def recorded(task_id: int = task_id) -> bool:
            task = await gateway.store.get_task(task_id)
            return task is not None and task.delivered

        await eventually(recorded, description=f"task {task_id} recorded as delivered")
    assert gateway.poller.claimed_total == 0
    assert sum(w.poller.claimed_total for w in workers) >= 4 * 3  # submit, poll, deliver


async def test_a_callback_to_a_gateway_process_wakes_the_worker_through_notify(
    postgres_url: str, world_factory
) -> None:
    """SPEC §6 on PostgreSQL: the callback reaches a process that does not poll; the
    store makes the task due and its NOTIFY wakes the worker, long before the sparse
    safety-net poll (30 s here)."""
    world = await world_factory(
        start=False,
        callbacks=True,
        env={
            "DATABASE_URL": postgres_url,
            "POLL_INTERVAL_SECONDS": "0.05",
            "POLL_MAX_INTERVAL_SECONDS": "30",
        },
    )
    gateway = await world.start_process(Role(gateway=True, worker=False))
    worker = await world.start_process(WORKER, WEBHOOK_PORT=str(free_port()))
    assert gateway.callbacks is not None and worker.callbacks is not None
    double = world.providers["hiapi"]
    hold(double)
    ix = await world.animate("alice", prompt="a heron called back", provider="hiapi")
    thread_id, task_id = await started(world, ix)

    async def submit_recorded() -> bool:
        # Never polled yet: with a callback coming, the first poll is the safety net's.
        task = await gateway.store.get_task(task_id)
        return task is not None and task.provider_task_id is not None and task.attempts == 0

    await eventually(submit_recorded, description="the submit")
    finish(double)
    await video_lands(world, thread_id, task_id)
    assert gateway.callbacks.received == 1 and worker.callbacks.received == 0
    assert gateway.poller.claimed_total == 0


async def test_settings_and_the_server_budget_on_postgres(postgres_url: str, world_factory) -> None:
    """/settings and spending on the PostgreSQL backend: a banned word, a role limit and
    20 concurrent requests at the edge of the server budget (exactly the budget passes)."""
    import asyncio

    from tests.helpers import refused

    world = await world_factory(env={"DATABASE_URL": postgres_url})
    await refused(await world.command("settings banned-words add", "mod", words="gore"), "1 new")
    await refused(await world.animate("alice", prompt="Gore!", provider="foxapi"), "does not allow")
    vip = world.discord.add_role(world.guild_id, "VIP")
    world.users["vera"] = world.discord.add_member(world.guild_id, "vera", roles=[vip])
    await refused(await world.command("quota role", "mod", role=vip, limit=0), "VIP")
    await refused(await world.command("quota server", "mod", limit=6), "6 credits")
    ixs = await asyncio.gather(
        *(world.animate(u, prompt=f"pg {i}", provider="foxapi") for i, u in
          enumerate(["vera", "alice", "bob", "mod"] * 5))
    )  # fmt: skip
    texts = []
    for ix in ixs:
        await ix.wait_for_content(lambda c: bool(c), timeout=30)
        texts.append(ix.response_content)
    assert sum("On it" in t for t in texts) == 6, texts
    assert sum("this server has used 6 of its 6" in t.lower() for t in texts) == 14, texts
    shown = await refused(await world.command("quota show", "vera"), "VIP")
    assert "unlimited" in shown or "no daily limit" in shown
