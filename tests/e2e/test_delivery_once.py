"""Exactly once when the final message went somewhere other than the thread, or when
Discord cannot show what was posted: a restart after Discord accepted a final message
(but before the store recorded it) must find that message wherever it went, however
busy the channel has been since, and must never post while it cannot look."""

from __future__ import annotations

import pytest

from doubles.harness import World
from tests.helpers import (
    Gate,
    all_tasks,
    assert_exactly_once,
    discord_answered,
    eventually,
    finals_anywhere,
    finish,
    hold,
    polled,
    started,
)

pytestmark = pytest.mark.timeout(90)


def posts_to(channel_id: int) -> str:
    return rf"^/channels/{channel_id}/messages$"


async def held(world: World) -> tuple[int, int]:
    double = world.providers["hiapi"]
    hold(double)
    ix = await world.animate("alice", prompt="somewhere else", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await polled(double)
    return thread_id, task_id


def die_before_recording(world: World) -> Gate:
    """The final message reaches Discord; the process dies before the store records it."""
    assert world.bot is not None
    gate = Gate()
    store = world.bot.store
    original = store.release  # the poller records the delivery with the step's outcome

    async def held_mark(*args, **kwargs):
        if kwargs.get("delivered"):
            await gate()
        return await original(*args, **kwargs)

    store.release = held_mark  # type: ignore[method-assign]
    return gate


async def restart_after_nonce_window(world: World) -> None:
    await world.kill_bot()
    world.discord.forget_nonces()  # the restart comes later than Discord's nonce memory
    await world.start_bot()


@pytest.mark.parametrize("why", ["thread deleted", "thread forbidden"])
async def test_a_fallback_post_is_found_after_a_restart(world: World, why: str) -> None:
    """Defect: the earlier copy was looked for in the thread only, so a video posted in
    the parent channel (thread gone or 403) was posted a second time after a restart."""
    thread_id, _ = await held(world)
    if why == "thread deleted":
        world.discord.delete_channel(thread_id)
    else:
        world.discord.fail_next("POST", posts_to(thread_id), 403, times=10)
    gate = die_before_recording(world)
    finish(world.providers["hiapi"])
    await gate.wait_reached()
    [posted] = finals_anywhere(world, (await all_tasks(world))[0])
    assert posted.channel_id == world.channel_id
    await restart_after_nonce_window(world)
    [task] = await assert_exactly_once(world, expect=1)
    assert task.result_message_id == posted.id


async def test_an_earlier_copy_behind_a_busy_thread_is_found(world: World) -> None:
    """Defect: only the thread's last 50 messages were read; members chatting on before the
    restart pushed the earlier copy out of sight, and the video was posted again."""
    thread_id, _ = await held(world)
    gate = die_before_recording(world)
    finish(world.providers["hiapi"])
    await gate.wait_reached()
    [posted] = finals_anywhere(world, (await all_tasks(world))[0])
    await world.kill_bot()
    for n in range(120):
        await world.discord.post_user_message(thread_id, world.users["bob"], f"nice one {n}")
    world.discord.forget_nonces()
    await world.start_bot()
    [task] = await assert_exactly_once(world, expect=1)
    assert task.result_message_id == posted.id


async def test_no_post_while_the_earlier_copy_cannot_be_looked_for(world: World) -> None:
    """Defect: a history error counted as "no earlier copy", so the video was posted
    again. Now the bot waits until it can look, then finds the copy."""
    thread_id, task_id = await held(world)
    gate = die_before_recording(world)
    finish(world.providers["hiapi"])
    await gate.wait_reached()
    [posted] = finals_anywhere(world, (await all_tasks(world))[0])
    await world.kill_bot()
    world.discord.forget_nonces()
    history = rf"^/channels/{thread_id}/messages$"
    world.discord.fail_next("GET", history, 403)
    await world.start_bot()
    await discord_answered(world, "GET", history, 403)
    assert finals_anywhere(world, (await all_tasks(world))[0]) == [posted]
    assert world.bot is not None
    store = world.bot.store

    async def retry_scheduled() -> bool:
        task = await store.get_task(task_id)
        return bool(task and task.next_action_at)

    await eventually(retry_scheduled, description="a later look for the earlier copy")
    await store.update_task(task_id, next_action_at=0)
    world.bot.poller.wake()
    [task] = await assert_exactly_once(world, expect=1)
    assert task.result_message_id == posted.id


async def test_the_retry_affordance_appears_only_once_the_delivery_is_recorded(
    world: World,
) -> None:
    """Defect: the bot added its 🔁 before the store knew the final message, so a member
    pressing it at once was ignored (🔁 finds its task by the recorded message)."""
    thread_id, task_id = await held(world)
    gate = die_before_recording(world)
    finish(world.providers["hiapi"])
    await gate.wait_reached()
    [posted] = finals_anywhere(world, (await all_tasks(world))[0])
    bot_id = world.discord.bot_user_id
    assert bot_id not in posted.reactions.get("🔁", set()), "🔁 offered before it works"
    gate.release()
    await world.discord.wait_for(
        lambda: bot_id in posted.reactions.get("🔁", set()), description="the bot's 🔁"
    )
    await world.discord.add_reaction(thread_id, posted.id, world.users["alice"], "🔁")
    assert world.bot is not None
    store = world.bot.store
    await eventually(lambda: store.get_task(task_id + 1), description="the re-run pressed at once")
