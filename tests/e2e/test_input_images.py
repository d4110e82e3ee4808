"""First-frame images on disk: kept only for requests that pass, cleaned up once no
recent task uses them, and still there for 🔁 days later while one does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from doubles.harness import World, input_png
from tests.helpers import refused, started, video_lands

pytestmark = pytest.mark.timeout(60)

DAY = 86400.0


def kept_images(world: World) -> list[Path]:
    folder = world.data_dir / "inputs"
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_an_image_request_refused_for_quota_stores_nothing(world_factory) -> None:
    world = await world_factory(env={"DAILY_QUOTA": "1"})
    ix = await world.animate("alice", prompt="a cat", provider="hiapi")
    await started(world, ix)
    for n in range(3):
        ix = await world.animate(
            "alice", prompt="this cat", provider="hiapi", image=input_png() + bytes([n])
        )
        await refused(ix, "quota")
    assert kept_images(world) == []


async def test_an_image_request_the_provider_would_refuse_stores_nothing(world: World) -> None:
    ix = await world.animate(
        "alice", prompt="a cat", provider="higgsfield_feed", seed=0, image=input_png()
    )
    await refused(ix, "seeds from 1")
    assert kept_images(world) == []


async def test_an_image_request_that_passes_keeps_its_image(world: World) -> None:
    ix = await world.animate("alice", prompt="this cat", provider="hiapi", image=input_png())
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    assert len(kept_images(world)) == 1


async def test_images_no_recent_task_uses_are_swept_and_used_ones_stay(world: World) -> None:
    assert world.bot is not None
    ix = await world.animate("alice", prompt="this cat", provider="hiapi", image=input_png())
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    [used] = kept_images(world)
    # Leftovers from before this fix (refused requests), and a half-written temp file.
    orphan = used.with_name("0" * 64 + ".png")
    orphan.write_bytes(b"old refused upload")
    temp = used.with_name(f".{used.name}.abc.tmp")
    temp.write_bytes(b"crashed write")
    fresh_orphan = used.with_name("1" * 64 + ".png")
    fresh_orphan.write_bytes(b"being saved right now")
    week_ago = time.time() - 7 * DAY
    for path in (used, orphan, temp):
        os.utime(path, (week_ago, week_ago))
    removed = await world.bot.generations.sweep_inputs(now=time.time())
    assert removed == 2
    assert kept_images(world) == sorted([used, fresh_orphan])
    # Days later (within the retention) the task still uses its image: it stays.
    removed = await world.bot.generations.sweep_inputs(now=time.time() + 20 * DAY)
    assert used.exists()
    # Past the retention period since the last task that used it, it goes.
    retention = world.bot.config.input_retention_days * DAY
    removed = await world.bot.generations.sweep_inputs(now=time.time() + retention + DAY)
    assert not used.exists()


async def test_run_again_days_later_keeps_working_then_says_when_the_image_is_gone(
    world: World,
) -> None:
    assert world.bot is not None
    ix = await world.animate("alice", prompt="this cat", provider="hiapi", image=input_png())
    thread_id, task_id = await started(world, ix)
    final = await video_lands(world, thread_id, task_id)
    [image] = kept_images(world)
    week_ago = time.time() - 7 * DAY
    os.utime(image, (week_ago, week_ago))
    # A sweep days later keeps it (the task is within the retention): 🔁 works.
    await world.bot.generations.sweep_inputs(now=time.time() + 3 * DAY)
    world.discord.expire_attachment_urls()
    await world.discord.add_reaction(thread_id, final.id, world.users["alice"], "🔁")
    again = await video_lands(world, thread_id, task_id + 1)
    # Past the retention of every task using it, the image is removed; 🔁 says so.
    retention = world.bot.config.input_retention_days * DAY
    os.utime(image, (week_ago, week_ago))
    assert await world.bot.generations.sweep_inputs(now=time.time() + retention + DAY) == 1
    await world.discord.add_reaction(thread_id, again.id, world.users["alice"], "🔁")
    notice = await world.discord.wait_for(
        lambda: next(
            (m for m in world.discord.messages(thread_id) if "no longer kept" in m.content), None
        ),
        timeout=20,
        description="the 'image no longer kept' notice",
    )
    assert "/animate" in notice.content
    assert await world.bot.store.get_task(task_id + 2) is None
