"""What a step on a task decided: pure functions from what is known to what should change.

An outcome is the set of task columns to change (``{"state": "failed", ...}``), each
key and value typed (:class:`~reelbot.store.models.TaskChange`, so mypy rejects a
misspelt column or a wrong type); the poller applies it in one ``release`` statement,
which also ends its lease. Nothing here touches the store, the network or the clock:
``now`` and the schedule are arguments, so every rule (SPEC §4 "Never pay twice", the
poll schedule, failure words) is a table test.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from providers.base import ErrorKind, Output, ProviderError, TaskStatus
from reelbot import messages
from reelbot.jobs.scheduling import backoff
from reelbot.store.models import TaskChange, TaskRow

log = logging.getLogger(__name__)

Outcome = TaskChange  # task column → new value, each typed

NOT_FOUND_CONFIRMATIONS = 3  # a provider 404 is believed only after this many in a row
MAX_SUBMIT_RETRIES = 5
MAX_PROVIDER_WORD = 100  # stored error codes and state words
MAX_ERROR_MESSAGE = 1000
# The failure code of a submit the provider may have acted on (SPEC §4 "Never pay twice").
UNCONFIRMED = "submit_unconfirmed"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The poll and back-off bounds of PollerSettings (POLL_*_SECONDS)."""

    floor: float
    ceiling: float

    def backoff(self, streak: int, retry_after: float | None = None) -> float:
        return backoff(streak, floor=self.floor, ceiling=self.ceiling, retry_after=retry_after)


