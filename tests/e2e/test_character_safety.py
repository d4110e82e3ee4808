"""Characters that went away, trainings that outlive them, hostile zips, races (issue 11).

Everything goes through the real bot: slash commands and reactions injected into the
Discord double, Soul ID trainings answered by the Higgsfield double.
"""

from __future__ import annotations

import asyncio
import io
import time
import tracemalloc
import zipfile

import pytest

import reelbot.characters.photos as photos_module
from doubles.harness import World
from doubles.providers import Step
from tests.e2e.test_characters import create, png, post_photos, train_until_ready
from tests.helpers import (
    TIMEOUT,
    bot_messages,
    eventually,
    final_message,
    finals,
    gate_submits,
    refused,
    started,
    status_message,
    video_lands,
)

pytestmark = pytest.mark.timeout(90)


async def ready_character(world: World, user: str, name: str, seed: int) -> int:
    thread_id = await create(world, user, name)
    await post_photos(world, thread_id, user, [png(seed + i) for i in range(20)])
    await train_until_ready(world, user, name, thread_id)
    return thread_id


async def character_named(world: World, name: str):
    found = [c for c in await world.bot.store.guild_characters(world.guild_id) if c.name == name]
    assert len(found) == 1, found
    return found[0]


async def used_today(world: World, user: str) -> int:
    status = await world.bot.store.quota_status(
        world.guild_id, world.users[user], now=time.time(), default_limit=10
    )
    return status.used


def soul_requests(world: World, method: str, suffix: str = "") -> list[tuple]:
    return [
        r
        for r in world.providers["higgsfield"].requests
        if r[0] == method and "/soul/" in r[1] and r[1].endswith(suffix)
    ]


async def notice(world: World, channel_id: int, needle: str):
    return await world.discord.wait_for(
        lambda: next((m for m in bot_messages(world, channel_id) if needle in m.content), None),
        timeout=TIMEOUT,
        description=f"a notice containing {needle!r}",
    )


# --- 3. 🔁 re-resolves the character for the requester -------------------------------------
async def shared_video(world: World) -> tuple[int, int]:
    """alice's character Cy, shared by a moderator; bob made a video with it."""
    await ready_character(world, "alice", "Cy", 600)
    await refused(await world.command("character share", "mod", name="Cy"), "everyone here")
    ix = await world.animate("bob", prompt="Cy dances", character="Cy")
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    return thread_id, task_id


async def test_rerun_after_the_owner_deleted_the_character_is_refused(world: World) -> None:
    thread_id, task_id = await shared_video(world)
    double = world.providers["higgsfield"]
    submitted = len(double.submissions)
    await refused(await world.command("character delete", "alice", name="Cy"), "deleted")

    final = finals(world, thread_id, task_id)[0]
    await world.discord.add_reaction(thread_id, final.id, world.users["bob"], "🔁")
    text = (await notice(world, thread_id, "can't run task")).content
    assert "Cy" in text and "no longer" in text
    assert await world.bot.store.get_task(task_id + 1) is None
    assert len(double.submissions) == submitted  # the deleted model id was never sent
    assert await used_today(world, "bob") == 1


async def test_rerun_after_the_character_was_unshared_is_refused(world: World) -> None:
    thread_id, task_id = await shared_video(world)
    cy = await character_named(world, "Cy")
    await world.bot.store.update_character(cy.id, shared=False)  # no /character unshare yet

    final = finals(world, thread_id, task_id)[0]
    await world.discord.add_reaction(thread_id, final.id, world.users["bob"], "🔁")
    await notice(world, thread_id, "can't run task")
    assert await world.bot.store.get_task(task_id + 1) is None
    # The owner's own re-run of a video with her character still works.
    ix = await world.animate("alice", prompt="Cy bows", character="Cy")
    thread2, own_task = await started(world, ix)
    own_final = await video_lands(world, thread2, own_task)

    async def recorded() -> bool:  # 🔁 finds its task by the recorded final message
        task = await world.bot.store.get_task(own_task)
        return bool(task and task.result_message_id == own_final.id)

    await eventually(recorded, description="the final message recorded")
    await world.discord.add_reaction(thread2, own_final.id, world.users["alice"], "🔁")
    rerun = await eventually(
        lambda: world.bot.store.get_task(own_task + 1), description="alice's re-run"
    )
    await video_lands(world, thread2, rerun.id)
    assert rerun.request["character_model_id"] == cy.provider_model_id
    assert world.providers["higgsfield"].submissions[-1]["json"]["model_id"] == (
        cy.provider_model_id
    )


