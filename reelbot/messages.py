"""The words the bot posts: status messages, final messages, error explanations.

Pure functions of a task row, so they are easy to test and the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import discord

from reelbot import text, vocabulary
from reelbot.generations.request import VideoRequest, video_request
from reelbot.store.models import TaskRow

STATE_LABELS = {
    "submitting": "⏳ Submitting",
    "queued": "🕒 Queued",
    "running": "🎬 Generating",
    "succeeded": "✅ Done",
    "failed": "❌ Failed",
    "cancelled": "🚫 Cancelled",
}

# Plain-language reasons for the provider error codes users will meet most.
ERROR_REASONS = {
    "auth": "the bot's API key for this provider was rejected (the operator must check it)",
    "credits": "the provider account is out of credits (tell the server's operator)",
    "rate_limited": "the provider is busy and rate limiting us",
    "moderation": "the request was blocked by the provider's content filter",
    "nsfw": "the request was blocked by the provider's content filter",
    "not_found": "the provider lost track of this task",
    "timeout": "the provider took too long",
    "task_timeout": "the provider took too long",
    "invalid": "the provider rejected the request",
    "no_output": "the provider finished but returned no video",
    "download_failed": "the finished video could not be downloaded from the provider",
    "submit_unconfirmed": (
        "the bot could not confirm the submission, so the provider may still have made "
        "this video; it was not sent again, and 🔁 starts a fresh request"
    ),
    "internal_error": "something went wrong inside the bot",
    "cancelled": "the task was cancelled",
}

PROMPT_PREVIEW = 300
# What provider- or user-supplied words may take in a message (they are unbounded).
CODE_LIMIT = 100  # provider error code
STATE_LIMIT = 60  # provider's raw state word
MODEL_LIMIT = 100  # model name
FAILOVER_NOTE_LIMIT = 200  # "hiapi is unavailable: sent to foxapi"
NAME_LIMIT = 100  # character name
DETAIL_LIMIT = 400  # provider error message
# A link longer than this goes into an embed as a masked link, not into the text.
INLINE_URL_LIMIT = 400
INLINE_BUDGET = 1200  # of the message's 2000, leaving room for the other lines


def short(value: object, limit: int) -> str:
    """A provider/user string on one line, clipped with an ellipsis."""
    return text.clip(" ".join(str(value).split()), limit)


def footer(task: TaskRow) -> str:
    return vocabulary.footer(task.id)


def progress_bar(progress: int | None, width: int = 12) -> str:
    if progress is None:
        return ""
    filled = round(width * max(0, min(progress, 100)) / 100)
    return f"`{'█' * filled}{'░' * (width - filled)}` {progress}%"


def preview(value: str, limit: int = PROMPT_PREVIEW) -> str:
    return text.clip(" ".join(value.split()), limit)


def failover_lines(request: VideoRequest) -> list[str]:
    """The note "hiapi is unavailable: sent to foxapi" when failover moved a request."""
    note = request.failover.note if request.failover is not None else ""
    return [f"↪️ {short(note, FAILOVER_NOTE_LIMIT)}"] if note else []


ETA_MARK = "-# ⏱️ "


def shown_eta(status: str | None) -> str | None:
    """The ETA phrase a status message already shows, if any: a task keeps the estimate
    it was given (recomputing it as the medians drift would edit every message in
    flight each time a rounded figure flips)."""
    for line in (status or "").splitlines():
        if line.startswith(ETA_MARK):
            return line.removeprefix(ETA_MARK)
    return None


def video_title(request: VideoRequest) -> str:
    return f"{vocabulary.STATUS_TITLE} {preview(request.prompt)}"


def training_title(name: str) -> str:
    return f"{vocabulary.TRAINING_TITLE} `{short(name, NAME_LIMIT)}`"


def status_text(task: TaskRow, *, title: str, eta: str | None = None) -> str:
    """The status message: ``title`` (its kind's: reelbot/jobs/kinds.py), provider,
    model, requester, state, progress, elapsed, and while in flight ``eta`` ("usually
    ready in about 4 min", reelbot/buttons.py)."""
    video = video_request(task)
    label = STATE_LABELS.get(task.state, task.state)
    model = video.model if video is not None else None
    lines = [
        title,
        f"**Provider:** {task.provider}"
        + (f" · **Model:** {short(model, MODEL_LIMIT)}" if model else ""),
        *(failover_lines(video) if video is not None else []),
        f"**Requested by:** <@{task.requester_id}> · started <t:{int(task.created_at)}:R>",
        f"**State:** {label}"
        + (
            f" ({short(task.raw_state, STATE_LIMIT)})"
            if task.raw_state and task.state == "running"
            else ""
        ),
    ]
    bar = progress_bar(task.progress) if task.state in ("queued", "running") else ""
    if bar:
        lines.append(bar)
    if task.state in ("succeeded", "failed", "cancelled") and task.finished_at:
        lines.append(f"**Took:** {format_duration(task.finished_at - task.created_at)}")
    if task.state == "failed" and task.error_code:
        lines.append(f"**Error:** `{short(task.error_code, CODE_LIMIT)}`")
    if video is not None and isinstance(video.seed, int):
        lines.append(f"**Seed:** `{video.seed}`")
    if task.state in ("submitting", "queued", "running"):
        if eta:
            lines.append(f"{ETA_MARK}{eta}")
        lines.append("-# Press Cancel or react ❌ to cancel.")
    return text.clip_message("\n".join(lines), footer(task))


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def explain_error(code: str | None, message: str | None) -> str:
    reason = ERROR_REASONS.get((code or "").lower())
    detail = preview(message or "", DETAIL_LIMIT)
    if reason and detail and detail.lower() not in reason:
        return f"{reason}: {detail}"
    return reason or detail or "the provider reported a failure without details"


def failure_text(task: TaskRow) -> str:
    code = short(task.error_code or "unknown", CODE_LIMIT)
    return text.clip_message(
        f"<@{task.requester_id}> your video could not be made. "
        f"**{task.provider}** error `{code}`: "
        f"{explain_error(task.error_code, task.error_message)}.\n"
        + ("Your quota for it was given back. " if task.refunded else "")
        + "React 🔁 to try again.",
        footer(task),
    )


def cancelled_text(task: TaskRow, by_user_id: int | None) -> str:
    who = f" by <@{by_user_id}>" if by_user_id and by_user_id != task.requester_id else ""
    return (
        f"<@{task.requester_id}> the generation was cancelled{who}; "
        f"your quota for it was given back. React 🔁 to run it again.{footer(task)}"
    )


@dataclass(slots=True)
class Outgoing:
    """A message to post: text within 2000, and embeds within Discord's embed limits."""

    content: str
    embeds: list[discord.Embed] = field(default_factory=list)


def success_message(task: TaskRow, links: list[tuple[str, str, float | None]]) -> Outgoing:
    """``links``: (kind, url, expires_at) for outputs too large to attach.

    A short link goes in the text. A long one (signed URLs run to thousands of
    characters) goes into an embed as a masked link ``[video](url)``: an embed
    description holds 4096 characters and all embeds 6000. A link that does not
    fit even there cannot be posted on Discord at all: cutting it would give a
    dead link, so the message says so and names the host and the provider's task
    id, which is all the requester (or the operator) can use to find the video.
    """
    lines = [f"<@{task.requester_id}> your video is ready! 🎉"]
    embeds: list[discord.Embed] = []
    embed_chars = 0
    for kind, url, expires_at in links:
        label = kind.replace("_", " ")
        expiry = f" (link expires <t:{int(expires_at)}:R>)" if expires_at else ""
        inline = f"{label} is too large to upload here: {url}{expiry}"
        if (
            text.fits(url, INLINE_URL_LIMIT)
            and text.size("\n".join([*lines, inline])) <= INLINE_BUDGET
        ):
            lines.append(inline)  # a bare URL must never be cut: only whole lines go in
            continue
        masked = text.masked_link(f"Download the {label}", url)
        if (
            len(embeds) < text.MAX_EMBEDS
            and text.fits(masked, text.EMBED_DESCRIPTION)
            and embed_chars + text.size(masked) <= text.EMBED_TOTAL
        ):
            embeds.append(discord.Embed(description=masked))
            embed_chars += text.size(masked)
            lines.append(f"{label} is too large to upload here: link below{expiry}")
            continue
        host = short(urlsplit(url).hostname or "the provider", 100)
        ref = (
            f" (provider task `{short(task.provider_task_id, 100)}`)"
            if task.provider_task_id
            else ""
        )
        lines.append(
            f"{label} is too large to upload here, and the provider's link to it is "
            f"{len(url)} characters long, more than a Discord message can carry, so I "
            f"cannot post it. It is on {host}{ref}{expiry}."
        )
    video = video_request(task)
    if video is not None and isinstance(video.seed, int):
        lines.append(f"**Seed:** `{video.seed}`")
    lines.append("Use the buttons below, or react 🔁 to run it again.")
    return Outgoing(text.clip_message("\n".join(lines), footer(task)), embeds)


def success_text(task: TaskRow, links: list[tuple[str, str, float | None]]) -> str:
    return success_message(task, links).content


def refused_text(task: TaskRow, *, refunded: bool) -> str:
    """The fallback when Discord refused the final message itself (400): short, made
    only of words we control, so it is sure to be accepted."""
    what = (
        "your video is ready, but Discord refused the message carrying it"
        if task.state == "succeeded"
        else "Discord refused the message about your request"
    )
    quota = " Your quota for it was given back." if refunded else ""
    return (
        f"<@{task.requester_id}> {what} (it broke one of Discord's limits), so I cannot "
        f"show it here.{quota} React 🔁 to try again.{footer(task)}"
    )


def refused_status_text(task: TaskRow, *, title: str) -> str:
    """A status message reduced to what cannot break a limit (``title``: its kind's
    first words, vocabulary.STATUS_TITLES)."""
    label = STATE_LABELS.get(task.state, "…")
    return (
        f"{title} (not shown: too long for Discord)\n**Provider:** {task.provider}\n"
        f"**State:** {label}{footer(task)}"
    )