def clip(text: str | None, limit: int = MAX_PROVIDER_WORD) -> str | None:
    """Provider words (codes, states) are unbounded; what we keep of them is not."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def failed(now: float, code: str, message: str) -> Outcome:
    return {
        "state": "failed",
        "error_code": clip(code),
        "error_message": clip(message, MAX_ERROR_MESSAGE),
        "finished_at": now,
        "next_action_at": now,
    }


def unexpected_error(task: TaskRow, *, now: float, schedule: Schedule) -> Outcome:
    """A bug of ours in any step: try again later, backing off."""
    streak = task.error_streak + 1
    return {"error_streak": streak, "next_action_at": now + schedule.backoff(streak)}


# --- submit ----------------------------------------------------------------------------------
def before_submit(
    task: TaskRow, *, configured: bool, idempotent: bool, now: float, task_timeout: float
) -> Outcome | None:
    """The outcome of a submit that must not be sent at all, or None to send it."""
    if not configured:
        return failed(now, "provider_unavailable", f"{task.provider} is no longer configured")
    if task.provider_task_id:  # submitted, then the process stopped before moving on
        return {"state": "queued", "next_action_at": now}
    if task.submitted_at is not None and not idempotent:
        # A previous submit may or may not have reached the provider. Submitting
        # again could bill twice, so we stop here and let the requester decide.
        return failed(
            now,
            UNCONFIRMED,
            "the bot stopped while submitting this request, so it cannot tell whether "
            f"{task.provider} received it; it may still make the video",
        )
    if task.created_at + task_timeout - now <= 0:
        if task.submitted_at is not None:
            return failed(now, UNCONFIRMED, f"{task.provider} never confirmed the request")
        return failed(now, "task_timeout", f"not submitted after {task_timeout / 60:g} minutes")
    return None


def submitted(provider_task_id: str, *, sent_at: float, now: float, interval: float) -> Outcome:
    return {
        "state": "queued",
        "provider_task_id": provider_task_id,
        "submitted_at": sent_at,
        "poll_interval": interval,
        "error_streak": 0,
        "next_action_at": now + interval,
    }


def submit_error(
    task: TaskRow,
    exc: ProviderError,
    *,
    idempotent: bool,
    now: float,
    schedule: Schedule,
    also: str = "",
) -> Outcome:
    """SPEC §4 "Never pay twice": a refused or never-sent submit may be retried; an
    ambiguous one only to a provider that deduplicates (hiapi's Idempotency-Key).
    ``also``: said after the reason of a failure (failover: "providers that are up: …")."""
    # submitted_at is cleared after every attempt known to have made nothing, so a
    # task claimed with it set had an earlier attempt the provider may have taken.
    unsure = exc.ambiguous or task.submitted_at is not None
    may_resend = not exc.ambiguous or idempotent
    if exc.retryable and may_resend and task.error_streak < MAX_SUBMIT_RETRIES:
        log.warning("task %s: submit to %s failed (%r); retrying", task.id, task.provider, exc)
        fields: Outcome = {
            "error_streak": task.error_streak + 1,
            "next_action_at": now + schedule.backoff(task.error_streak + 1, exc.retry_after),
        }
        if not unsure:
            # Nothing was made: the next attempt starts afresh (a restart included).
            fields["submitted_at"] = None
            if not idempotent:
                fields |= {"submit_call": None, "submit_key": None}
        return fields
    if exc.kind is ErrorKind.AUTH:
        log.error("%s rejected the API key: check %s_API_KEY", task.provider, task.provider.upper())
    if unsure:
        log.warning(
            "task %s: %s may have received the submit (%r); not sending it again",
            task.id,
            task.provider,
            exc,
        )
        return failed(now, UNCONFIRMED, f"{exc.message} (sending it again could bill twice)")
    log.info("task %s: submit failed: %r", task.id, exc)
    code, message = exc.code, exc.message
    # Providers' own codes ("1008", "invalid_api_key") mean nothing to members: say
    # what kind of error it was (out of credits, bad key...) next to the provider's words.
    reason = messages.ERROR_REASONS.get(exc.kind.value)
    if code.lower() not in messages.ERROR_REASONS and reason and reason not in message:
        message = f"{reason}: {message}"
    if also:
        message = f"{message}; {also}"
    return failed(now, code, message)


# --- poll ------------------------------------------------------------------------------------
def poll_timed_out(task: TaskRow, *, now: float, task_timeout: float) -> Outcome | None:
    started = task.submitted_at or task.created_at
    if now - started > task_timeout:
        return failed(now, "task_timeout", f"no result after {task_timeout / 60:g} minutes")
    return None


def poll_error(task: TaskRow, exc: ProviderError, *, now: float, schedule: Schedule) -> Outcome:
    streak = task.error_streak + 1
    # Consecutive "task not found" answers, kept in the row (not in memory, where a
    # worker's count would grow forever and be lost on restart): other errors say
    # nothing about the task, so they neither count nor reset; a real answer resets.
    misses = task.not_found_streak
    if exc.kind is ErrorKind.NOT_FOUND:
        misses += 1
        if misses >= NOT_FOUND_CONFIRMATIONS:
            return failed(now, "not_found", exc.message) | {"not_found_streak": misses}
    if exc.kind is ErrorKind.AUTH:
        log.error(
            "%s rejected the API key while polling task %s: check %s_API_KEY",
            task.provider,
            task.id,
            task.provider.upper(),
        )
    else:
        log.warning("task %s: poll of %s failed (%r)", task.id, task.provider, exc)
    # Everything else is retried until TASK_TIMEOUT_SECONDS: the generation may
    # already be paid for, so we never give up on it early.
    return {
        "error_streak": streak,
        "attempts": task.attempts + 1,
        "not_found_streak": misses,
        "next_action_at": now + schedule.backoff(streak, exc.retry_after),
    }


def from_status(
    task: TaskRow, status: TaskStatus, *, now: float, interval: float, outputs_expected: bool = True
) -> Outcome:
    """A real answer from the provider; ``interval``: the next poll, if one is needed;
    ``outputs_expected``: a success without outputs is a failure (JobKind.has_outputs)."""
    common: Outcome = {
        "attempts": task.attempts + 1,
        "error_streak": 0,
        "not_found_streak": 0,
        "raw_state": clip(status.raw_state),
    }
    if status.credits is not None:
        common["credits"] = status.credits
    if status.state == "succeeded":
        outputs = [output_dict(o) for o in status.outputs]
        if not outputs and outputs_expected:
            return common | failed(now, "no_output", "the provider returned no output")
        return common | {
            "state": "succeeded",
            "progress": 100,
            "outputs": outputs,
            "finished_at": now,
            "next_action_at": now,
        }
    if status.state == "failed":
        return common | failed(
            now, status.error_code or "failed", status.error_message or "generation failed"
        )
    return common | {
        "state": status.state,
        "progress": status.progress,
        "poll_interval": interval,
        "next_action_at": now + interval,
    }


def output_dict(output: Output) -> dict[str, Any]:
    return {
        "kind": output.kind,
        "url": output.url,
        "data_base64": output.data_base64,
        "file_id": output.file_id,
        "expires_at": output.expires_at,
        "content_type": output.content_type,
    }
