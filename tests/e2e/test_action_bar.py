"""The action bar (SPEC §3 "Buttons"): Cancel on the status message; Run again, Vary,
Remix and Delete on the final message; the message context menu "Animate". Through
the real discord.py client and the Discord double, before and after restarts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from doubles.discord.model import Message
from doubles.harness import World, input_png
from doubles.providers import Step
from reelbot.store.models import TaskRow
from tests.helpers import (
    bot_reacted,
    eventually,
    final_message,
    finals,
    refused,
    started,
    status_message,
    status_shows,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)


def button_ids(message: Message) -> list[str]:
    return [
        c["custom_id"]
        for row in message.components
        for c in row.get("components", [])
        if c.get("type") == 2
    ]


async def run_one(world: World, user: str = "alice", **options) -> tuple[int, int, Message]:
    options.setdefault("provider", "hiapi")
    options.setdefault("prompt", "a small test clip")
    ix = await world.animate(user, **options)
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    await bot_reacted(world, final)
    return thread_id, task_id, final


async def click(world: World, message: Message, action: str, task_id: int, user: str):
    return await world.discord.click(
        message.id, f"reelbot:{action}:{task_id}", user_id=world.users[user]
    )


async def used_today(world: World, user: str) -> int:
    assert world.bot is not None
    status = await world.bot.store.quota_status(
        world.guild_id, world.users[user], now=time.time(), default_limit=10
    )
    return status.used


# --- what the messages carry ------------------------------------------------------------
async def test_a_video_gets_the_whole_bar_and_a_failure_gets_run_again(world: World) -> None:
    _thread_id, task_id, final = await run_one(world, provider="gptge", model="jimeng")
    assert button_ids(final) == [
        f"reelbot:{a}:{task_id}" for a in ("again", "vary", "remix", "delete")
    ]
    # Vary only where the model takes a seed (gptge's Kling models do not).
    _thread_id, kling_id, kling = await run_one(world, provider="gptge", model="kling-v1")
    assert button_ids(kling) == [f"reelbot:{a}:{kling_id}" for a in ("again", "remix", "delete")]
    world.providers["hiapi"].script_next([Step.fail(code="moderation", message="blocked")])
    ix = await world.animate("alice", prompt="fails", provider="hiapi")
    thread2, failed_id = await started(world, ix)
    failure = await final_message(world, thread2, failed_id)
    assert button_ids(failure) == [f"reelbot:again:{failed_id}"]


async def test_the_status_message_has_cancel_while_in_flight_only(world: World) -> None:
    world.providers["foxapi"].script_next([Step.running(10, polls=10_000)])
    ix = await world.animate("alice", prompt="keep going", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    status = status_message(world, thread_id, task_id)
    assert button_ids(status) == [f"reelbot:cancel:{task_id}"]
    assert "Press Cancel or react ❌" in status.content


# --- Run again -----------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["alice", "mod"])
async def test_run_again_by_requester_or_moderator(world: World, who: str) -> None:
    thread_id, task_id, final = await run_one(world, prompt="run me twice")
    ix = await click(world, final, "again", task_id, who)
    await refused(ix, f"as task #{task_id + 1}")
    await video_lands(world, thread_id, task_id + 1)
    new = await world.bot.store.get_task(task_id + 1)
    assert new is not None and new.requester_id == world.users["alice"]  # alice is charged
    assert new.retry_of == task_id and new.request["prompt"] == "run me twice"
    assert await used_today(world, "alice") == 2
    assert len(world.providers["hiapi"].submissions) == 2


@pytest.mark.parametrize("action", ["again", "vary", "remix", "delete"])
async def test_a_stranger_is_refused_every_final_button(world: World, action: str) -> None:
    _thread_id, task_id, final = await run_one(world, provider="gptge", model="jimeng")
    ix = await click(world, final, action, task_id, "bob")
    await refused(ix, "or a moderator can use these buttons")
    assert ix.modal is None
    assert not world.discord.message(final.id).deleted
    assert await world.bot.store.get_task(task_id + 1) is None
    assert len(world.providers["gptge"].submissions) == 1


async def test_a_double_delivered_click_creates_one_task(world: World) -> None:
    thread_id, task_id, final = await run_one(world)
    ix = await click(world, final, "again", task_id, "alice")
    await world.discord.redeliver(ix)
    await refused(ix, f"as task #{task_id + 1}")
    await video_lands(world, thread_id, task_id + 1)
    await bot_reacted(world, finals(world, thread_id, task_id + 1)[0])
    assert await world.bot.store.get_task(task_id + 2) is None
    assert len(world.providers["hiapi"].submissions) == 2
    assert len(ix.responses) == 1


async def test_two_presses_are_two_tasks(world: World) -> None:
    thread_id, task_id, final = await run_one(world)
    first = await click(world, final, "again", task_id, "alice")
    await refused(first, "as task #")
    second = await click(world, final, "again", task_id, "alice")
    await refused(second, "as task #")
    await video_lands(world, thread_id, task_id + 1)
    await video_lands(world, thread_id, task_id + 2)


async def test_run_again_is_checked_like_a_new_request(world_factory) -> None:
    world = await world_factory(env={"DAILY_QUOTA": "1"})
    _thread_id, task_id, final = await run_one(world)
    text = await refused(await click(world, final, "again", task_id, "alice"), "can't run")
    assert "used 1 of your 1" in text
    assert await world.bot.store.get_task(task_id + 1) is None


async def test_a_task_whose_provider_was_removed_says_why(world: World) -> None:
    _thread_id, task_id, final = await run_one(world, provider="foxapi")
    await world.stop_bot()
    world.env.pop("FOXAPI_API_KEY")
    await world.start_bot()
    for action in ("again", "remix"):
        ix = await click(world, final, action, task_id, "alice")
        await refused(ix, "`foxapi` is not a provider this bot offers any more")


# --- Vary ------------------------------------------------------------------------------------
async def test_vary_sends_a_new_seed_and_shows_it(world: World) -> None:
    thread_id, task_id, final = await run_one(world, provider="gptge", model="jimeng", seed=7)
    assert "**Seed:** `7`" in final.content
    ix = await click(world, final, "vary", task_id, "mod")
    text = await refused(ix, "with seed")
    new = await world.bot.store.get_task(task_id + 1)
    assert new is not None and new.request["seed"] != 7
    assert f"`{new.request['seed']}`" in text
    landed = await video_lands(world, thread_id, task_id + 1)
    assert f"**Seed:** `{new.request['seed']}`" in landed.content
    sent = world.providers["gptge"].submissions[-1]["json"]
    assert new.request["seed"] in sent.values() or str(new.request["seed"]) in str(sent)


# --- Remix -----------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["alice", "mod"])
async def test_remix_modal_round_trip_sends_the_edited_prompt(world: World, who: str) -> None:
    thread_id, task_id, final = await run_one(
        world,
        provider="gptge",
        model="kling-v2-5-turbo",
        prompt="a red fox",
        negative_prompt="blur",
        duration=5,
    )
    opened = await click(world, final, "remix", task_id, who)
    await opened.wait_for_response()
    assert opened.responses[0]["type"] == 9  # MODAL
    modal = opened.modal
    assert modal is not None and modal["custom_id"] == f"reelbot:remix-modal:{task_id}"
    inputs = {
        c["custom_id"]: c
        for row in modal["components"]
        for c in row.get("components", [row.get("component", {})])
    }
    assert inputs["prompt"]["value"] == "a red fox"
    assert inputs["negative_prompt"]["value"] == "blur"

    submitted = await world.discord.submit_modal(
        opened, {"prompt": "a blue fox in the snow", "negative_prompt": "text"}
    )
    assert submitted.payload["type"] == 5
    await refused(submitted, f"as task #{task_id + 1}")
    await video_lands(world, thread_id, task_id + 1)
    new = await world.bot.store.get_task(task_id + 1)
    assert new is not None and new.requester_id == world.users["alice"]
    assert new.request["prompt"] == "a blue fox in the snow"
    assert new.request["negative_prompt"] == "text"
    assert new.request["duration"] == 5  # other options kept
    assert new.request["model"] == "kling-v2-5-turbo"
    sent = str(world.providers["gptge"].submissions[-1]["json"])
    assert "a blue fox in the snow" in sent


async def test_remix_keeps_the_first_frame(world: World) -> None:
    thread_id, task_id, final = await run_one(world, provider="hiapi", image=input_png())
    opened = await click(world, final, "remix", task_id, "alice")
    await opened.wait_for_response()
    world.discord.expire_attachment_urls()
    submitted = await world.discord.submit_modal(opened, {"prompt": "now dancing"})
    await refused(submitted, "as task #")
    await video_lands(world, thread_id, task_id + 1)
    old = await world.bot.store.get_task(task_id)
    new = await world.bot.store.get_task(task_id + 1)
    assert old is not None and new is not None
    assert new.request["image"]["sha256"] == old.request["image"]["sha256"]


async def test_remix_with_a_banned_word_is_refused(world: World) -> None:
    await refused(await world.command("settings banned-words add", "mod", words="dragon"), "")
    _thread_id, task_id, final = await run_one(world)
    opened = await click(world, final, "remix", task_id, "alice")
    await opened.wait_for_response()
    submitted = await world.discord.submit_modal(opened, {"prompt": "a Dragon flies"})
    await refused(submitted, "can't remix")
    assert await world.bot.store.get_task(task_id + 1) is None


# --- Delete ----------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["alice", "mod"])
async def test_delete_removes_the_final_message_and_is_audited(world: World, who: str) -> None:
    _thread_id, task_id, final = await run_one(world)
    ix = await click(world, final, "delete", task_id, who)
    await refused(ix, "Deleted the result")
    assert world.discord.message(final.id).deleted
    [entry] = await world.bot.store.audit_entries(world.guild_id)
    assert (entry["action"], entry["actor_id"]) == ("delete_result", world.users[who])
    assert entry["target_id"] == world.users["alice"]


# --- Cancel ----------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["alice", "mod", "bob"])
async def test_cancel_button(world: World, who: str) -> None:
    world.providers["foxapi"].script_next([Step.running(10, polls=10_000)])
    ix = await world.animate("alice", prompt="never mind", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    await world.discord.wait_for(lambda: world.providers["foxapi"].submissions)
    status = status_message(world, thread_id, task_id)
    pressed = await click(world, status, "cancel", task_id, who)
    if who == "bob":
        await refused(pressed, "or a moderator")
        task = await world.bot.store.get_task(task_id)
        assert task is not None and task.in_flight
        return
    await refused(pressed, f"Cancelling task #{task_id}")
    final = await final_message(world, thread_id, task_id)
    assert "cancelled" in final.content
    done = await status_shows(world, thread_id, task_id, "🚫 Cancelled")
    await world.discord.wait_for(lambda: not button_ids(done), description="Cancel removed")
    assert await used_today(world, "alice") == 0
    audit = await world.bot.store.audit_entries(world.guild_id)
    assert [e["action"] for e in audit] == ([] if who == "alice" else ["cancel"])


# --- after a restart -------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_buttons_work_after_a_restart(world: World, how: str) -> None:
    thread_id, task_id, final = await run_one(world, provider="gptge", prompt="old one")
    await (world.kill_bot() if how == "kill" else world.stop_bot())
    await world.start_bot()
    ix = await click(world, final, "again", task_id, "alice")
    await refused(ix, f"as task #{task_id + 1}")
    await video_lands(world, thread_id, task_id + 1)

    # A modal opened before a restart is submitted after it.
    opened = await click(world, final, "remix", task_id, "alice")
    await opened.wait_for_response()
    await world.kill_bot()
    await world.start_bot()
    submitted = await world.discord.submit_modal(opened, {"prompt": "after the restart"})
    await refused(submitted, f"as task #{task_id + 2}")
    await video_lands(world, thread_id, task_id + 2)

    world.providers["gptge"].script_next([Step.running(10, polls=10_000)])
    ix = await world.animate("alice", prompt="slow", provider="gptge")
    thread3, slow_id = await started(world, ix)
    await status_shows(world, thread3, slow_id, "Generating")  # submitted, not mid-submit
    await world.kill_bot()
    await world.start_bot()
    status = status_message(world, thread3, slow_id)
    await refused(await click(world, status, "cancel", slow_id, "alice"), "Cancelling")
    await status_shows(world, thread3, slow_id, "🚫 Cancelled")


# --- context menu "Animate" ------------------------------------------------------------------
async def test_the_context_menu_is_a_message_command(world: World) -> None:
    [menu] = [c for c in world.discord.commands(world.guild_id) if c["type"] == 3]
    assert menu["name"] == "Animate" and not menu.get("description")


async def test_context_menu_animates_the_image_of_a_message(world: World) -> None:
    posted = await world.discord.post_user_message(
        world.channel_id, world.users["bob"], "my cat", [("cat.png", input_png(), "image/png")]
    )
    opened = await world.discord.message_command("Animate", posted, user_id=world.users["alice"])
    payload = opened.payload
    assert payload["type"] == 2 and payload["data"]["type"] == 3
    assert payload["data"]["target_id"] == str(posted)
    assert str(posted) in payload["data"]["resolved"]["messages"]
    await opened.wait_for_response()
    assert opened.responses[0]["type"] == 9
    submitted = await world.discord.submit_modal(
        opened, {"prompt": "the cat waves", "provider": "hiapi", "duration": "5"}
    )
    thread_id, task_id = await started(world, submitted)
    await video_lands(world, thread_id, task_id)
    task = await world.bot.store.get_task(task_id)
    assert task is not None and task.requester_id == world.users["alice"]
    assert task.request["prompt"] == "the cat waves" and task.request["duration"] == 5
    assert task.request["image"]["content_type"] == "image/png"  # kept by the bot


async def test_context_menu_on_a_message_without_an_image_explains(world: World) -> None:
    posted = await world.discord.post_user_message(world.channel_id, world.users["bob"], "hi")
    ix = await world.discord.message_command("Animate", posted, user_id=world.users["alice"])
    await refused(ix, "no image I can animate")
    assert ix.modal is None


async def test_context_menu_goes_through_the_same_checks(world: World) -> None:
    posted = await world.discord.post_user_message(
        world.channel_id, world.users["bob"], "", [("cat.png", input_png(), "image/png")]
    )
    opened = await world.discord.message_command("Animate", posted, user_id=world.users["alice"])
    await opened.wait_for_response()
    submitted = await world.discord.submit_modal(
        opened, {"prompt": "x", "provider": "nope", "duration": ""}
    )
    await refused(submitted, "not a provider this bot offers")


# --- ETA -------------------------------------------------------------------------------------
async def test_the_status_shows_a_typical_wait_once_there_are_enough_completions(
    world: World,
) -> None:
    assert world.bot is not None
    hiapi = world.bot.providers["hiapi"]
    world.providers["hiapi"].script_next([Step.running(10, polls=10_000)])
    model = hiapi.default_model()
    seeded = world.bot.delivery.eta_book
    for _ in range(30):
        seeded.observe(_finished("hiapi", model, seconds=250))
    ix = await world.animate("alice", prompt="how long", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await status_shows(world, thread_id, task_id, "usually ready in about 4 min")


async def test_a_task_keeps_the_estimate_it_was_shown(world: World) -> None:
    """Defect: the estimate was recomputed at every poll, so each time a rounded median
    flipped (4 → 9 min here) every status message in flight was edited again."""
    assert world.bot is not None
    hiapi = world.bot.providers["hiapi"]
    double = world.providers["hiapi"]
    double.script_next([Step.running(10, polls=10_000)])
    model = hiapi.default_model()
    book = world.bot.delivery.eta_book
    for _ in range(30):
        book.observe(_finished("hiapi", model, seconds=250))
    ix = await world.animate("alice", prompt="how long now", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    status = await status_shows(world, thread_id, task_id, "Generating")
    assert "usually ready in about 4 min" in status.content
    edits = len(status.edits)
    for _ in range(200):
        book.observe(_finished("hiapi", model, seconds=540))
    store = world.bot.store

    async def recorded() -> TaskRow | None:  # the store knows what the message shows
        row = await store.get_task(task_id)
        return row if row is not None and row.status_text == status.content else None

    task = await eventually(recorded, description="the shown status recorded")
    # The next poll's re-render, with no throttle to hide an edit.
    fields = await world.bot.delivery.update_status(replace(task, status_edited_at=0.0))
    assert fields == {} and len(status.edits) == edits, [e.content for e in status.edits[edits:]]
    assert "about 4 min" in status.content


def _finished(provider: str, model: str | None, *, seconds: float):
    class Row:
        kind = "video"
        state = "succeeded"
        submitted_at = 1000.0
        created_at = 1000.0
        finished_at = 1000.0 + seconds
        request = {"prompt": "a fox", "model": model}

    row = Row()
    row.provider = provider  # type: ignore[attr-defined]
    return row


async def test_concurrent_presses_of_vary_each_get_their_own_seed(world: World) -> None:
    _thread_id, task_id, final = await run_one(world, provider="gptge", model="jimeng")
    a, b = await asyncio.gather(
        click(world, final, "vary", task_id, "alice"), click(world, final, "vary", task_id, "alice")
    )
    await refused(a, "with seed")
    await refused(b, "with seed")
    one = await world.bot.store.get_task(task_id + 1)
    two = await world.bot.store.get_task(task_id + 2)
    assert one is not None and two is not None
    assert one.request["seed"] != two.request["seed"]


async def test_buttons_on_a_video_whose_character_was_deleted_say_why(world: World) -> None:
    from tests.e2e.test_character_safety import shared_video

    thread_id, task_id = await shared_video(world)  # bob's video with alice's shared Cy
    submitted = len(world.providers["higgsfield"].submissions)
    await refused(await world.command("character delete", "alice", name="Cy"), "deleted")
    final = finals(world, thread_id, task_id)[0]
    for action, words in (("again", "can't run"), ("vary", "can't run"), ("remix", "can't remix")):
        if f"reelbot:{action}:{task_id}" not in button_ids(final):
            continue
        text = await refused(await click(world, final, action, task_id, "bob"), words)
        assert "character `Cy` no longer exists" in text
    assert await world.bot.store.get_task(task_id + 1) is None
    assert len(world.providers["higgsfield"].submissions) == submitted


async def test_a_redelivered_remix_click_and_submit_make_one_task(world: World) -> None:
    thread_id, task_id, final = await run_one(world)
    opened = await click(world, final, "remix", task_id, "alice")
    await world.discord.redeliver(opened)
    await opened.wait_for_response()
    submitted = await world.discord.submit_modal(opened, {"prompt": "once only"})
    await world.discord.redeliver(submitted)
    await refused(submitted, f"as task #{task_id + 1}")
    await video_lands(world, thread_id, task_id + 1)
    await bot_reacted(world, finals(world, thread_id, task_id + 1)[0])
    assert await world.bot.store.get_task(task_id + 2) is None
    assert len(opened.responses) == 1 and len(submitted.responses) == 1


async def test_buttons_work_in_a_new_process_after_a_sigkill(tmp_path) -> None:
    """The buttons a killed process posted are handled by the next one (python bot.py)."""
    import signal

    from doubles.harness import build_world
    from tests.e2e.test_multiprocess import BotProcess, stop_all

    world = await build_world(tmp_path, start=False, provider_ids=("hiapi", "gptge"))
    processes: list[BotProcess] = []
    try:
        first = BotProcess("first", [], world, tmp_path)
        processes.append(first)
        await first.logged("connected as")
        await world.discord.wait_for(
            lambda: world.discord.commands(world.guild_id), timeout=30, description="commands"
        )
        thread_id, task_id = await started(
            world, await world.animate("alice", prompt="before the kill", provider="gptge")
        )
        final = await final_message(world, thread_id, task_id, timeout=30)
        await bot_reacted(world, final)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(5)

        second = BotProcess("second", [], world, tmp_path)
        processes.append(second)
        await second.logged("connected as")
        ix = await click(world, final, "again", task_id, "mod")
        await refused(ix, f"as task #{task_id + 1}")
        await video_lands(world, thread_id, task_id + 1, timeout=30)
        opened = await click(world, final, "remix", task_id, "alice")
        await opened.wait_for_response(timeout=20)
        submitted = await world.discord.submit_modal(opened, {"prompt": "after the kill"})
        await refused(submitted, f"as task #{task_id + 2}")
        await video_lands(world, thread_id, task_id + 2, timeout=30)
    finally:
        stop_all(processes)
        await world.close()
    prompts = [s["json"].get("prompt") for s in world.providers["gptge"].submissions]
    assert "after the kill" in str(prompts)
