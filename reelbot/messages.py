"""The words the bot posts: status messages, final messages, error explanations.

Pure functions of a task row, so they are easy to test and the same everywhere.
"""

from __future__ import annotations

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


def progress_bar(progress: int | None, width: int = 12) -> str:
    if progress is None:
        return ""
    filled = round(width * max(0, min(progress, 100)) / 100)
    return f"`{'█' * filled}{'░' * (width - filled)}` {progress}%"


def preview(text: str, limit: int = PROMPT_PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_text(task: TaskRow) -> str:
    """The status message: prompt, provider, model, requester, state, progress, elapsed."""
    req = task.request
    label = STATE_LABELS.get(task.state, task.state)
    if task.kind == "training":
        title = f"**Character training** `{req.get('name', '')}`"
    else:
        title = f"**Prompt:** {preview(req.get('prompt', ''))}"
    lines = [
        title,
        f"**Provider:** {task.provider}"
        + (f" · **Model:** {req['model']}" if req.get("model") else ""),
        f"**Requested by:** <@{task.requester_id}> · started <t:{int(task.created_at)}:R>",
        f"**State:** {label}"
        + (f" ({task.raw_state})" if task.raw_state and task.state == "running" else ""),
    ]
    bar = progress_bar(task.progress) if task.state in ("queued", "running") else ""
    if bar:
        lines.append(bar)
    if task.state in ("succeeded", "failed", "cancelled") and task.finished_at:
        lines.append(f"**Took:** {format_duration(task.finished_at - task.created_at)}")
    if task.state == "failed" and task.error_code:
        lines.append(f"**Error:** `{task.error_code}`")
    if task.state in ("submitting", "queued", "running"):
        lines.append("-# React ❌ to cancel.")
    lines.append(f"-# Task #{task.id}")
    return "\n".join(lines)


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
    detail = preview(message or "", 400)
    if reason and detail and detail.lower() not in reason:
        return f"{reason}: {detail}"
    return reason or detail or "the provider reported a failure without details"


def failure_text(task: TaskRow) -> str:
    return (
        f"<@{task.requester_id}> your video could not be made. "
        f"**{task.provider}** error `{task.error_code or 'unknown'}`: "
        f"{explain_error(task.error_code, task.error_message)}.\n"
        + ("Your quota for it was given back. " if task.refunded else "")
        + f"React 🔁 to try again.\n-# Task #{task.id}"
    )


def cancelled_text(task: TaskRow, by_user_id: int | None) -> str:
    who = f" by <@{by_user_id}>" if by_user_id and by_user_id != task.requester_id else ""
    return (
        f"<@{task.requester_id}> the generation was cancelled{who}; "
        f"your quota for it was given back. React 🔁 to run it again.\n-# Task #{task.id}"
    )


def success_text(task: TaskRow, links: list[tuple[str, str, float | None]]) -> str:
    """``links``: (kind, url, expires_at) for outputs too large to attach."""
    lines = [f"<@{task.requester_id}> your video is ready! 🎉"]
    for kind, url, expires_at in links:
        expiry = f" (link expires <t:{int(expires_at)}:R>)" if expires_at else ""
        lines.append(f"{kind.replace('_', ' ')} is too large to upload here: {url}{expiry}")
    lines.append(f"React 🔁 to run it again.\n-# Task #{task.id}")
    return "\n".join(lines)