async def test_rerun_of_a_video_recorded_without_the_character_id_finds_it_by_model(
    world: World,
) -> None:
    """Tasks stored before re-runs kept the character's id: its model id names it."""
    thread_id, task_id = await shared_video(world)
    task = await world.bot.store.get_task(task_id)
    assert task is not None
    legacy = {k: v for k, v in task.request.items() if k != "character_id"}
    await world.bot.store.update_task(task_id, request=legacy)
    final = finals(world, thread_id, task_id)[0]
    await world.discord.add_reaction(thread_id, final.id, world.users["bob"], "🔁")
    await video_lands(world, thread_id, task_id + 1)

    await refused(await world.command("character delete", "alice", name="Cy"), "deleted")
    await world.discord.add_reaction(thread_id, final.id, world.users["mod"], "🔁")
    text = (await notice(world, thread_id, "can't run task")).content
    assert "no longer exists" in text
    assert await world.bot.store.get_task(task_id + 2) is None


async def test_character_use_is_checked_in_the_same_transaction_as_the_task(
    world: World,
) -> None:
    """A character deleted between the check and the insert: the store refuses."""
    from reelbot.store.models import NewTask, QuotaPolicy, SubmissionRefused

    await ready_character(world, "alice", "Dot", 650)
    dot = await character_named(world, "Dot")
    await world.bot.store.delete_character(dot.id)
    with pytest.raises(SubmissionRefused, match="no longer exists"):
        await world.bot.store.create_task(
            NewTask(
                provider="higgsfield",
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                requester_id=world.users["alice"],
                request={"prompt": "x", "character_id": dot.id},
                poll_interval=1.0,
                character_id=dot.id,
            ),
            now=time.time(),
            policy=QuotaPolicy(default_limit=10),
        )
    assert await used_today(world, "alice") == world.config.character_training_weight


# --- 4. trainings do not keep running at the provider ----------------------------------------
async def training_in_progress(world: World, name: str, seed: int) -> tuple[int, int, str]:
    """A training the provider keeps running; (thread, task id, provider model id)."""
    double = world.providers["higgsfield"]
    double.script_next_training([Step.queued(), Step.running(polls=100_000)])
    thread_id = await create(world, "alice", name)
    await post_photos(world, thread_id, "alice", [png(seed + i) for i in range(20)])
    ix = await world.command("character train", "alice", name=name)
    text = await ix.wait_for_content("Training", timeout=TIMEOUT)
    task_id = int(text.split("task #")[1].split(")")[0])

    async def model_id() -> str | None:
        task = await world.bot.store.get_task(task_id)
        return task.provider_task_id if task and task.state in ("queued", "running") else None

    return thread_id, task_id, await eventually(model_id, description="training submitted")


async def test_deleting_a_character_while_it_trains_deletes_the_provider_model(
    world: World,
) -> None:
    _, task_id, model_id = await training_in_progress(world, "Gil", 700)
    ix = await world.command("character delete", "alice", name="Gil")
    text = await ix.wait_for_content("Deleted", timeout=TIMEOUT)
    assert "provider's model" in text
    assert soul_requests(world, "DELETE", f"/soul/models/{model_id}")
    assert world.providers["higgsfield"].trainings[model_id].deleted
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.state == "cancelled"

    async def refunded() -> bool:
        return await used_today(world, "alice") == 0

    await eventually(refunded, description="the training's quota given back")


async def test_cancelling_a_training_with_x_deletes_the_provider_model(world: World) -> None:
    thread_id, task_id, model_id = await training_in_progress(world, "Hal", 800)
    status = status_message(world, thread_id, task_id)
    await world.discord.add_reaction(thread_id, status.id, world.users["alice"], "❌")
    final = await final_message(world, thread_id, task_id)
    assert "cancelled" in final.content
    await eventually(
        lambda: soul_requests(world, "DELETE", f"/soul/models/{model_id}"),
        description="DELETE of the training's model",
    )
    assert world.providers["higgsfield"].trainings[model_id].deleted
    hal = await character_named(world, "Hal")
    assert hal.state == "failed" and hal.provider_model_id is None
    assert await used_today(world, "alice") == 0
    # Cancelled, it can be trained again.
    world.providers["higgsfield"].script_next_training([Step.succeed()])
    await train_until_ready(world, "alice", "Hal", thread_id)


