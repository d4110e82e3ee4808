"""Quotas, moderators, 🔁 re-runs, ❌ cancels and /jobs, through the real client."""

from __future__ import annotations

import asyncio
import time

import pytest

from doubles.harness import World
from doubles.providers import Step
from tests.helpers import (
    bot_reacted,
    final_message,
    finals,
    refused,
    started,
    status_message,
    status_shows,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)


async def run_one(world: World, user: str = "alice", **options) -> tuple[int, int]:
    options.setdefault("provider", "hiapi")
    options.setdefault("prompt", "a small test clip")
    ix = await world.animate(user, **options)
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    await bot_reacted(world, final)
    return thread_id, task_id


async def used_today(world: World, user: str) -> int:
    assert world.bot is not None
    status = await world.bot.store.quota_status(
        world.guild_id, world.users[user], now=time.time(), default_limit=10
    )
    return status.used


# --- quotas ------------------------------------------------------------------------------
async def test_over_quota_is_refused_then_a_moderator_raises_the_limit(world: World) -> None:
    await refused(await world.command("quota default", "mod", limit=1), "1 credit per day")
    await run_one(world, "alice")
    hiapi = world.providers["hiapi"]
    submitted = len(hiapi.submissions)

    text = await refused(
        await world.animate("alice", prompt="one more", provider="hiapi"), "used 1 of your 1"
    )
    assert "resets" in text.lower()
    assert len(hiapi.submissions) == submitted  # nothing reached the provider

    await refused(
        await world.command("quota set", "mod", user=world.users["alice"], limit=3),
        "3 credits per day",
    )
    await run_one(world, "alice", prompt="allowed now")
    show = await refused(await world.command("quota show", "alice"), "used **2**")
    assert "limit of 3" in show and "user setting" in show


async def test_concurrent_submissions_at_the_limit_only_one_passes(world: World) -> None:
    await refused(
        await world.command("quota set", "admin", user=world.users["bob"], limit=1),
        "1 credit per day",
    )
    interactions = await asyncio.gather(
        *(world.animate("bob", prompt=f"race {i}", provider="foxapi") for i in range(4))
    )
    texts = []
    for ix in interactions:
        await ix.wait_for_content(lambda c: bool(c), timeout=20)
        texts.append(ix.response_content)
    assert sum("On it" in t for t in texts) == 1, texts
    assert sum("used 1 of your 1" in t for t in texts) == 3, texts
    assert await used_today(world, "bob") == 1


async def test_quota_reset_and_show_for_moderators(world: World) -> None:
    await run_one(world, "alice")
    assert await used_today(world, "alice") == 1
    await refused(await world.command("quota reset", "mod", user=world.users["alice"]), "was 1")
    assert await used_today(world, "alice") == 0
    shown = await refused(
        await world.command("quota show", "mod", user=world.users["alice"]), "has used **0**"
    )
    assert "limit of 10" in shown
    entries = await world.bot.store.audit_entries(world.guild_id)
    assert [e["action"] for e in entries] == ["quota_reset"]
    assert entries[0]["actor_id"] == world.users["mod"]
    assert entries[0]["target_id"] == world.users["alice"]


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("quota set", {"user": "bob", "limit": 50}),
        ("quota default", {"limit": 50}),
        ("quota reset", {"user": "bob"}),
        ("quota show", {"user": "bob"}),
    ],
)
async def test_non_moderators_are_refused_every_moderator_command(
    world: World, command: str, options: dict
) -> None:
    resolved = {k: world.users[v] if k == "user" else v for k, v in options.items()}
    await refused(await world.command(command, "alice", **resolved), "only moderators")
    assert await world.bot.store.audit_entries(world.guild_id) == []
    status = await world.bot.store.quota_status(
        world.guild_id, world.users["bob"], now=time.time(), default_limit=10
    )
    assert (status.limit, status.source) == (10, "default")


async def test_cooldown_and_in_flight_cap(world_factory) -> None:
    world = await world_factory(env={"USER_COOLDOWN_SECONDS": "600"})
    await run_one(world, "alice")
    await refused(await world.animate("alice", prompt="again", provider="hiapi"), "slow down")
    # Moderators are not held back by the cooldown.
    await run_one(world, "mod")
    await run_one(world, "mod")

    capped = await world_factory(env={"MAX_USER_IN_FLIGHT": "1"})
    capped.providers["gptge"].script_next([Step.queued(polls=10_000)])
    ix = await capped.animate("alice", prompt="slow one", provider="gptge")
    await started(capped, ix)
    await refused(
        await capped.animate("alice", prompt="second", provider="gptge"),
        "already have 1 generations running",
    )


# --- 🔁 -----------------------------------------------------------------------------------
async def react_and_wait_for_new_task(
    world: World, thread_id: int, message_id: int, user: str, task_id: int
) -> int:
    await world.discord.add_reaction(thread_id, message_id, world.users[user], "🔁")
    new_id = task_id + 1
    await video_lands(world, thread_id, new_id)
    return new_id


