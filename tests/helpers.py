"""Assertions that read like what a member sees in Discord."""

from __future__ import annotations

import re

from doubles.discord.model import Message
from doubles.harness import World

TIMEOUT = 20.0
_THREAD_LINK = re.compile(r"<#(\d+)> \(task #(\d+)\)")


async def started(world: World, ix) -> tuple[int, int]:
    """Wait for /animate's ephemeral 'On it' reply; return (thread id, task id)."""
    content = await ix.wait_for_content("On it", timeout=TIMEOUT)
    assert ix.ephemeral, "the /animate acknowledgement must be ephemeral"
    match = _THREAD_LINK.search(content if isinstance(content, str) else ix.response_content)
    assert match, ix.response_content
    return int(match.group(1)), int(match.group(2))


async def refused(ix, *needles: str) -> str:
    """The interaction was answered ephemerally with text containing every needle."""
    await ix.wait_for_response(timeout=TIMEOUT)
    content = await ix.wait_for_content(lambda c: bool(c), timeout=TIMEOUT)
    text = content if isinstance(content, str) else ix.response_content
    assert ix.ephemeral, f"refusal must be ephemeral: {text!r}"
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} not in {text!r}"
    return text


def bot_messages(world: World, channel_id: int) -> list[Message]:
    return [
        m for m in world.discord.messages(channel_id) if m.author_id == world.discord.bot_user_id
    ]


def status_message(world: World, channel_id: int, task_id: int) -> Message:
    for m in bot_messages(world, channel_id):
        if m.content.startswith(("**Prompt:**", "**Character")) and m.content.endswith(
            f"Task #{task_id}"
        ):
            return m
    raise AssertionError(f"no status message for task {task_id} in {channel_id}")


def _final(world: World, channel_id: int, task_id: int) -> Message | None:
    for m in bot_messages(world, channel_id):
        if m.content.endswith(f"-# Task #{task_id}") and not m.content.startswith("**"):
            return m
    return None


async def final_message(
    world: World, channel_id: int, task_id: int, timeout: float = TIMEOUT
) -> Message:
    """The task's final message (video, error or cancellation) once it is posted."""
    return await world.discord.wait_for(
        lambda: _final(world, channel_id, task_id),
        timeout=timeout,
        description=f"final message of task {task_id} in channel {channel_id}",
    )


def finals(world: World, channel_id: int, task_id: int) -> list[Message]:
    return [
        m
        for m in bot_messages(world, channel_id)
        if m.content.endswith(f"-# Task #{task_id}") and not m.content.startswith("**")
    ]


async def video_lands(
    world: World, channel_id: int, task_id: int, timeout: float = TIMEOUT
) -> Message:
    """A video attachment lands in the thread for this task, mentioning the requester."""
    message = await final_message(world, channel_id, task_id, timeout)
    assert any(a.filename.endswith(".mp4") for a in message.attachments), message.content
    return message


async def bot_reacted(world: World, message: Message, emoji: str = "🔁") -> None:
    bot_id = world.discord.bot_user_id
    await world.discord.wait_for(
        lambda: bot_id in message.reactions.get(emoji, set()),
        timeout=TIMEOUT,
        description=f"the bot's {emoji} on message {message.id}",
    )


async def status_shows(world: World, channel_id: int, task_id: int, text: str) -> Message:
    def check() -> Message | None:
        try:
            message = status_message(world, channel_id, task_id)
        except AssertionError:
            return None
        return message if text in message.content else None

    return await world.discord.wait_for(
        check, timeout=TIMEOUT, description=f"status of task {task_id} shows {text!r}"
    )