async def test_a_training_that_lands_for_a_deleted_character_deletes_the_model(
    world: World,
) -> None:
    """Deleted while the training request is at the provider (no model id known yet)."""
    double = world.providers["higgsfield"]
    gate = gate_submits(double)
    thread_id = await create(world, "alice", "Ivy")
    await post_photos(world, thread_id, "alice", [png(900 + i) for i in range(20)])
    ix = await world.command("character train", "alice", name="Ivy")
    await ix.wait_for_content("Training", timeout=TIMEOUT)
    await gate.wait_reached()
    ix = await world.command("character delete", "alice", name="Ivy")
    await ix.wait_for_content("Deleted", timeout=TIMEOUT)
    gate.release()
    [training] = await eventually(lambda: list(double.trainings.values()), description="model")
    await eventually(
        lambda: soul_requests(world, "DELETE", f"/soul/models/{training.id}"),
        description="DELETE of the orphaned model",
    )
    assert training.deleted
    assert await used_today(world, "alice") == 0


# --- 5. zips ----------------------------------------------------------------------------------
def zipped(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buf.getvalue()


async def post_zip(world: World, thread_id: int, data: bytes, name: str = "photos.zip") -> None:
    await world.discord.post_user_message(
        thread_id, world.users["alice"], "", attachments=[(name, data, "application/zip")]
    )


async def test_a_zip_that_inflates_past_the_total_cap_is_refused_unopened(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(photos_module, "MAX_ZIP_UNPACKED_BYTES", 8 * 1024 * 1024)
    thread_id = await create(world, "alice", "Jo")
    bomb = zipped([(f"{i}.png", png(i) + bytes(3 * 1024 * 1024)) for i in range(3)])
    assert len(bomb) < 100_000
    await post_zip(world, thread_id, bomb)
    reply = await notice(world, thread_id, "Got ")
    assert "photos.zip" in reply.content and "unpacks to" in reply.content
    assert "0 new photo" in reply.content
    assert await world.bot.store.character_images((await character_named(world, "Jo")).id) == []


async def test_a_zip_listing_too_many_files_is_refused_unopened(world: World) -> None:
    thread_id = await create(world, "alice", "Nan")
    await post_zip(world, thread_id, zipped([(f"{i}.txt", b"") for i in range(600)]))
    reply = await notice(world, thread_id, "Got ")
    assert "lists 600 files" in reply.content and "at most 500" in reply.content


async def test_a_zip_is_inflated_one_entry_at_a_time(world: World) -> None:
    thread_id = await create(world, "alice", "Kit")
    entries = [(f"big{i}.bin", bytes(4 * 1024 * 1024)) for i in range(30)]  # 120 MiB inflated
    data = zipped(entries)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await post_zip(world, thread_id, data)
        reply = await notice(world, thread_id, "Got ")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "big0.bin" in reply.content
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1048576:.0f} MiB while unpacking"


async def test_unpacking_stops_at_fifty_photos(world: World) -> None:
    thread_id = await create(world, "alice", "Lu")
    await post_zip(world, thread_id, zipped([(f"{i}.png", png(1000 + i)) for i in range(60)]))
    reply = await notice(world, thread_id, "Got ")
    assert "50 new photo" in reply.content and "50-photo limit" in reply.content
    reposted = sum(
        len(m.attachments) for m in bot_messages(world, thread_id) if "Unpacked" in m.content
    )
    assert reposted == 50  # the ten over the limit were never inflated nor re-posted


async def test_one_zip_at_a_time_per_character(world: World) -> None:
    thread_id = await create(world, "alice", "Mo")
    first = zipped([(f"a{i}.png", png(1100 + i)) for i in range(20)])
    second = zipped([(f"b{i}.png", png(1200 + i)) for i in range(20)])
    await asyncio.gather(
        post_zip(world, thread_id, first, "first.zip"),
        post_zip(world, thread_id, second, "second.zip"),
    )
    await world.discord.wait_for(
        lambda: len([m for m in bot_messages(world, thread_id) if "Got " in m.content]) == 2,
        timeout=TIMEOUT,
    )
    replies = [m.content for m in bot_messages(world, thread_id) if "Got " in m.content]
    assert any("still unpacking" in r for r in replies), replies
    mo = await character_named(world, "Mo")
    assert mo.image_count == 20


# --- 6. 🔁 on a training's final message ------------------------------------------------------
async def test_rerun_of_a_training_is_refused_and_creates_no_task(world: World) -> None:
    thread_id = await ready_character(world, "alice", "Ned", 1300)
    ready = next(m for m in bot_messages(world, thread_id) if "is ready" in m.content)
    [task] = await world.bot.store.user_tasks(world.guild_id, world.users["alice"], limit=5)
    alice = world.users["alice"]
    await world.discord.add_reaction(thread_id, ready.id, alice, "🔁")
    text = (await notice(world, thread_id, "only runs a video")).content
    assert f"<@{alice}>" in text
    await world.discord.wait_for(
        lambda: alice not in ready.reactions.get("🔁", set()), description="🔁 removed"
    )
    assert await world.bot.store.get_task(task.id + 1) is None
    assert await used_today(world, "alice") == world.config.character_training_weight
    # The bot does not invite a 🔁 on a training's final message in the first place.
    assert world.discord.bot_user_id not in ready.reactions.get("🔁", set())


# --- 7. concurrent /character train -----------------------------------------------------------
async def test_concurrent_train_commands_train_and_charge_once(world: World) -> None:
    thread_id = await create(world, "alice", "Oz")
    await post_photos(world, thread_id, "alice", [png(1400 + i) for i in range(20)])
    first, second = await asyncio.gather(
        world.command("character train", "alice", name="Oz"),
        world.command("character train", "alice", name="Oz"),
    )
    texts = [
        await ix.wait_for_content(lambda c: bool(c), timeout=TIMEOUT) for ix in (first, second)
    ]
    assert sorted("Training `Oz`" in t for t in texts) == [False, True], texts
    assert any("already training" in t for t in texts), texts
    await notice(world, thread_id, "is ready")
    tasks = await world.bot.store.user_tasks(world.guild_id, world.users["alice"], limit=5)
    assert [t.kind for t in tasks] == ["training"]
    assert len(soul_requests(world, "POST", "/soul/train")) == 1
    assert await used_today(world, "alice") == world.config.character_training_weight


# --- 10. a character named "7" is not character #7 --------------------------------------------
async def test_a_character_named_like_an_id_is_resolved_by_name(world: World) -> None:
    for i in range(6):
        await create(world, "alice", f"Filler{i}")
    await create(world, "alice", "Gus")
    seven_thread = await create(world, "alice", "7")
    gus, seven = await character_named(world, "Gus"), await character_named(world, "7")
    assert gus.id == 7 and seven.id != 7
    await post_photos(world, seven_thread, "alice", [png(1500 + i) for i in range(20)])
    await train_until_ready(world, "alice", "7", seven_thread)
    seven = await character_named(world, "7")

    # Typed by name: the character called "7", not character #7 (Gus, still collecting).
    ix = await world.animate("alice", prompt="7 waves", character="7")
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    assert world.providers["higgsfield"].submissions[-1]["json"]["model_id"] == (
        seven.provider_model_id
    )
    # Autocomplete values always name one character, whatever it is called.
    choices = await world.discord.autocomplete(
        "animate",
        focused="character",
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
        options={"prompt": "x", "character": "7"},
    )
    assert [c["value"] for c in choices] == [f"#{seven.id}"]
    ix = await world.animate("alice", prompt="7 again", character=choices[0]["value"])
    await video_lands(world, *await started(world, ix))

    await refused(await world.command("character delete", "alice", name="7"), "Deleted **7**")
    names = {c.name for c in await world.bot.store.guild_characters(world.guild_id)}
    assert "Gus" in names and "7" not in names
    choices = await world.discord.autocomplete(
        "character delete",
        focused="name",
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
        options={"name": "Gus"},
    )
    [choice] = choices
    await refused(
        await world.command("character delete", "alice", name=choice["value"]), "Deleted **Gus**"
    )
