"""Never pay twice (SPEC §4), end to end: a provider that created the task and then lost
the answer (a proxy's 502, a closed connection, a 200 cut off) is never sent the
request again unless it deduplicates (hiapi's Idempotency-Key, with the very same
body); otherwise the task fails saying the provider may still have made it, and the
quota comes back. Submits have a deadline; the bot's own errors are not retried
forever; a stop waits for a submit in flight; answers in pieces, huge or with
unbounded strings are read. The World's teardown checks that no double billed twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from doubles.harness import World, build_world, input_png
from doubles.providers import Step
from providers.base import InputImage
from reelbot.jobs.poller import MAX_SUBMIT_RETRIES
from tests.helpers import (
    assert_exactly_once,
    eventually,
    final_message,
    gate_submits,
    started,
    task_state,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)

FAST = {"POLL_INTERVAL_SECONDS": "0.05", "POLL_MAX_INTERVAL_SECONDS": "0.05"}
NON_IDEMPOTENT = ("higgsfield", "higgsfield_feed", "foxapi", "gptge")
AFTERMATHS = ("bad_gateway", "close", "truncated")


@pytest.fixture
async def world(tmp_path: Path):
    w = await build_world(tmp_path, env=FAST)
    try:
        yield w
    finally:
        await w.close()


async def animate(world: World, pid: str, prompt: str = "a careful accountant", **options: Any):
    image = input_png() if pid == "higgsfield_feed" else options.pop("image", None)
    ix = await world.animate("alice", prompt=prompt, provider=pid, image=image, **options)
    return await started(world, ix)


def assert_may_have_run(content: str) -> None:
    text = content.lower()
    assert "could not be made" in text and "may still have made" in text, content
    assert "quota for it was given back" in text, content
    assert "🔁 starts a fresh request" in content, content


# --- the provider created the task, then the answer was lost -----------------------------------
@pytest.mark.parametrize("aftermath", AFTERMATHS)
@pytest.mark.parametrize("pid", NON_IDEMPOTENT)
async def test_lost_answer_is_not_resent_without_idempotency(
    world: World, pid: str, aftermath: str
) -> None:
    double = world.providers[pid]
    double.after_create(aftermath)
    thread_id, task_id = await animate(world, pid)
    final = await final_message(world, thread_id, task_id)
    assert_may_have_run(final.content)
    assert not final.attachments
    assert double.aftermaths_done == [aftermath]
    assert len(double.created_ids()) == 1, "the submit was sent again and billed twice"
    [ledger] = [x for x in await world.billing() if x.provider == pid]
    assert len(ledger.orphans) == 1 and ledger.explained == 1 and ledger.double_billed == 0
    await assert_exactly_once(world, expect=1)


@pytest.mark.parametrize("aftermath", AFTERMATHS)
async def test_lost_answer_is_resent_under_the_same_key_to_hiapi(
    world: World, aftermath: str
) -> None:
    double = world.providers["hiapi"]
    double.after_create(aftermath)
    thread_id, task_id = await animate(world, "hiapi")
    await video_lands(world, thread_id, task_id)
    assert double.aftermaths_done == [aftermath]
    assert len(double.tasks) == 1, "the resend created a second task"
    assert len(double.idempotency) == 1
    await assert_exactly_once(world, expect=1)


async def test_a_resend_carries_the_first_body_byte_for_byte(world: World) -> None:
    """Image-to-video: every build of the request would carry a fresh image URL (a
    refreshed Discord CDN link); the resend must still be the first body, or hiapi
    answers 422 IDEMPOTENCY_KEY_MISMATCH while the first attempt is being billed."""
    assert world.bot is not None
    inputs = world.bot.poller.inputs
    original = inputs.input_image
    builds = 0

    async def refreshed(*args: Any, **kwargs: Any) -> InputImage:
        nonlocal builds
        builds += 1
        image = await original(*args, **kwargs)
        return dataclasses.replace(image, url=f"{image.url or 'http://x/i.png'}?fresh={builds}")

    inputs.input_image = refreshed  # type: ignore[method-assign]
    double = world.providers["hiapi"]
    bodies: list[bytes] = []
    read_json = double.read_json

    async def record(request: web.Request) -> Any:
        bodies.append(await request.read())
        return await read_json(request)

    double.read_json = record  # type: ignore[method-assign]
    double.after_create("close")
    thread_id, task_id = await animate(world, "hiapi", image=input_png())
    await video_lands(world, thread_id, task_id)
    assert len(bodies) == 2 and len(set(bodies)) == 1, bodies
    assert not [r for r in double.rejections if r[1] == 422]
    assert len(double.tasks) == 1
    await assert_exactly_once(world, expect=1)


# --- the idempotency key survives restarts and never collides after a restore ----------------
async def test_keys_do_not_collide_after_the_store_is_restored(world: World) -> None:
    """The store is restored from a backup taken before task 1: the next request gets
    row id 1 again. Its key must differ, or hiapi replays the old task (the old video)."""
    assert world.bot is not None
    db = world.data_dir / "reelbot.db"
    backup = world.data_dir / "backup.db"
    with sqlite3.connect(db) as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    double = world.providers["hiapi"]
    thread_id, first = await animate(world, "hiapi", prompt="the first request")
    await video_lands(world, thread_id, first)
    await world.stop_bot()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, db)
    await world.start_bot()
    thread_id, second = await animate(world, "hiapi", prompt="after the restore")
    assert second == first
    await video_lands(world, thread_id, second)
    assert len(double.tasks) == 2, "the restored store's key replayed the old task"
    assert [t.prompt for t in double.tasks.values()] == ["the first request", "after the restore"]
    keys = [s["headers"]["Idempotency-Key"] for s in double.submissions]
    assert len(set(keys)) == 2 and all(len(k.encode()) <= 255 for k in keys)
    # The first task's provider task is tracked by no row of the restored store: that
    # is what a restore does, not a double billing.
    world.allow_orphans("hiapi")


# --- deadlines and the bot's own errors ---------------------------------------------------------
async def test_a_submit_hanging_past_the_task_timeout_fails_and_refunds(world_factory) -> None:
    world = await world_factory(env={**FAST, "TASK_TIMEOUT_SECONDS": "1"})
    double = world.providers["foxapi"]
    gate = gate_submits(double)  # the request was read: it may be acted on
    thread_id, task_id = await animate(world, "foxapi")
    began = time.monotonic()
    final = await final_message(world, thread_id, task_id, timeout=10)
    assert time.monotonic() - began < 6, "the submit was not bounded by TASK_TIMEOUT_SECONDS"
    assert_may_have_run(final.content)
    gate.release()  # the provider then makes it: the ambiguous failure accounts for it
    await eventually(lambda: double.tasks, description="the late task")
    await assert_exactly_once(world, expect=1)


async def test_the_bots_own_errors_while_submitting_are_not_retried_forever(
    world: World,
) -> None:
    assert world.bot is not None
    provider = world.bot.providers["foxapi"]
    calls = 0

    async def broken(request: Any) -> Any:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug while building the request")

    provider.prepare_submit = broken  # type: ignore[method-assign]
    thread_id, task_id = await animate(world, "foxapi")
    final = await final_message(world, thread_id, task_id)
    assert "internal_error" in final.content
    assert "quota for it was given back" in final.content.lower()
    assert calls == MAX_SUBMIT_RETRIES + 1
    assert not world.providers["foxapi"].tasks
    await assert_exactly_once(world, expect=1)


# --- stopping with a submit in flight ------------------------------------------------------
async def test_the_stop_grace_covers_a_submit_request(world: World) -> None:
    assert world.bot is not None
    settings = world.bot.poller.settings
    longest = max(p.http.timeout.total or 0 for p in world.bot.providers.values())
    assert settings.submit_grace >= longest


async def test_a_stop_waits_for_the_submit_in_flight(world: World) -> None:
    """SIGTERM while foxapi is still answering a submit: the bot waits for the answer
    (beyond the general grace) and records it, so after the restart the task runs on
    rather than failing as unconfirmed."""
    assert world.bot is not None
    poller = world.bot.poller
    poller.settings = dataclasses.replace(poller.settings, stop_grace=0.1, submit_grace=10)
    double = world.providers["foxapi"]
    gate = gate_submits(double)
    thread_id, task_id = await animate(world, "foxapi")
    await gate.wait_reached()
    stopping = asyncio.create_task(world.stop_bot())
    await asyncio.sleep(0.5)  # well past stop_grace: only the submit grace keeps it alive
    assert not stopping.done()
    gate.release()
    await stopping
    await world.start_bot()
    await video_lands(world, thread_id, task_id)
    assert len(double.tasks) == 1
    await assert_exactly_once(world, expect=1)


# --- answers that are huge, or whose strings are ------------------------------------------
async def test_a_megabyte_gptge_status_answer_is_delivered(world: World) -> None:
    """gptge inlines the video as base64 in its status answer (~1 MB here)."""
    world.providers["gptge"].script_next(
        [Step.running(), Step.succeed(form="base64", large_bytes=750_000)]
    )
    thread_id, task_id = await animate(world, "gptge", model="kling-v1")
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


@pytest.mark.parametrize("pid", ["hiapi", "foxapi", "gptge", "higgsfield", "higgsfield_feed"])
async def test_unbounded_state_words_codes_and_urls_do_not_choke(world: World, pid: str) -> None:
    world.providers[pid].script_next(
        [Step.unknown_state("w" * 3000), Step.succeed(url_length=2500)]
    )
    thread_id, task_id = await animate(world, pid)
    await video_lands(world, thread_id, task_id)
    world.providers[pid].script_next([Step.fail(code="E" * 3000, message="m" * 3000)])
    thread_id, task_id = await animate(world, pid, prompt="a long failure")
    task = await task_state(world, task_id, "failed")
    assert task.error_code is not None and len(task.error_code) <= 100
    assert task.error_message is not None and len(task.error_message) <= 1000


async def test_slow_answers_are_read(world: World) -> None:
    from doubles.providers.wire import Wire

    double = world.providers["foxapi"]
    double.wire = Wire.slow(0.3)
    thread_id, task_id = await animate(world, "foxapi")
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


# --- the safety net itself --------------------------------------------------------------------
async def test_the_safety_net_sees_a_double_billed_submit(world: World) -> None:
    """Two foxapi tasks for one Reelbot task (what the old resend-on-502 did): the
    World's teardown would fail the test."""
    thread_id, task_id = await animate(world, "foxapi")
    await video_lands(world, thread_id, task_id)
    double = world.providers["foxapi"]
    async with aiohttp.ClientSession() as session:
        await session.post(
            f"{double.base_url}/v1/videos/generations",
            json={"model": "sora-2", "prompt": "a careful accountant"},
            headers={"Authorization": f"Bearer {double.api_key}"},
        )
    [ledger] = [x for x in await world.billing() if x.provider == "foxapi"]
    assert ledger.double_billed == 1
    world.allow_orphans("foxapi")  # declared, so the teardown passes
    [ledger] = [x for x in await world.billing() if x.provider == "foxapi"]
    assert ledger.double_billed == 0


