"""A claimed task row, as the worker holding it sees it.

The poller is the only writer of a claimed row. An action (submit, poll, deliver)
decides what should change and returns it; the poller applies that outcome in one
``release`` statement. Some changes cannot wait for the end of the step: the marks
that must be stored *before* a side effect (a submit "may have left", a final message
"is being posted in channel X since T"), and a refund, which moves quota with it. An
action makes those through the :class:`Lease` the poller hands it, never through the
store, so every write of a claimed row goes through the poller's lease.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Unpack

from reelbot.store.base import Store
from reelbot.store.models import QuotaPolicy, TaskChange, TaskRow


def applied(task: TaskRow, fields: TaskChange) -> TaskRow:
    """``task`` as it reads once ``fields`` (an outcome or a checkpoint) are stored."""
    return dataclasses.replace(task, **fields)  # every TaskChange key is a TaskRow field


class Lease:
    """The poller's hold on one claimed task: its current view and its checkpoints."""

    def __init__(self, store: Store, owner: str, task: TaskRow) -> None:
        self._store = store
        self.owner = owner
        self.claimed = task  # as claimed: its state is what the release expects
        self.task = task  # as it reads now, checkpoints included

    async def checkpoint(self, **fields: Unpack[TaskChange]) -> None:
        """Store ``fields`` now, before a side effect that depends on them being known."""
        await self._store.update_task(self.task.id, **fields)
        self.task = applied(self.task, fields)

    async def refund(self) -> bool:
        """Give the task's quota back (once); whether this call did."""
        done = await self._store.refund(self.task.id)
        if done:
            self.task = dataclasses.replace(self.task, refunded=True)
        return done

    async def move(
        self,
        *,
        provider: str,
        request: dict[str, Any],
        price: int,
        policy: QuotaPolicy,
        now: float,
    ) -> bool:
        """Failover: the task goes to ``provider`` with ``request`` and its charge to
        ``price``, atomically (raises BudgetExceeded / QuotaExceeded and changes
        nothing); False when the task moved on meanwhile."""
        moved = await self._store.move_task(
            self.task.id, provider=provider, request=request, price=price, policy=policy, now=now
        )
        if moved is None:
            return False
        self.task = moved
        return True
