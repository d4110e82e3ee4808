"""Quiet polls kept in memory (poller.HOLD_HORIZON): a "still running" answer whose next
poll is near is not written; the task stays leased and is polled again from memory.

A real SQLite store and a stand-in provider kind (the poller's own loop, no Discord).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from providers.base import Provider, TaskStatus
from reelbot.jobs.kinds import Attempt, JobKind, JobKinds
from reelbot.jobs.lease import Lease
from reelbot.jobs.poller import Poller, PollerSettings
from reelbot.store import NewTask, QuotaPolicy, SqliteStore
from reelbot.store.models import TaskRow

FLOOR = 0.05


class Running(JobKind):
    """Always "running": every poll after the first is a quiet one."""

    name = "video"
    title = "**Prompt:**"

    def __init__(self) -> None:
        self.polls: list[str] = []

    async def send(self, lease: Lease, provider: Provider, *, now: float, attempt: Attempt) -> str:
        raise AssertionError("nothing is submitted here")

    def status_title(self, task: TaskRow) -> str:
        return f"{self.title} {task.request['prompt']}"

    async def cancelled(self, task: TaskRow, provider: Provider | None) -> None:
        pass  # the store's cancel is all these tests look at

    async def status(self, provider: Provider, provider_task_id: str) -> TaskStatus:
        self.polls.append(provider_task_id)
        return TaskStatus(state="running", raw_state="running")


class Counting(SqliteStore):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.releases = 0

    async def release(self, task_id: int, owner: str, **kw: Any) -> bool:
        self.releases += 1
        return await super().release(task_id, owner, **kw)


async def _no_status(task: TaskRow) -> dict[str, Any] | None:
    return None


async def _delivered(lease: Lease) -> dict[str, Any]:
    return {"delivered": True, "next_action_at": None}


async def started(tmp_path: Path) -> tuple[Counting, Poller, Running, int, asyncio.Task[None]]:
    store = Counting(str(tmp_path / "hold.db"))
    await store.open()
    row = await store.create_task(
        NewTask(
            provider="hiapi",
            guild_id=1,
            channel_id=2,
            requester_id=3,
            request={"prompt": "a fox"},
            poll_interval=FLOOR,
        ),
        now=time.time(),
        policy=QuotaPolicy(default_limit=10),
    )
    await store.update_task(
        row.id,
        state="running",
        raw_state="running",
        provider_task_id="p-1",
        submitted_at=time.time(),
        next_action_at=time.time(),
    )
    kind = Running()
    kinds = JobKinds()
    kinds.register(kind)
    poller = Poller(
        store=store,
        providers={"hiapi": object()},  # type: ignore[dict-item]  # the kind asks, not it
        settings=PollerSettings(poll_interval=FLOOR, poll_max_interval=FLOOR, task_timeout=600),
        inputs=None,  # type: ignore[arg-type]
        deliver=_delivered,
        on_status=_no_status,
        kinds=kinds,
    )
    return store, poller, kind, row.id, asyncio.create_task(poller.run())


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_quiet_polls_are_not_written_and_stop_hands_the_task_back(tmp_path: Path) -> None:
    """Also the wake-up race: an action quicker than the loop's next-due query (as this
    stand-in is) recorded its next poll unseen, and the task waited for the 30 s idle
    wake-up."""
    store, poller, kind, task_id, runner = await started(tmp_path)
    try:
        await _until(lambda: len(kind.polls) >= 6)
        # Polled again and again from memory: not one outcome was written meanwhile.
        assert store.releases == 0 and task_id in poller.in_hand
        async with store.db.execute("SELECT lease_owner FROM tasks WHERE id = ?", (task_id,)) as c:
            assert tuple(await c.fetchone() or ()) == (poller.owner,)
    finally:
        await poller.stop(grace=2)
        runner.cancel()
    after = await store.get_task(task_id)
    assert after is not None and store.releases == 1  # stop() handed it back, due as planned
    assert after.state == "running" and after.next_action_at is not None
    await store.close()


async def test_a_task_cancelled_while_held_is_not_polled_again(tmp_path: Path) -> None:
    store, poller, kind, task_id, runner = await started(tmp_path)
    try:
        await _until(lambda: len(kind.polls) >= 3)
        assert await store.cancel_task(task_id, now=time.time())
        polls = len(kind.polls)
        await asyncio.sleep(20 * FLOOR)
        # At most the poll in flight when the cancel came; then its lease is found gone.
        assert len(kind.polls) <= polls + 1 and task_id not in poller.in_hand
    finally:
        await poller.stop(grace=2)
        runner.cancel()
    row = await store.get_task(task_id)
    assert row is not None and row.state == "cancelled"
    await store.close()


async def test_after_a_crash_a_held_task_is_due_at_once(tmp_path: Path) -> None:
    store, _, kind, task_id, runner = await started(tmp_path)
    await _until(lambda: len(kind.polls) >= 4)  # held, its stored due time at lease end
    runner.cancel()  # a crash: nothing handed back
    await asyncio.gather(runner, return_exceptions=True)
    held = await store.get_task(task_id)
    assert held is not None and held.next_action_at is not None
    assert held.next_action_at > time.time() + 30  # no other worker takes it before
    await store.release_all_leases()  # the next start of this single process
    again = await store.get_task(task_id)
    assert again is not None and again.next_action_at is not None
    assert again.next_action_at <= time.time()
    await store.close()
