"""What the request half posts on Discord: the thread a request is followed in, and its
status message.

Sending only: the words are reelbot/messages.py's and the buttons reelbot/buttons.py's;
what gets recorded, and when, is decided by ``Generations`` (service.py), which calls
these (and /animate calls ``open_thread``).
"""

from __future__ import annotations

import io
import logging

import discord

from reelbot import buttons, messages, text
from reelbot.store.models import TaskRow
from reelbot.vocabulary import CANCEL_EMOJI, NO_PINGS

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 90  # within Discord's 100, leaving room for an ellipsis
THREAD_ARCHIVE_MINUTES = 1440


async def open_thread(
    channel: discord.abc.Messageable, *, task_id: int, prompt: str, author_name: str
) -> discord.abc.Messageable:
    """A thread for this request, unless we already are in one (or may not open one)."""
    if isinstance(channel, discord.Thread):
        return channel
    if not isinstance(channel, discord.TextChannel):
        return channel
    anchor = await channel.send(
        f"🎬 **{messages.short(author_name, 100)}** asked for: {messages.preview(prompt, 200)}",
        allowed_mentions=NO_PINGS,
    )
    name = text.clip_thread_name(
        messages.preview(prompt, THREAD_NAME_LIMIT), f"Reelbot task {task_id}"
    )
    try:
        return await anchor.create_thread(
            name=name, auto_archive_duration=text.archive_duration(THREAD_ARCHIVE_MINUTES)
        )
    except discord.Forbidden:
        # No Create Public Threads permission: follow the request in the channel.
        log.warning("task %s: no thread allowed in %s; using the channel", task_id, channel.id)
        return channel


async def send_status(
    where: discord.abc.Messageable,
    task: TaskRow,
    content: str,
    *,
    first_frame: tuple[bytes, str] | None = None,
) -> discord.Message:
    """The status message, with Cancel (the same as ❌) and ``first_frame`` (data,
    content type) attached when given."""
    files = []
    if first_frame is not None:
        data, content_type = first_frame
        ext = content_type.split("/")[-1].replace("jpeg", "jpg")
        files.append(discord.File(io.BytesIO(data), filename=f"first-frame.{ext}"))
    return await where.send(
        content, files=files, allowed_mentions=NO_PINGS, view=buttons.status_view(task)
    )


async def add_cancel_reaction(status: discord.Message, task_id: int) -> None:
    """❌ under the status message, for members who react rather than press Cancel."""
    try:
        await status.add_reaction(CANCEL_EMOJI)
    except discord.HTTPException:
        log.debug("task %s: could not add the cancel reaction", task_id)
