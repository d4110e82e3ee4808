"""Discord faults, end to end: REST 429/5xx on send, edit and upload, uploads over the
guild's limit, deleted threads and channels, missing permissions. Delivery retries or
falls back (a link instead of a file, the channel instead of the thread) and says so;
nothing is lost and nothing is posted twice.
"""

from __future__ import annotations

import pytest

from doubles.harness import World
from doubles.providers import Step
from tests.helpers import (
    all_tasks,
    assert_exactly_once,
    discord_answered,
    eventually,
    fast_forward,
    final_message,
    finals,
    finish,
    hold,
    polled,
    refused,
    started,
    status_message,
    task_state,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


async def held_task(world: World, pid: str = "hiapi", prompt: str = "discord trouble"):
    """A task whose generation is running and waits for ``finish``."""
    double = world.providers[pid]
    hold(double)
    ix = await world.animate("alice", prompt=prompt, provider=pid)
    thread_id, task_id = await started(world, ix)
    await polled(double)
    return double, thread_id, task_id


def posts_to(channel_id: int) -> str:
    return rf"^/channels/{channel_id}/messages$"


# --- REST errors on the final message ---------------------------------------------------------
@pytest.mark.parametrize(
    "status, times",
    [(429, 3), (500, 1), (502, 1)],
    ids=["429-x3", "500", "502"],
)
async def test_transient_errors_on_the_video_upload(world: World, status: int, times: int) -> None:
    """Fault: Discord answers the upload with 429 (Retry-After) or 500/502, which
    discord.py retries by itself (after 1 s for a 5xx)."""
    double, thread_id, task_id = await held_task(world)
    world.discord.fail_next("POST", posts_to(thread_id), status, times=times, retry_after=0.05)
    finish(double)
    await discord_answered(world, "POST", posts_to(thread_id), status)
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


@pytest.mark.parametrize("outcome", ["video", "failure"])
async def test_503_on_the_final_message_is_retried_later(world: World, outcome: str) -> None:
    """Fault: 503 on the final message (discord.py does not retry it): the bot schedules
    another attempt, which checks for an earlier copy first and then posts once."""
    double, thread_id, task_id = await held_task(world)
    world.discord.fail_next("POST", posts_to(thread_id), 503)
    finish(double, None if outcome == "video" else [Step.fail(message="no luck")])
    await discord_answered(world, "POST", posts_to(thread_id), 503)
    await fast_forward(world, task_id)
    final = await final_message(world, thread_id, task_id)
    assert bool(final.attachments) == (outcome == "video")
    [task] = await assert_exactly_once(world, expect=1)
    assert task.result_message_id != task.status_message_id


async def test_errors_on_status_edits_and_reactions_do_not_block_delivery(world: World) -> None:
    """Fault: 429 then 503 on the status message edits, 503 on the 🔁 reaction."""
    double, thread_id, task_id = await held_task(world)
    edits = rf"^/channels/{thread_id}/messages/\d+$"
    world.discord.fail_next("PATCH", edits, 429, retry_after=0.05)
    world.discord.fail_next("PATCH", edits, 503, times=5)
    world.discord.fail_next("PUT", r"/reactions/", 503, times=5)
    finish(double)
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


# --- uploads over the guild's limit -------------------------------------------------------------
async def test_upload_refused_as_too_large_posts_a_link_instead(world: World) -> None:
    """Fault: the guild's real limit is below what the bot believed (413 / 40005)."""
    world.discord.set_upload_limit(world.guild_id, 1024)  # the sample video is ~6 KiB
    double, thread_id, task_id = await held_task(world)
    finish(double)
    final = await final_message(world, thread_id, task_id)
    assert not final.attachments
    assert "too large to upload here" in final.content
    assert "/media/sample.mp4" in final.content and "link expires" in final.content
    assert final.content.count("/media/sample.mp4") == 1, "each output is linked once"
    assert any(s == 413 for _, _, s in world.discord.request_log)
    await assert_exactly_once(world, expect=1)


async def test_output_bigger_than_the_known_limit_is_linked_without_trying(world: World) -> None:
    """Fault: an 11 MiB video for a guild whose tier allows 10 MiB."""
    double, thread_id, task_id = await held_task(world, pid="foxapi")
    finish(double, [Step.succeed(large_bytes=11 * MiB)])
    final = await final_message(world, thread_id, task_id)
    assert not final.attachments and "too large to upload here" in final.content
    assert not any(s == 413 for _, _, s in world.discord.request_log)
    await assert_exactly_once(world, expect=1)


# --- threads and channels that disappear, permissions that are missing -----------------------
async def test_deleted_thread_falls_back_to_the_channel(world: World) -> None:
    """Fault: a moderator deletes the request's thread while the video is generating."""
    double, thread_id, task_id = await held_task(world)
    world.discord.delete_channel(thread_id)
    finish(double)
    [final] = await world.discord.wait_for(
        lambda: finals(world, world.channel_id, task_id), description="the fallback post"
    )
    assert any(a.filename.endswith(".mp4") for a in final.attachments)
    assert "thread" in final.content.split("\n")[0]  # says why it is here
    assert final.mention_ids == [world.users["alice"]]
    await assert_exactly_once(world, expect=1)


async def test_missing_permission_in_the_thread_falls_back_to_the_channel(world: World) -> None:
    """Fault: 403 (50013 Missing Permissions) when posting the result in the thread."""
    double, thread_id, task_id = await held_task(world)
    world.discord.fail_next("POST", posts_to(thread_id), 403)
    finish(double)
    [final] = await world.discord.wait_for(
        lambda: finals(world, world.channel_id, task_id), description="the fallback post"
    )
    assert final.attachments and "thread" in final.content.split("\n")[0]
    assert "gone" not in final.content.split("\n")[0], "the thread is not gone: say why"
    await assert_exactly_once(world, expect=1)


async def test_missing_permission_everywhere_is_retried_until_it_is_fixed(world: World) -> None:
    """Fault: 403 in the thread and in the channel: the bot keeps the result and posts it
    once the permission is back (here: the next attempt)."""
    double, thread_id, task_id = await held_task(world)
    world.discord.fail_next("POST", posts_to(thread_id), 403)
    world.discord.fail_next("POST", posts_to(world.channel_id), 403)
    finish(double)
    await discord_answered(world, "POST", posts_to(world.channel_id), 403)
    await fast_forward(world, task_id)
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


async def test_thread_and_channel_deleted_the_bot_gives_up_cleanly(world: World) -> None:
    """Fault: the thread and its channel are both deleted mid-generation. There is nowhere
    to post: the bot records that, stops retrying, and keeps serving everyone else."""
    other = world.discord.add_channel(world.guild_id, "elsewhere")
    double, thread_id, task_id = await held_task(world)
    world.discord.delete_channel(thread_id)
    world.discord.delete_channel(world.channel_id)
    finish(double)

    async def given_up():
        [task] = [t for t in await all_tasks(world) if t.id == task_id]
        return task.next_action_at is None and not task.delivered

    await eventually(given_up, description="the bot to give up on the deleted channel")
    assert not world.discord.messages(other)  # nothing strayed into another channel
    ix = await world.animate("bob", prompt="life goes on", provider="hiapi", channel_id=other)
    other_thread, other_task = await started(world, ix)
    await video_lands(world, other_thread, other_task)


# --- Discord faults while accepting /animate -----------------------------------------------------
@pytest.mark.parametrize(
    "status, needle", [(403, "permission"), (503, "Discord")], ids=["403", "503"]
)
async def test_cannot_post_the_request_at_all(world: World, status: int, needle: str) -> None:
    """Fault: the bot cannot post in the channel (403), or Discord fails (503), when
    /animate opens its thread: an ephemeral, accurate error, quota untouched, and
    nothing is sent to a provider."""
    world.discord.fail_next("POST", posts_to(world.channel_id), status)
    ix = await world.animate("alice", prompt="nowhere to go", provider="hiapi")
    await refused(ix, needle, "quota was not used")
    assert not any(d.submissions for d in world.providers.values())
    [task] = await all_tasks(world)
    assert task.state == "failed" and task.refunded and task.next_action_at is None


async def test_thread_creation_forbidden_falls_back_to_the_channel(world: World) -> None:
    """Fault: 403 on creating the thread (no Create Public Threads permission): the status
    message and the video go to the channel itself."""
    world.discord.fail_next("POST", r"/threads$", 403)
    ix = await world.animate("alice", prompt="no threads here", provider="hiapi")
    where, task_id = await started(world, ix)
    assert where == world.channel_id
    status_message(world, world.channel_id, task_id)
    await video_lands(world, world.channel_id, task_id)
    await assert_exactly_once(world, expect=1)


async def test_status_message_deleted_mid_task(world: World) -> None:
    """Fault: someone deletes the status message; edits 404 and delivery goes on."""
    double, thread_id, task_id = await held_task(world)
    status = status_message(world, thread_id, task_id)
    world.discord._ops.delete_message(status)
    await task_state(world, task_id, "running")
    finish(double)
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)