@pytest.mark.parametrize("who", ["alice", "mod"])
async def test_retry_by_requester_or_moderator_runs_again_in_the_same_thread(
    world: World, who: str
) -> None:
    thread_id, task_id = await run_one(world, "alice", prompt="run me twice")
    final = finals(world, thread_id, task_id)[0]
    new_id = await react_and_wait_for_new_task(world, thread_id, final.id, who, task_id)
    new_task = await world.bot.store.get_task(new_id)
    assert new_task is not None
    assert new_task.requester_id == world.users["alice"]  # counts against the requester
    assert new_task.retry_of == task_id and new_task.thread_id == thread_id
    assert new_task.request["prompt"] == "run me twice"
    assert await used_today(world, "alice") == 2
    assert len(world.providers["hiapi"].submissions) == 2


async def test_a_strangers_retry_does_nothing(world: World) -> None:
    thread_id, task_id = await run_one(world, "alice")
    final = finals(world, thread_id, task_id)[0]
    bob = world.users["bob"]
    await world.discord.add_reaction(thread_id, final.id, bob, "🔁")
    # The bot removes the stranger's reaction; no task is created.
    await world.discord.wait_for(
        lambda: bob not in final.reactions.get("🔁", set()), description="stranger's 🔁 removed"
    )
    assert len(world.providers["hiapi"].submissions) == 1
    assert await world.bot.store.get_task(task_id + 1) is None


async def test_a_duplicated_reaction_event_submits_once(world: World) -> None:
    thread_id, task_id = await run_one(world, "alice")
    final = finals(world, thread_id, task_id)[0]
    alice = world.users["alice"]
    await asyncio.gather(
        world.discord.add_reaction(thread_id, final.id, alice, "🔁"),
        world.discord.add_reaction(thread_id, final.id, alice, "🔁"),
    )
    await video_lands(world, thread_id, task_id + 1)
    # Let a second task (if any) show its status message: wait on the first's delivery.
    await bot_reacted(world, finals(world, thread_id, task_id + 1)[0])
    assert await world.bot.store.get_task(task_id + 2) is None
    assert len(world.providers["hiapi"].submissions) == 2


async def test_retry_of_a_failure_works_days_later_without_the_old_attachment_url(
    world: World,
) -> None:
    from doubles.harness import input_png

    feed = world.providers["higgsfield_feed"]
    feed.script_next([Step.fail(code="failed", message="Generation failed")])
    ix = await world.animate("alice", prompt="punch", provider="higgsfield_feed", image=input_png())
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    await bot_reacted(world, final)
    world.discord.expire_attachment_urls()
    await world.discord.add_reaction(thread_id, final.id, world.users["alice"], "🔁")
    await video_lands(world, thread_id, task_id + 1)
    first, second = feed.submissions[0]["json"]["image"], feed.submissions[1]["json"]["image"]
    assert first and second and second != first  # a fresh URL (or inline data), not the old one


# --- ❌ -----------------------------------------------------------------------------------
async def test_cancel_by_the_requester_stops_the_task_and_gives_quota_back(
    world: World,
) -> None:
    world.providers["foxapi"].script_next([Step.running(10, polls=10_000)])
    ix = await world.animate("alice", prompt="never mind", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    status = await status_shows(world, thread_id, task_id, "Task #")
    await world.discord.wait_for(lambda: world.providers["foxapi"].submissions)
    await world.discord.add_reaction(thread_id, status.id, world.users["alice"], "❌")
    final = await final_message(world, thread_id, task_id)
    assert "cancelled" in final.content
    await status_shows(world, thread_id, task_id, "🚫 Cancelled")
    assert await used_today(world, "alice") == 0
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.state == "cancelled"


async def test_a_strangers_cancel_is_ignored_and_a_moderators_is_audited(world: World) -> None:
    world.providers["foxapi"].script_next([Step.running(10, polls=10_000)])
    ix = await world.animate("alice", prompt="keep going", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    status = status_message(world, thread_id, task_id)
    await world.discord.add_reaction(thread_id, status.id, world.users["bob"], "❌")
    bob = world.users["bob"]
    await world.discord.wait_for(lambda: bob not in status.reactions.get("❌", set()))
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.in_flight

    await world.discord.add_reaction(thread_id, status.id, world.users["mod"], "❌")
    final = await final_message(world, thread_id, task_id)
    assert f"<@{world.users['alice']}>" in final.content
    [entry] = await world.bot.store.audit_entries(world.guild_id)
    assert (entry["action"], entry["actor_id"]) == ("cancel", world.users["mod"])


# --- /jobs --------------------------------------------------------------------------------
async def test_jobs_shows_own_tasks_and_moderators_see_the_guild(world: World) -> None:
    await run_one(world, "alice", prompt="alice's clip")
    await run_one(world, "bob", prompt="bob's clip")
    mine = await refused(await world.command("jobs", "alice"), "your tasks")
    assert "alice's clip" in mine and "bob's clip" not in mine
    assert f"https://discord.com/channels/{world.guild_id}/" in mine
    everyone = await refused(await world.command("jobs", "mod"), "this server's tasks")
    assert "alice's clip" in everyone and "bob's clip" in everyone
    admin_view = await refused(await world.command("jobs", "admin"), "this server's tasks")
    assert "alice's clip" in admin_view  # Manage Server makes a moderator too
