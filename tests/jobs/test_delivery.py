"""Delivery's outcome, below end to end: what a step returns for the poller to apply,
and that it changes the claimed row only through the poller's Lease."""

from __future__ import annotations

from typing import Any

from reelbot.jobs.lease import Lease
from tests.jobs.rows import Client, delivery_to, finished_task


class Recorder:
    """A store that only records what was asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def update_task(self, task_id: int, **fields: Any) -> None:
        self.calls.append(("update_task", fields))

    async def refund(self, task_id: int) -> bool:
        self.calls.append(("refund", {}))
        return True

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"delivery called store.{name} itself")


async def test_an_output_that_cannot_be_fetched_fails_the_task_in_the_outcome() -> None:
    """The lease bug of issue 12: the failure is part of the returned outcome, not a
    store write behind the poller's back (which made its release miss the row)."""
    store, client = Recorder(), Client()
    delivery = delivery_to(client, store)
    lease = Lease(store, "me", finished_task())  # type: ignore[arg-type]
    outcome = await delivery.deliver(lease)

    assert outcome["state"] == "failed" and outcome["error_code"] == "download_failed"
    assert outcome["delivered"] is True and outcome["result_message_id"] == 555
    assert outcome["next_action_at"] is None
    # What was stored during the step: checkpoints and the refund, never the state.
    assert all("state" not in fields for _, fields in store.calls)
    assert ("refund", {}) in store.calls
    [sent] = client.channel.sent
    assert "could not be made" in sent and "given back" in sent