# --- "not found" confirmations are kept with the task -----------------------------------------
async def test_not_found_confirmations_survive_a_restart(world: World) -> None:
    """Two 404s, a restart, a third 404: the provider lost the task. Counted in memory,
    the restart would forget the first two (and the map would grow with every task)."""
    double = world.providers["foxapi"]
    double.script_next(
        [Step.running(10), Step.not_found(), Step.not_found(), Step.not_found(), Step.succeed()]
    )
    polls, held, restarted = 0, asyncio.Event(), asyncio.Event()
    original = double.status_gate

    async def held_from_the_fourth_poll() -> None:
        nonlocal polls
        polls += 1
        if polls >= 4 and not restarted.is_set():
            held.set()
            await restarted.wait()
            raise ConnectionResetError("the old bot is gone")  # answered nothing, consumed nothing
        await original()

    double.status_gate = held_from_the_fourth_poll  # type: ignore[method-assign]
    thread_id, task_id = await animate(world, "foxapi")
    await asyncio.wait_for(held.wait(), 20)
    await world.kill_bot()
    restarted.set()
    await world.start_bot()
    final = await final_message(world, thread_id, task_id)
    assert "not_found" in final.content, final.content
    await assert_exactly_once(world, expect=1)


async def test_a_task_sent_before_keys_were_stored_keeps_its_old_key(world: World) -> None:
    """Upgrade mid-submit: the row says "sent" but has no stored key (V2). The resend
    must use the key the old version sent, ``reelbot-<id>``, or hiapi makes a second task."""
    double = world.providers["hiapi"]
    gate = gate_submits(double)
    thread_id, task_id = await animate(world, "hiapi")
    await gate.wait_reached()
    await world.kill_bot()
    gate.release()  # the old attempt, sent with the old key, reaches hiapi
    await eventually(lambda: double.tasks, description="the provider to create the task")
    db = world.data_dir / "reelbot.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE tasks SET submit_key = NULL, submit_call = NULL WHERE id = ?", (task_id,)
        )
    [first] = double.submissions
    double.idempotency[f"reelbot-{task_id}"] = double.idempotency.pop(
        first["headers"]["Idempotency-Key"]
    )  # as if that attempt had carried the old key
    await world.start_bot()
    await video_lands(world, thread_id, task_id)
    assert len(double.tasks) == 1
    await assert_exactly_once(world, expect=1)
