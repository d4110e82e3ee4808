"""The bot's words that code depends on, in one place.

Exactly-once delivery recognises its own earlier messages by these marks (the footer,
the status titles, the nonce): whatever builds a message and whatever looks for one
uses the functions here, never a string of its own.
"""

from __future__ import annotations

import discord

RETRY_EMOJI = "🔁"  # under a final message: run it again
CANCEL_EMOJI = "❌"  # under a status message: cancel
NO_PINGS = discord.AllowedMentions.none()

STATUS_TITLE = "**Prompt:**"  # a video's status message starts with it
TRAINING_TITLE = "**Character training**"  # a training's status message starts with it
STATUS_TITLES = (STATUS_TITLE, TRAINING_TITLE)
FOOTER_MARK = "\n-# Task #"  # every status and final message ends with footer(task id)


def footer(task_id: int) -> str:
    """The last line of every message about a task (see text.clip_message's tail)."""
    return f"{FOOTER_MARK}{task_id}"


def nonce(task_id: int) -> str:
    """The final message's Discord nonce (at most 25 characters)."""
    return f"reelbot-{task_id}"


def is_status_text(content: str) -> bool:
    return content.startswith(STATUS_TITLES)


def is_final_text(content: str, task_id: int) -> bool:
    """Whether the bot's message ``content`` is the final message of task ``task_id``
    (the status message carries the same footer: it is not one)."""
    return content.endswith(f"Task #{task_id}") and not is_status_text(content)
