"""Rows and errors of the store, shared by every backend."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

ACTIVE_STATES = frozenset({"submitting", "queued", "running"})
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
# Seen reactions are kept at least this long (or a caller's longer dedup window), then
# evicted by later claims: the dedup table holds an hour of reactions, not all of them.
REACTION_RETENTION = 3600.0


def utc_day(ts: float) -> str:
    """The quota day (UTC calendar date) of a unix timestamp."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def next_utc_midnight(ts: float) -> float:
    day = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


class TaskChange(TypedDict, total=False):
    """The task columns a step may change, each with its type: an action's outcome, a
    lease's checkpoint, ``Store.update_task`` / ``Store.release``. Keys are TaskRow's
    field names (``outputs`` and ``request`` are stored as JSON); the store's UPDATABLE
    whitelist is exactly these keys (tests/jobs/test_outcomes.py checks it)."""

    provider_task_id: str | None
    thread_id: int | None
    status_message_id: int | None
    state: str
    raw_state: str | None
    progress: int | None
    attempts: int
    error_streak: int
    poll_interval: float
    next_action_at: float | None
    submitted_at: float | None
    finished_at: float | None
    error_code: str | None
    error_message: str | None
    outputs: list[dict[str, Any]]
    credits: float | None
    status_edited_at: float | None
    status_text: str | None
    request: dict[str, Any]
    result_message_id: int | None
    delivery_attempts: int
    delivery_channel_id: int | None
    delivery_sent_at: float | None
    submit_key: str | None
    submit_call: str | None
    not_found_streak: int
    callback_token: str | None
    delivered: bool


