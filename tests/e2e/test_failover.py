"""Failover (SPEC §4, issue 16), through the doubles: a request that named no provider
goes to the next provider of FAILOVER_PROVIDERS when its own is out of credits, down
or unreachable, charged once at the new provider's price; a request that named its
provider is never moved; a down provider is skipped until one probe brings it back;
an ambiguous submit is never failed over."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from doubles.harness import World, build_world, free_port
from reelbot.ops.roles import WORKER, Role
from tests.helpers import (
    bot_reacted,
    eventually,
    final_message,
    started,
    status_shows,
    video_lands,
)
from tests.pg import fresh_schema

pytestmark = pytest.mark.timeout(60)

FAILOVER = {
    "DEFAULT_PROVIDER": "hiapi",
    "FAILOVER_PROVIDERS": "foxapi,gptge",
    "POLL_INTERVAL_SECONDS": "0.05",
    "POLL_MAX_INTERVAL_SECONDS": "0.05",
    "PROVIDER_COOLOFF_SECONDS": "60",
}


@pytest.fixture
async def world(tmp_path: Path):
    w = await build_world(tmp_path, env=FAILOVER)
    try:
        yield w
    finally:
        await w.close()


async def used(world: World, user: str = "alice") -> int:
    assert world.bot is not None
    status = await world.bot.store.quota_status(
        world.guild_id, world.users[user], now=time.time(), default_limit=10
    )
    return status.used


async def health(world: World, pid: str):
    assert world.bot is not None
    return (await world.bot.store.provider_health()).get(pid)


async def providers_text(world: World) -> str:
    ix = await world.command("providers", "bob")
    content = await ix.wait_for_content(lambda c: bool(c) and "providers" in c.lower())
    return content if isinstance(content, str) else ix.response_content


async def test_hiapi_out_of_credits_sends_an_unnamed_request_to_foxapi_at_its_price(
    world: World,
) -> None:
    assert world.bot is not None
    await world.bot.store.set_entry(world.guild_id, "price", "foxapi", 3)
    hiapi, foxapi = world.providers["hiapi"], world.providers["foxapi"]
    hiapi.fail_next_submit(402, times=20)
    thread_id, task_id = await started(world, await world.animate("alice", prompt="a red fox"))
    await video_lands(world, thread_id, task_id)
    await status_shows(
        world, thread_id, task_id, "hiapi is unavailable: sent to foxapi (hiapi is out of credits)"
    )
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.provider == "foxapi" and task.quota_weight == 3
    assert await used(world) == 3, "charged once, at foxapi's price"
    assert hiapi.created_ids() == [] and len(foxapi.created_ids()) == 1
    h = await health(world, "hiapi")
    assert h is not None and h.down and h.out_of_credits
    shown = await providers_text(world)
    assert "hiapi" in shown and "down since" in shown and "out of credits" in shown
    assert "top up" in shown


async def test_a_request_naming_hiapi_is_not_moved(world: World) -> None:
    hiapi, foxapi = world.providers["hiapi"], world.providers["foxapi"]
    hiapi.fail_next_submit(402, times=20)
    ix = await world.animate("alice", prompt="a red fox", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    assert not final.attachments
    assert "providers that are up" in final.content and "foxapi" in final.content
    assert foxapi.created_ids() == [] and hiapi.created_ids() == []
    assert await used(world) == 0, "the quota came back"
    # Now hiapi is down: a request naming it is refused before anything is stored.
    again = await world.animate("alice", prompt="a red fox", provider="hiapi")
    text = await again.wait_for_content(lambda c: bool(c))
    text = text if isinstance(text, str) else again.response_content
    assert again.ephemeral and "down since" in text and "`foxapi`" in text, text
    assert foxapi.created_ids() == [] and hiapi.created_ids() == []


async def test_after_the_threshold_hiapi_is_skipped_and_one_probe_brings_it_back(
    tmp_path: Path,
) -> None:
    world = await build_world(tmp_path, env=FAILOVER | {"PROVIDER_COOLOFF_SECONDS": "4"})
    try:
        assert world.bot is not None
        hiapi, foxapi = world.providers["hiapi"], world.providers["foxapi"]
        hiapi.fail_next_submit(401, times=3)  # refused: a bad key, three times in a row
        for n in range(3):
            ix = await world.animate("alice", prompt=f"try {n}", provider="hiapi")
            thread_id, task_id = await started(world, ix)
            await final_message(world, thread_id, task_id)
        assert (await health(world, "hiapi")).down
        sent = hiapi.request_count
        # Down: a request without a provider skips hiapi without sending to it.
        thread_id, task_id = await started(world, await world.animate("alice", prompt="skip"))
        await video_lands(world, thread_id, task_id)
        await status_shows(world, thread_id, task_id, "hiapi is unavailable: sent to foxapi")
        assert hiapi.request_count == sent and len(foxapi.created_ids()) == 1
        # The double has recovered; after the cool-off, one probe brings hiapi back.
        h = await health(world, "hiapi")
        await eventually(lambda: time.time() >= h.retry_at, description="the cool-off ends")
        thread_id, task_id = await started(world, await world.animate("alice", prompt="probe"))
        await video_lands(world, thread_id, task_id)
        task = await world.bot.store.get_task(task_id)
        assert task is not None and task.provider == "hiapi" and "failover" not in task.request
        assert len(hiapi.created_ids()) == 1
        assert not (await health(world, "hiapi")).down
    finally:
        await world.close()


async def test_a_connection_refused_provider_fails_over(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    world = await build_world(tmp_path, env=FAILOVER | {"HIAPI_BASE_URL": closed})
    try:
        thread_id, task_id = await started(world, await world.animate("alice", prompt="fox"))
        await video_lands(world, thread_id, task_id)
        await status_shows(world, thread_id, task_id, "hiapi is unavailable: sent to foxapi")
        assert len(world.providers["foxapi"].created_ids()) == 1
        assert await used(world) == 1
    finally:
        await world.close()


async def test_an_ambiguous_submit_is_never_failed_over(tmp_path: Path) -> None:
    env = FAILOVER | {"DEFAULT_PROVIDER": "foxapi", "FAILOVER_PROVIDERS": "gptge,hiapi"}
    world = await build_world(tmp_path, env=env)
    try:
        foxapi = world.providers["foxapi"]
        foxapi.after_create("bad_gateway")  # created (and billed), then a proxy's 502
        world.allow_orphans("foxapi")  # it made the video; the bot rightly never asks
        thread_id, task_id = await started(world, await world.animate("alice", prompt="fox"))
        final = await final_message(world, thread_id, task_id)
        assert "may still have made" in final.content.lower(), final.content
        assert len(foxapi.created_ids()) == 1
        assert world.providers["gptge"].created_ids() == []
        assert world.providers["hiapi"].created_ids() == []
        assert await used(world) == 0
    finally:
        await world.close()


@pytest.fixture
async def postgres_url(postgres_database: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres_database) as url:
        yield url


async def test_two_processes_on_postgres_agree_on_a_providers_state(
    postgres_url: str, world_factory
) -> None:
    world = await world_factory(start=False, env=FAILOVER | {"DATABASE_URL": postgres_url})
    gateway = await world.start_process(Role(gateway=True, worker=False))
    worker = await world.start_process(WORKER)
    world.providers["hiapi"].fail_next_submit(402, times=20)
    thread_id, task_id = await started(world, await world.animate("alice", prompt="a heron"))
    await video_lands(world, thread_id, task_id)
    # The worker saw the 402; the gateway process, which sent nothing, knows it too.
    assert (await worker.health_book.down("hiapi", fresh=True)) is not None
    assert (await gateway.health_book.down("hiapi", fresh=True)) is not None
    shown = await providers_text(world)
    assert "down since" in shown and "out of credits" in shown
    ix = await world.animate("alice", prompt="a heron", provider="hiapi")
    text = await ix.wait_for_content(lambda c: bool(c))
    text = text if isinstance(text, str) else ix.response_content
    assert ix.ephemeral and "down since" in text, text
    assert world.providers["hiapi"].created_ids() == []


async def test_a_move_that_does_not_fit_the_members_limit_fails_clearly(world: World) -> None:
    assert world.bot is not None
    await world.bot.store.set_entry(world.guild_id, "price", "foxapi", 20)  # DAILY_QUOTA 10
    await world.bot.store.set_entry(world.guild_id, "price", "gptge", 20)
    world.providers["hiapi"].fail_next_submit(402, times=5)
    thread_id, task_id = await started(world, await world.animate("alice", prompt="a red fox"))
    final = await final_message(world, thread_id, task_id)
    assert not final.attachments
    assert "would pass your daily credit limit" in final.content, final.content
    assert await used(world) == 0, "nothing charged in the end"
    assert world.providers["foxapi"].created_ids() == []


async def test_a_rerun_of_a_moved_request_runs_where_it_ended_up(world: World) -> None:
    world.providers["hiapi"].fail_next_submit(402, times=1)
    thread_id, task_id = await started(world, await world.animate("alice", prompt="a red fox"))
    final = await video_lands(world, thread_id, task_id)
    await bot_reacted(world, final)
    await world.discord.add_reaction(thread_id, final.id, world.users["alice"], "🔁")
    assert world.bot is not None

    async def rerun():
        tasks = await world.bot.store.user_tasks(world.guild_id, world.users["alice"], limit=5)
        return next((t for t in tasks if t.retry_of == task_id and t.delivered), None)

    again = await eventually(rerun, description="the re-run delivered")
    assert again.provider == "foxapi" and "failover" not in again.request
    assert again.request["provider_chosen"] is False
