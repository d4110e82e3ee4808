"""Process roles: gateway-only shard processes, REST-only workers, and the health endpoint."""

from __future__ import annotations

import json
import logging
import socket

import aiohttp
import pytest

from reelbot.ops.logs import JsonFormatter
from reelbot.ops.roles import WORKER, Role, parse_shards
from tests.helpers import started, video_lands

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_gateway_process_takes_commands_and_a_worker_delivers(world_factory) -> None:
    world = await world_factory(start=False)
    gateway = await world.start_process(Role(gateway=True, worker=False))
    worker = await world.start_process(WORKER)
    ix = await world.animate("alice", prompt="split roles", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    assert gateway.poller.claimed_total == 0  # the gateway never polls
    assert worker.poller.claimed_total >= 2  # submit, polls, delivery
    # The worker has no gateway connection: one session, the gateway process's.
    assert len([s for s in world.discord.sessions if s.connected]) == 1


async def test_each_shard_process_gets_only_its_guilds(world_factory) -> None:
    world = await world_factory(start=False, shard_count=2)
    other_guild = world.discord.add_guild("Second", shard_id=1)
    other_channel = world.discord.add_channel(other_guild, "clips")
    carol = world.discord.add_member(other_guild, "carol")
    world.env["DISCORD_GUILD_IDS"] = f"{world.guild_id},{other_guild}"
    first = await world.start_process(parse_shards("0", 2))
    second = await world.start_process(parse_shards("1", 2))
    await world.start_process(WORKER)
    guilds = [world.guild_id, other_guild]
    for shard, bot in enumerate((first, second)):
        expected = sorted(g for g in guilds if (g >> 22) % 2 == shard)
        assert sorted(g.id for g in bot.guilds) == expected
    assert other_guild in [g.id for g in second.guilds]

    ix = await world.discord.invoke(
        "animate",
        guild_id=other_guild,
        channel_id=other_channel,
        user_id=carol,
        options={"prompt": "from shard one", "provider": "foxapi"},
    )
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)


def test_shard_arguments_are_validated() -> None:
    assert parse_shards("1,0", 4) == Role(
        gateway=True, worker=False, shard_ids=(0, 1), shard_count=4
    )
    for spec, count in (("0,x", 2), ("", 2), ("0", None), ("4", 4)):
        with pytest.raises(ValueError):
            parse_shards(spec, count)


async def test_health_endpoint_reports_role_and_work(world_factory) -> None:
    port = free_port()
    await world_factory(env={"HEALTH_PORT": str(port)})
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/health") as resp,
    ):
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok" and body["role"] == "all-in-one"
    assert body["shards"] is None and body["tasks_in_hand"] == 0
    assert isinstance(body["loop_lag_ms"], float)
    # Each configured provider's state (SPEC §4 "Failover"), from the shared store.
    assert set(body["providers"]) == {"higgsfield", "higgsfield_feed", "hiapi", "foxapi", "gptge"}
    assert {p["state"] for p in body["providers"].values()} == {"up"}


def test_json_logs_carry_task_context() -> None:
    record = logging.LogRecord(
        "reelbot.jobs.poller", logging.INFO, __file__, 1, "task %s submitted", (42,), None
    )
    record.task_id, record.provider, record.guild_id, record.role = 42, "hiapi", 7, "worker"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "task 42 submitted"
    assert (entry["task_id"], entry["provider"], entry["guild_id"], entry["role"]) == (
        42,
        "hiapi",
        7,
        "worker",
    )