@dataclass(slots=True)
class TaskRow:
    id: int
    kind: str
    provider: str
    provider_task_id: str | None
    guild_id: int
    channel_id: int
    thread_id: int | None
    status_message_id: int | None
    requester_id: int
    request: dict[str, Any]
    state: str
    raw_state: str | None
    progress: int | None
    attempts: int
    error_streak: int
    poll_interval: float
    next_action_at: float | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None
    error_code: str | None
    error_message: str | None
    outputs: list[dict[str, Any]]
    credits: float | None
    delivered: bool
    delivery_attempts: int
    result_message_id: int | None
    delivery_channel_id: int | None
    delivery_sent_at: float | None
    status_edited_at: float | None
    status_text: str | None
    quota_day: str
    quota_weight: int
    refunded: bool
    retry_of: int | None
    character_id: int | None
    submit_key: str | None = None
    submit_call: str | None = None
    not_found_streak: int = 0
    callback_token: str | None = None

    @property
    def in_flight(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def reply_channel_id(self) -> int:
        return self.thread_id or self.channel_id

    @classmethod
    def from_mapping(cls, row: Any) -> TaskRow:
        return cls(
            id=row["id"],
            kind=row["kind"],
            provider=row["provider"],
            provider_task_id=row["provider_task_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            thread_id=row["thread_id"],
            status_message_id=row["status_message_id"],
            requester_id=row["requester_id"],
            request=json.loads(row["request_json"]),
            state=row["state"],
            raw_state=row["raw_state"],
            progress=row["progress"],
            attempts=row["attempts"],
            error_streak=row["error_streak"],
            poll_interval=row["poll_interval"],
            next_action_at=row["next_action_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            submitted_at=row["submitted_at"],
            finished_at=row["finished_at"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            outputs=json.loads(row["outputs_json"]) if row["outputs_json"] else [],
            credits=row["credits"],
            delivered=bool(row["delivered"]),
            delivery_attempts=row["delivery_attempts"],
            result_message_id=row["result_message_id"],
            delivery_channel_id=row["delivery_channel_id"],
            delivery_sent_at=row["delivery_sent_at"],
            status_edited_at=row["status_edited_at"],
            status_text=row["status_text"],
            quota_day=row["quota_day"],
            quota_weight=row["quota_weight"],
            refunded=bool(row["refunded"]),
            retry_of=row["retry_of"],
            character_id=row["character_id"],
            submit_key=row["submit_key"],
            submit_call=row["submit_call"],
            not_found_streak=row["not_found_streak"],
            callback_token=row["callback_token"],
        )


@dataclass(frozen=True, slots=True)
class CallbackHint:
    """What a callback found: its task, and whether that task was still in flight."""

    task_id: int
    in_flight: bool  # False: finished (or cancelled) already, so nothing was changed


@dataclass(slots=True)
class NewTask:
    provider: str
    guild_id: int
    channel_id: int
    requester_id: int
    request: dict[str, Any]
    poll_interval: float
    kind: str = "video"
    thread_id: int | None = None
    quota_weight: int = 1
    retry_of: int | None = None
    character_id: int | None = None


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """The limits checked atomically when a task is created."""

    default_limit: int  # DAILY_QUOTA, for guilds that never set one
    cooldown: float = 0.0  # seconds between one user's submissions
    max_in_flight: int = 0  # one user's concurrent in-flight tasks (0 = no cap)
    enforce: bool = True  # False: moderators' own requests still count but are not refused
    # The requester's role ids, for /quota role limits (the highest of them applies).
    role_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    limit: int  # 0 = unlimited
    used: int
    day: str
    resets_at: float
    source: str  # "user", "role", "guild" (server default) or "default" (DAILY_QUOTA)
    role_id: int | None = None  # the role whose limit applies, when source is "role"
    server_used: int = 0  # everyone's credits today in this guild
    server_limit: int = 0  # the server's daily budget (0 = unlimited)

    @property
    def remaining(self) -> int | None:
        return None if self.limit == 0 else max(0, self.limit - self.used)


class SubmissionRefused(Exception):
    """A limit stops this submission; the message is shown to the user as is."""


class QuotaExceeded(SubmissionRefused):
    def __init__(self, status: QuotaStatus) -> None:
        self.status = status
        super().__init__(
            f"You have used {status.used} of your {status.limit} credits today. "
            f"Your quota resets <t:{int(status.resets_at)}:R> (midnight UTC)."
        )


class BudgetExceeded(SubmissionRefused):
    """The server's daily credit budget would be passed (moderators included)."""

    def __init__(self, status: QuotaStatus, price: int) -> None:
        self.status = status
        super().__init__(
            f"This server has used {status.server_used} of its {status.server_limit} credits "
            f"today, and this request costs {price}. The budget resets "
            f"<t:{int(status.resets_at)}:R> (midnight UTC)."
        )


class CooldownActive(SubmissionRefused):
    def __init__(self, retry_at: float) -> None:
        self.retry_at = retry_at
        super().__init__(
            f"Slow down a little: you can start another generation <t:{int(retry_at) + 1}:R>."
        )


class TooManyInFlight(SubmissionRefused):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"You already have {limit} generations running. Wait for one to finish "
            "(see /jobs) before starting another."
        )


class CharacterUnavailable(SubmissionRefused):
    """A task for a character that the store found gone, unusable, or not trainable.

    Checked in the transaction that would create the task, so a delete, an unshare or a
    second ``/character train`` racing with it cannot slip in between.
    """

    def __init__(
        self, character_id: int, state: str | None, image_count: int = 0, *, reason: str = ""
    ) -> None:
        self.character_id = character_id
        self.state = state  # None: the character no longer exists
        self.image_count = image_count
        if not reason:
            reason = (
                "That character no longer exists."
                if state is None
                else "That character is not ready, or not shared with you."
            )
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    tasks: int
    credits: float
    by_provider: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class CharacterRow:
    id: int
    guild_id: int
    owner_id: int
    name: str
    provider: str
    state: str
    thread_id: int | None
    panel_message_id: int | None
    provider_model_id: str | None
    task_id: int | None
    shared: bool
    error: str | None
    created_at: float
    updated_at: float
    image_count: int = 0

    @classmethod
    def from_mapping(cls, row: Any) -> CharacterRow:
        keys = row.keys()
        return cls(
            id=row["id"],
            guild_id=row["guild_id"],
            owner_id=row["owner_id"],
            name=row["name"],
            provider=row["provider"],
            state=row["state"],
            thread_id=row["thread_id"],
            panel_message_id=row["panel_message_id"],
            provider_model_id=row["provider_model_id"],
            task_id=row["task_id"],
            shared=bool(row["shared"]),
            error=row["error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            image_count=row["image_count"] if "image_count" in keys else 0,
        )

    def usable_by(self, user_id: int) -> bool:
        return self.state == "ready" and (self.shared or self.owner_id == user_id)


@dataclass(frozen=True, slots=True)
class CharacterImage:
    sha256: str
    content_type: str
    size: int
    channel_id: int
    message_id: int
    url: str


class DuplicateName(Exception):
    pass


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A server's /settings and spending configuration (guild_config + guild_entries)."""

    guild_id: int
    server_budget: int = 0
    default_provider: str | None = None
    default_model: str | None = None
    allowed_channels: frozenset[int] = frozenset()
    banned_words: tuple[str, ...] = ()
    prices: dict[str, int] = field(default_factory=dict)
    role_limits: dict[int, int] = field(default_factory=dict)
    daily_default: int | None = None  # /quota default (None: DAILY_QUOTA applies)
