"""Failover in the submit path (SPEC §4 "Failover", "Never pay twice").

The worker asks three questions around each submit; the answers are outcomes (the
fields to record), like every other decision of the submit path:

- ``before(lease)``: may this submit go out? Its provider may be down: then a request
  that named no provider moves to the next provider (fields: due at once, in the new
  provider's lane), one that named it fails naming providers that are up. When the
  provider's cool-off has just ended, this submit may be its one probe.
- ``succeeded(task, probe)``: the provider took it (a probe brings it back up).
- ``failed(lease, exc, ...)``: record what the error says about the provider, and move
  the request if it was *refused* (402, 429 past its retries, a connection that never
  opened) and nothing was sent that could have been acted on. Never after an
  ambiguous submit: the request may already be running there.

The one write, moving the task and its charge, goes through the poller's Lease.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from providers.base import ProviderError
from reelbot.failover import mapping
from reelbot.failover.book import HealthBook, Move, NoMove
from reelbot.failover.health import Outcome, describe
from reelbot.generations.request import Moved, VideoRequest
from reelbot.jobs.lease import Lease
from reelbot.store.models import BudgetExceeded, QuotaExceeded, QuotaPolicy, TaskChange, TaskRow

log = logging.getLogger(__name__)

PROVIDER_DOWN = "provider_down"  # the error code of a request its provider cannot take
MAX_NOTE = 300

PolicyOf = Callable[[TaskRow], Awaitable[QuotaPolicy]]
PriceOf = Callable[[int, str], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Gate:
    """What ``before`` decided: ``fields`` to record instead of sending (a move or a
    refusal), or send (``probe``: this submit is the provider's one probe)."""

    fields: TaskChange | None = None
    probe: bool = False


def _fail(now: float, code: str, message: str) -> TaskChange:
    return {
        "state": "failed",
        "error_code": code,
        "error_message": message[:1000],
        "finished_at": now,
        "next_action_at": now,
    }


def _counted(task: TaskRow) -> bool:
    """Health and failover are about making videos: a training's submits and polls
    neither count towards its provider's health nor move (its model lives there)."""
    return task.kind == "video"


def up_note(up: tuple[str, ...] | list[str]) -> str:
    if not up:
        return "no other provider is up right now"
    return f"providers that are up: {', '.join(up)}"


class SubmitFailover:
    def __init__(self, *, book: HealthBook, policy_of: PolicyOf, price_of: PriceOf) -> None:
        self.book = book
        self.policy_of = policy_of
        self.price_of = price_of

    async def before(self, lease: Lease) -> Gate:
        task = lease.task
        # A resend under hiapi's key goes as before (the provider may already have it).
        # A task that named its provider and is retrying it keeps its retry budget; one
        # that may move is gated on every attempt (moved as soon as its provider is down).
        if not _counted(task) or task.submitted_at is not None:
            return Gate()
        request = VideoRequest.of(task)
        if task.error_streak and not mapping.may_move(request):
            return Gate()
        seen = await self.book.gate(task.provider)
        if seen != "skip":
            return Gate(probe=seen == "probe")
        health = (await self.book.snapshot()).get(task.provider)
        state = describe(health)
        if mapping.may_move(request):
            found = await self.book.find_move(task.provider, request, exclude=request.tried)
            if isinstance(found, Move):
                return Gate(fields=await self._move(lease, found))
            return Gate(
                fields=_fail(
                    time.time(),
                    PROVIDER_DOWN,
                    f"{task.provider} is {state} and no other provider could take "
                    f"this request ({found.reason}); {up_note(found.up)}",
                )
            )
        up = await self.book.up_providers(exclude=task.provider)
        return Gate(
            fields=_fail(
                time.time(),
                PROVIDER_DOWN,
                f"{task.provider} is {state}; nothing was sent. {up_note(up).capitalize()}"
                ": 🔁 runs it on the same provider, /animate with `provider` on another",
            )
        )

    async def succeeded(self, task: TaskRow, *, probe: bool) -> None:
        if _counted(task):
            await self.book.record(task.provider, Outcome.OK, probe=probe)

    async def failed(
        self, lease: Lease, exc: ProviderError, *, probe: bool, unsure: bool, retries_left: bool
    ) -> TaskChange | None:
        """Fields of a move, or None: the usual error handling decides (retry or fail)."""
        task = lease.task
        if not _counted(task):
            return None
        await self.book.record_submit_error(task.provider, exc, probe=probe)
        if unsure or exc.ambiguous:
            return None  # never pay twice: the provider may have it
        request = VideoRequest.of(task)
        if not mapping.may_move(request):
            return None
        if not mapping.refusal_moves(exc, retries_left=retries_left):
            return None
        found = await self.book.find_move(task.provider, request, exc, exclude=request.tried)
        if isinstance(found, NoMove):
            log.info(
                "task %s: %s refused it and no provider can take it instead", task.id, task.provider
            )
            return None
        return await self._move(lease, found)

    async def polled(self, task: TaskRow, *, good: bool, error: str | None = None) -> None:
        """A poll failed, or a task ended: the success rate moves, never the state."""
        if _counted(task):
            outcome = Outcome.OK if good else Outcome.ERROR
            await self.book.record(task.provider, outcome, submit=False, error=error)

    async def up_providers(self, exclude: str) -> list[str]:
        return await self.book.up_providers(exclude=exclude)

    async def _move(self, lease: Lease, move: Move) -> TaskChange:
        task = lease.task
        now = time.time()
        moved = Moved(
            origin=task.provider,
            tried=(*VideoRequest.of(task).tried, task.provider),
            note=move.note[:MAX_NOTE],
        )
        request = dataclasses.replace(move.request, failover=moved)
        price = await self.price_of(task.guild_id, move.target)
        policy = await self.policy_of(task)
        try:
            done = await lease.move(
                provider=move.target,
                request=request.to_stored(),
                price=price,
                policy=policy,
                now=now,
            )
        except (BudgetExceeded, QuotaExceeded) as exc:
            what = (
                "the server's daily budget"
                if isinstance(exc, BudgetExceeded)
                else "your daily credit limit"
            )
            return _fail(
                now,
                PROVIDER_DOWN,
                f"{move.note.split(':', 1)[0]}; {move.target} could take it, but at "
                f"{price} credit(s) it would pass {what}",
            )
        if not done:
            return {}
        log.info("task %s: %s", task.id, move.note)
        # Due at once, now in the new provider's lane; "state" re-renders the status
        # message, which says where it went and why.
        return {"state": "submitting", "next_action_at": now}
