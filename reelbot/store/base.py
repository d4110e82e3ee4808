"""The store interface, implemented by the SQLite and the PostgreSQL backends.

Every method is one transaction; callers never hold a transaction across awaits on
Discord or a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, Unpack

from reelbot.failover.health import Health, Outcome, Transition
from reelbot.store.models import (
    CallbackHint,
    CharacterImage,
    CharacterRow,
    GuildSettings,
    NewTask,
    QuotaPolicy,
    QuotaStatus,
    TaskChange,
    TaskRow,
    UsageSummary,
)


class Store(Protocol):
    # True when this process is the only one using the store (SQLite): leases left in
    # it are then from a previous run and may be voided at start (release_all_leases).
    # False when processes share it (PostgreSQL): expired leases are re-claimed instead.
    single_process: bool

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` when another process adds or changes due work.

        A no-op where there are no other processes (SQLite).
        """
        ...

    # --- tasks ----------------------------------------------------------------------
    async def create_task(self, task: NewTask, *, now: float, policy: QuotaPolicy) -> TaskRow:
        """Insert a task in state ``submitting`` and take its quota, atomically.

        Raises QuotaExceeded, CooldownActive or TooManyInFlight and changes nothing.
        A video with ``character_id`` also raises CharacterUnavailable unless that
        character is ready and the requester's own or shared, checked in the same
        transaction (a delete racing with it waits or wins, never slips in between).
        """
        ...

    async def start_training(
        self, task: NewTask, *, now: float, policy: QuotaPolicy, min_images: int
    ) -> TaskRow:
        """Move character ``task.character_id`` from collecting/failed to training and
        create its training task (taking quota), in one transaction.

        Raises CharacterUnavailable (gone, already training or ready, fewer than
        ``min_images`` photos) or a quota refusal, and then changes nothing.
        """
        ...

    async def training_tasks(self, character_id: int) -> list[TaskRow]:
        """The character's training tasks, oldest first."""
        ...

    async def get_task(self, task_id: int) -> TaskRow | None: ...
    async def task_by_message(self, message_id: int) -> TaskRow | None:
        """The task whose status message or final (result) message this is."""
        ...

    async def update_task(self, task_id: int, **fields: Unpack[TaskChange]) -> None: ...

    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        owner: str,
        lease_seconds: float,
        provider: str | None = None,
        delivery: bool = False,
    ) -> list[TaskRow]:
        """Lease up to ``limit`` due tasks of one lane, earliest first."""
        ...

    async def release(
        self,
        task_id: int,
        owner: str,
        *,
        expected_state: str | None = None,
        **fields: Unpack[TaskChange],
    ) -> bool:
        """Record the outcome of an action and give the lease back.

        With ``expected_state`` nothing changes (False) if the task's state moved.
        """
        ...

    async def callback_hint(self, provider: str, token: str, *, now: float) -> CallbackHint | None:
        """A provider called back for the task with this callback token: make it due now
        (a hint; the next poll decides). None when no task of ``provider`` has the token.

        A task leased right now (a poll in flight may have read the state from before
        the callback) keeps its lease: it is marked, and its release then makes it due
        at once instead of at the interval the poll chose. On PostgreSQL the update
        NOTIFYs the workers of every process.
        """
        ...

    async def short_link(
        self, task_id: int, url: str, *, token: str, expires_at: float, now: float
    ) -> str:
        """The token of the short link to ``url`` for this task: the one made before
        (a delivery retry posts the same link), else ``token``, stored until
        ``expires_at``. Expired links are removed on the way."""
        ...

    async def resolve_short_link(self, token: str, *, now: float) -> str | None:
        """Where a short link points, while it has not expired."""
        ...

    async def cancel_task(self, task_id: int, *, now: float) -> bool:
        """In-flight → cancelled; False when the task was no longer in flight."""
        ...

    async def renew_leases(
        self, task_ids: Collection[int], owner: str, *, until: float, due_at_end: bool = False
    ) -> list[int]:
        """Extend to ``until`` the leases ``owner`` still holds on these tasks.

        Only rows leased by ``owner`` move: a lease that lapsed and was taken over by
        another process, or was voided by a cancel, stays theirs. Returns the ids
        whose lease was extended. ``due_at_end``: their stored next action is also put
        no earlier than ``until`` (tasks the poller keeps in memory for their next
        poll: if this process dies, that is when another may take them over anyway,
        and claims no longer walk past them in the due-time index).
        """
        ...

    async def release_all_leases(self) -> int: ...

    async def next_due_at(self) -> float | None: ...

    async def mark_delivered(self, task_id: int, result_message_id: int, *, now: float) -> bool:
        """Set the delivered marker once; False when it was already set."""
        ...

    async def refund(self, task_id: int) -> bool:
        """Give a task's quota back once; False when already refunded.

        A task charged before a ``reset_usage`` of its day gives nothing back (the reset
        already did), so a refund never takes back the charge of a later task."""
        ...

    async def user_tasks(self, guild_id: int, user_id: int, *, limit: int) -> list[TaskRow]: ...
    async def guild_tasks(self, guild_id: int, *, limit: int) -> list[TaskRow]: ...
    async def count_unfinished(self) -> int: ...
    async def input_images_in_use(self, *, since: float) -> set[str]:
        """sha256 of the first-frame images of tasks created at or after ``since``."""
        ...

    async def recent_durations(self, provider: str, *, limit: int) -> list[float]:
        """Seconds from submit to success of the provider's latest ``limit`` videos, oldest
        first (what the poller's completion model starts from)."""
        ...

    # --- provider health and failover (SPEC §4 "Failover") -----------------------------
    async def provider_health(self) -> dict[str, Health]:
        """Every provider's health record that was ever written (absent = up)."""
        ...

    async def record_provider_outcome(
        self,
        provider: str,
        outcome: Outcome,
        *,
        now: float,
        submit: bool = True,
        probe: bool = False,
        error: str | None = None,
        cooloff_base: float = ...,
    ) -> tuple[Health, Transition | None]:
        """Apply one outcome (reelbot/failover/health.apply) atomically; the new record
        and the transition it caused, seen by exactly one caller."""
        ...

    async def claim_probe(self, provider: str, *, now: float, lease: float = ...) -> bool:
        """Take the single probe of a down provider whose cool-off has ended."""
        ...

    async def move_task(
        self,
        task_id: int,
        *,
        provider: str,
        request: Mapping[str, Any],
        price: int,
        policy: QuotaPolicy,
        now: float,
    ) -> TaskRow | None:
        """Failover: hand a never-sent submit to ``provider`` with ``request``, its
        charge moved to ``price`` atomically (raises BudgetExceeded / QuotaExceeded and
        changes nothing); None when the task moved on meanwhile."""
        ...

    async def recent_completions(
        self, provider: str, *, limit: int
    ) -> list[tuple[str | None, float]]:
        """(model, seconds from submit to success) of the provider's latest ``limit``
        videos, oldest first (what the status message's ETA per model starts from)."""
        ...

    # --- quotas & moderation ----------------------------------------------------------
    async def quota_status(
        self,
        guild_id: int,
        user_id: int,
        *,
        now: float,
        default_limit: int,
        role_ids: Sequence[int] = (),
    ) -> QuotaStatus:
        """Credits used today and the limit that applies (user → highest role → server
        default → ``default_limit``), with the server's spend against its budget."""
        ...

    async def server_spend(self, guild_id: int, *, now: float) -> int: ...
    async def top_spenders(
        self, guild_id: int, *, now: float, limit: int = 5
    ) -> list[tuple[int, int]]: ...
    async def user_limit(self, guild_id: int, user_id: int) -> int | None: ...

    # --- server settings (store/shared.py, the same for both backends) ----------------------
    async def guild_settings(self, guild_id: int) -> GuildSettings: ...
    async def set_guild_config(self, guild_id: int, **fields: Any) -> dict[str, Any]:
        """server_budget / default_provider / default_model; returns the old values."""
        ...

    async def set_entry(
        self, guild_id: int, kind: str, entry: str, value: int | None
    ) -> int | None:
        """channel / banned_word / price / role_limit entries; returns the old value."""
        ...

    async def credit_price(self, guild_id: int, provider: str) -> int: ...
    async def audit_page(
        self, guild_id: int, *, offset: int = 0, limit: int = 10
    ) -> list[dict[str, Any]]: ...
    async def set_user_limit(self, guild_id: int, user_id: int, limit: int) -> None: ...
    async def set_guild_default(self, guild_id: int, limit: int) -> None: ...
    async def reset_usage(self, guild_id: int, user_id: int, *, now: float) -> int: ...
    async def usage_summary(self, guild_id: int, user_id: int | None = None) -> UsageSummary: ...
    async def audit(
        self,
        guild_id: int,
        actor_id: int,
        action: str,
        *,
        target_id: int | None,
        details: str,
        now: float,
    ) -> None: ...
    async def audit_entries(self, guild_id: int, *, limit: int = 50) -> list[dict[str, Any]]: ...

    async def claim_reaction(
        self, message_id: int, user_id: int, emoji: str, *, now: float, window: float
    ) -> bool:
        """True the first time this reaction is seen within ``window`` seconds.

        Rows older than ``max(window, REACTION_RETENTION)`` are evicted on the way, so
        the table holds recent reactions only."""
        ...

    # --- characters -----------------------------------------------------------------------
    async def create_character(
        self, *, guild_id: int, owner_id: int, name: str, provider: str, now: float
    ) -> CharacterRow:
        """Raises DuplicateName when the owner already has a character of that name."""
        ...

    async def get_character(self, character_id: int) -> CharacterRow | None: ...
    async def character_by_thread(self, thread_id: int) -> CharacterRow | None: ...
    async def guild_characters(self, guild_id: int) -> list[CharacterRow]: ...
    async def update_character(self, character_id: int, **fields: Any) -> None: ...
    async def add_character_image(
        self, character_id: int, image: CharacterImage, *, now: float, limit: int
    ) -> str:
        """'added', 'duplicate' (same bytes already there) or 'full' (at the limit)."""
        ...

    async def character_images(self, character_id: int) -> list[CharacterImage]: ...
    async def delete_character(self, character_id: int) -> list[CharacterImage]: ...
