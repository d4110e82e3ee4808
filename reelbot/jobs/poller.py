"""The background loop: submit, poll and hand finished tasks to delivery.

The store is the queue (RoboDanny's reminder pattern): the loop claims tasks whose
``next_action_at`` has come, in lanes (one per provider, plus one for delivery) so a
slow provider never holds up another's tasks, acts on each in its own asyncio task,
records the outcome with the next action time, and sleeps until the next due time
or until :meth:`Poller.wake` says new work arrived. Nothing that matters lives only in
memory: tasks claimed ahead wait, leased, for a free slot (a restart claims them
again).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from providers.base import (
    Delivery,
    ErrorKind,
    Provider,
    ProviderError,
    TaskStatus,
)
from reelbot.failover.mapping import refused_by_provider
from reelbot.jobs import outcomes
from reelbot.jobs.failover import SubmitFailover, up_note
from reelbot.jobs.inputs import InputStore
from reelbot.jobs.kinds import Attempt, JobKind, JobKinds
from reelbot.jobs.lease import Lease, applied
from reelbot.jobs.outcomes import (  # noqa: F401 - re-exported: the rules' names
    MAX_SUBMIT_RETRIES,
    NOT_FOUND_CONFIRMATIONS,
    UNCONFIRMED,
    Outcome,
    Schedule,
)
from reelbot.jobs.scheduling import CompletionModel, callback_safety_net, next_poll_interval
from reelbot.store.base import Store
from reelbot.store.models import TaskChange, TaskRow

log = logging.getLogger(__name__)

# Default TASK_LEASE_SECONDS: how long a claim lasts unless renewed (every third of it
# while the action runs), so a crashed worker's tasks are taken over within this long.
LEASE_SECONDS = 120.0
IDLE_WAKE = 30.0  # re-check the store at least this often even when nothing is due
# The shortest sleep between two ticks: how late a task may be claimed when it is not
# worth waking the loop for (its due time is less than this before the planned wake).
MIN_TICK_GAP = 0.02
RELEASE_CHUNK = 500  # stop(): tasks handed back at once
# A poll that changed nothing ("still running", same words, same progress) whose next
# poll is this close is not written to the store: the task stays leased to this worker
# and waits in memory (Lane.held) for that poll. Most polls are such polls, and each
# one cost a release and a later claim (two trips to the store). What such a poll would
# have written (the attempt count, the next poll time) is lost if the process dies,
# which costs nothing: a restart polls every unfinished task again anyway.
HOLD_HORIZON = 20.0
# ... at most this many polls in a row, then its row is written as usual: the store
# stays roughly current, and a task moved by another process meanwhile (a cancel) is
# noticed by that release at the latest (lease renewal usually notices it first).
MAX_HOLDS = 25
# Fields of an outcome that are no change worth recording when their values are the
# task's own: besides these, a quiet poll only counts an attempt and sets the next poll.
_QUIET_FIELDS = frozenset(
    {
        "attempts",
        "error_streak",
        "not_found_streak",
        "raw_state",
        "state",
        "progress",
        "poll_interval",
        "next_action_at",
    }
)
_BOOKKEEPING = frozenset({"attempts", "poll_interval", "next_action_at"})


def _update_in_place(task: TaskRow, **fields: object) -> None:
    """Set fields of a TaskRow (frozen for everyone else) that only the poller holds."""
    for name, value in fields.items():
        object.__setattr__(task, name, value)


@dataclass(frozen=True, slots=True)
class PollerSettings:
    poll_interval: float
    poll_max_interval: float
    task_timeout: float
    provider_concurrency: int = 8
    delivery_concurrency: int = 4
    # Re-check the store at least this often even when nothing is due: another
    # process (a gateway-only one) may have added work we were not told about.
    idle_wake: float = IDLE_WAKE
    lease_seconds: float = LEASE_SECONDS
    # stop(): how long in-flight actions get to finish, and how long a submit does. A
    # poll or a download cut short is simply redone after the restart; a submit cut
    # short cannot be told from one the provider took, so it gets as long as its
    # request can take (the provider request timeout, set by the app).
    stop_grace: float = 10.0
    submit_grace: float = 0.0


class Lane:
    """A bounded number of concurrent actions (one provider's, or delivery's).

    A claim takes up to ``capacity`` more due tasks than there are free slots; those
    wait, leased, in ``ready`` and start as slots free, without a trip to the store.
    At thousands of polls a second this makes one claim per few dozen actions rather
    than one per action or two, and it claims only tasks that are due already.
    """

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.busy = 0
        self.saturated = False  # the last claim took all it asked for: more may be due
        # Earliest due first (claimed ones and held ones alike): (due, id, row).
        self.ready: list[tuple[float, int, TaskRow]] = []
        # Leased tasks waiting in memory for their next poll (not due yet), earliest
        # first: see HOLD_HORIZON.
        self.held: list[tuple[float, int, TaskRow]] = []

    def put(self, task: TaskRow) -> None:
        heapq.heappush(self.ready, (task.next_action_at or 0.0, task.id, task))

    def hold(self, task: TaskRow) -> None:
        heapq.heappush(self.held, (task.next_action_at or 0.0, task.id, task))

    def ripe(self, now: float) -> list[TaskRow]:
        """Held tasks whose next poll has come (taken out of ``held``)."""
        out = []
        while self.held and self.held[0][0] <= now:
            out.append(heapq.heappop(self.held)[2])
        return out

    def forget(self, task_ids: set[int]) -> None:
        """Drop held tasks this worker no longer leases."""
        kept = [entry for entry in self.held if entry[1] not in task_ids]
        if len(kept) != len(self.held):
            heapq.heapify(kept)
            self.held = kept

    def take(self) -> TaskRow:
        return heapq.heappop(self.ready)[2]

    @property
    def free(self) -> int:
        return self.capacity - self.busy

    @property
    def wanted(self) -> int:
        """How many due tasks a claim should take now (0: enough in hand)."""
        if len(self.ready) >= self.capacity:
            return 0
        return 2 * self.capacity - self.busy - len(self.ready)

    @property
    def low(self) -> bool:
        """Fewer waiting than a lane's worth: time to claim more (if more are due)."""
        return len(self.ready) < self.capacity


class Poller:
    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        settings: PollerSettings,
        inputs: InputStore,
        deliver: Callable[[Lease], Awaitable[Outcome]],
        # Shows a task's status; returns the fields to record (status text, edit time).
        on_status: Callable[[TaskRow], Awaitable[TaskChange | None]],
        # Once a delivery is recorded: what may only be offered then (the 🔁 affordance).
        on_delivered: Callable[[TaskRow], Awaitable[None]] | None = None,
        # What each kind of task does (its owner registers it); the loop knows none.
        kinds: Mapping[str, JobKind] | None = None,
        owner: str | None = None,
        # Provider health and failover around each submit (SPEC §4 "Failover").
        failover: SubmitFailover | None = None,
    ) -> None:
        self.failover = failover
        self.store = store
        self.providers = providers
        self.settings = settings
        self.inputs = inputs
        self._deliver = deliver
        self._on_status = on_status
        self._on_delivered = on_delivered
        self.kinds: Mapping[str, JobKind] = kinds if kinds is not None else JobKinds()
        self.owner = owner or f"poller-{uuid.uuid4().hex[:8]}"
        self._lanes = {pid: Lane(pid, settings.provider_concurrency) for pid in providers}
        self._delivery_lane = Lane("delivery", settings.delivery_concurrency)
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._submitting: set[asyncio.Task[None]] = set()
        self._renewal: asyncio.Task[None] | None = None
        self._stopping = False
        self._sleep_until = 0.0
        self.ticks = 0
        # Task ids this worker holds leased: claimed, acted on, or held in memory for their
        # next poll (their leases are renewed; the health endpoint counts them).
        self.in_hand: set[int] = set()
        self.claimed_total = 0
        self._holds: dict[int, int] = {}  # task id -> quiet polls in a row kept in memory
        # Per provider: how long its generations took lately (sets the poll schedule).
        self.completion_models = {pid: CompletionModel() for pid in providers}

    # --- control ------------------------------------------------------------------------
    def wake(self) -> None:
        """New or changed work: look at the store now rather than at the next due time."""
        self._wake.set()

    async def run(self) -> None:
        log.info("poller %s started (%d providers)", self.owner, len(self._lanes))
        await self._seed_models()
        self._renewal = asyncio.create_task(self._renew_leases(), name="lease-renewal")
        try:
            while not self._stopping:
                try:
                    await self._tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("poller tick failed; retrying shortly")
                    await asyncio.sleep(1.0)
                    continue
                await self._sleep()
        finally:
            # After stop(), renewal goes on while the in-flight actions finish (stop()
            # ends it); cancelled or crashed, nothing is in flight any more.
            if not self._stopping:
                self._renewal.cancel()

    async def _seed_models(self) -> None:
        """Start from the providers' recent completion times rather than from nothing."""
        for pid, model in self.completion_models.items():
            try:
                durations = await self.store.recent_durations(pid, limit=model.capacity)
            except Exception:
                log.warning("could not read %s's recent completion times", pid, exc_info=True)
                continue
            for seconds in durations:
                model.observe(seconds)

    async def stop(self, *, grace: float | None = None) -> None:
        """Stop claiming work and let in-flight actions finish (their results are stored).

        Everything gets ``grace`` (PollerSettings.stop_grace); a submit in flight gets
        up to ``submit_grace``, because abandoning it would leave a request the
        provider may have billed that we can never confirm (SPEC §4).
        """
        self._stopping = True
        self.wake()
        grace = self.settings.stop_grace if grace is None else grace
        start = time.monotonic()
        # A tick that was claiming when we were asked to stop still spawns what it
        # claimed: wait until no action is left, not only for those running now.
        await self._wait_for(self._running, start + grace)
        await self._release_ready()
        for task in self._running - self._submitting:
            task.cancel()
        if self._submitting:
            log.info("waiting for %d submit(s) in flight before stopping", len(self._submitting))
        await self._wait_for(self._submitting, start + max(grace, self.settings.submit_grace))
        pending = set(self._running)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.gather(self._renewal, return_exceptions=True)

    async def _release_ready(self) -> None:
        """Hand back the claimed tasks that never started, due as they were (a callback
        that came meanwhile still makes its task due at once)."""
        tasks: list[TaskRow] = []
        for lane in (*self._lanes.values(), self._delivery_lane):
            while lane.ready:
                tasks.append(lane.take())
            tasks.extend(entry[2] for entry in lane.held)  # their next poll as planned
            lane.held.clear()
        self._holds.clear()
        for start in range(0, len(tasks), RELEASE_CHUNK):  # together: the store batches them
            chunk = tasks[start : start + RELEASE_CHUNK]
            await asyncio.gather(
                *(
                    self.store.release(
                        t.id, self.owner, expected_state=t.state, next_action_at=t.next_action_at
                    )
                    for t in chunk
                ),
                return_exceptions=True,
            )
            self.in_hand.difference_update(t.id for t in chunk)

    @staticmethod
    async def _wait_for(jobs: set[asyncio.Task[None]], deadline: float) -> None:
        while jobs and (remaining := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(jobs), timeout=remaining)

    async def _renew_leases(self) -> None:
        """Keep the leases of the tasks in hand alive while their actions run.

        A claim lasts ``lease_seconds``; renewing every third of that lets a slow
        action (a large download, a provider answering slowly) outlive any number of
        lease periods, and still tolerates two failed renewals in a row. A crashed
        process renews nothing, so its tasks are free again within one lease period.
        """
        lease = self.settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            held = list(self.in_hand)
            if not held:
                continue
            try:
                kept = await self.store.renew_leases(held, self.owner, until=time.time() + lease)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not renew the leases of %d task(s)", len(held), exc_info=True)
                continue
            # Finished meanwhile is normal; still acting on it means another process
            # (a cancel, or a claimer after a stall longer than the lease) has the task.
            lost = set(held).difference(kept).intersection(self.in_hand)
            waiting = {e[1] for lane in self._lanes.values() for e in lane.held} & lost
            if waiting:  # held for their next poll (cancelled meanwhile): let them go
                for lane in self._lanes.values():
                    lane.forget(waiting)
                for task_id in waiting:
                    self._holds.pop(task_id, None)
                self.in_hand.difference_update(waiting)
                lost -= waiting
            for task_id in sorted(lost):
                log.warning(
                    "task %s: no longer leased to this worker (cancelled, or taken over "
                    "after a stall); its outcome may be dropped",
                    task_id,
                )

    # --- the loop -------------------------------------------------------------------------
    async def _tick(self) -> None:
        """Claim for every lane that wants more, all at once: the claims go to the store
        together (SQLite writes them in one batch, one trip to its thread), not one
        round trip per lane."""
        self.ticks += 1
        if self._stopping:
            return
        now = time.time()
        ripe = [(lane, lane.ripe(now)) for lane in self._lanes.values() if lane.held]
        ripe = [(lane, tasks) for lane, tasks in ripe if tasks]
        wanting = [
            (lane, wanted)
            for lane in (*self._lanes.values(), self._delivery_lane)
            if (wanted := lane.wanted) > 0
        ]
        if not wanting and not ripe:
            return
        ripe_ids = [t.id for _, tasks in ripe for t in tasks]
        # Held tasks about to be polled again: still ours? (A cancel, or another
        # process, may have taken the row meanwhile.) One statement for all of them,
        # in the claims' batch; it renews their leases too.
        renewal = asyncio.ensure_future(self._still_ours(ripe_ids)) if ripe_ids else None
        results = await asyncio.gather(
            *(
                self.store.claim_due(
                    now=now,
                    limit=wanted,
                    owner=self.owner,
                    lease_seconds=self.settings.lease_seconds,
                    provider=None if lane is self._delivery_lane else lane.name,
                    delivery=lane is self._delivery_lane,
                )
                for lane, wanted in wanting
            ),
            return_exceptions=True,
        )
        failed: BaseException | None = None
        ours: set[int] = set()
        if renewal is not None:
            try:
                ours = await renewal
            except Exception as exc:  # noqa: BLE001 - poll them: their release will tell
                failed, ours = exc, set(ripe_ids)
        for lane, tasks in ripe:
            for task in tasks:
                if task.id in ours:
                    lane.put(task)
                else:
                    self._holds.pop(task.id, None)
                    self.in_hand.discard(task.id)
                    log.info("task %s: no longer leased to this worker; not polled", task.id)
        for (lane, wanted), claimed in zip(wanting, results, strict=True):
            if isinstance(claimed, BaseException):
                failed = failed or claimed
                continue
            lane.saturated = len(claimed) >= wanted
            for task in claimed:
                self.in_hand.add(task.id)
                self.claimed_total += 1
                lane.put(task)
        if self._stopping:  # stop() came while we claimed: hand them back
            await self._release_ready()
        else:
            for lane in {lane for lane, _ in ripe} | {lane for lane, _ in wanting}:
                self._start_ready(lane)
        if failed is not None:  # what the other lanes claimed is in hand: only now
            raise failed

    async def _still_ours(self, task_ids: list[int]) -> set[int]:
        if not task_ids:
            return set()
        until = time.time() + self.settings.lease_seconds
        kept = await self.store.renew_leases(task_ids, self.owner, until=until, due_at_end=True)
        return set(kept)

    def _start_ready(self, lane: Lane) -> None:
        while lane.ready and lane.free > 0 and not self._stopping:
            self._spawn(lane, lane.take())

    async def _sleep(self) -> None:
        if self._stopping:
            return
        # Until the wake-up time is known, any outcome with a next action wakes us: one
        # recorded while the store was being asked may not be in its answer (an action
        # quicker than that query left its task unpolled until the idle wake, 30 s).
        self._sleep_until = math.inf
        next_due = await self.store.next_due_at()
        held = [lane.held[0][0] for lane in self._lanes.values() if lane.held]
        if held:
            next_due = min(held) if next_due is None else min(next_due, *held)
        now = time.time()
        idle = self.settings.idle_wake
        # Something due already belongs to a lane with enough in hand (its actions wake
        # us when it runs low): look again shortly rather than at once, or the loop
        # spins on claims that find nothing it may take (hundreds of ticks a second).
        timeout = idle if next_due is None else max(MIN_TICK_GAP, min(next_due - now, idle))
        self._sleep_until = now + timeout
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _spawn(self, lane: Lane, task: TaskRow) -> None:
        """Start the action on a claimed task (counted in ``in_hand`` since its claim)."""
        lane.busy += 1
        job = asyncio.create_task(self._act(lane, task), name=f"task-{task.id}")
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        if lane is not self._delivery_lane and task.state == "submitting":
            self._submitting.add(job)
            job.add_done_callback(self._submitting.discard)

    async def _act(self, lane: Lane, task: TaskRow) -> None:
        """One step on a claimed task: the action decides, then the outcome is applied in
        one statement. The poller is the only writer of a claimed row: actions change it
        only through the :class:`Lease` (checkpoints that must precede a side effect)."""
        fields: Outcome
        lease = Lease(self.store, self.owner, task)
        try:
            if lane is self._delivery_lane:
                fields = await self._deliver(lease)
            elif task.state == "submitting":
                fields = await self._submit(task, lease)
            else:
                fields = await self._poll(task)
        except asyncio.CancelledError:
            # Shutting down mid-action: leave the lease to expire; the next start resumes.
            raise
        except Exception:
            log.exception("task %s (%s): unexpected error; will retry", task.id, task.provider)
            fields = outcomes.unexpected_error(task, now=time.time(), schedule=self._schedule)
        finally:
            lane.busy -= 1
            self.in_hand.discard(task.id)
            self._start_ready(lane)  # the next claimed task takes the slot at once
        if self._may_hold(lane, task, fields):
            self.in_hand.add(task.id)  # still leased: renewed, released at stop()
            if await self._hold(lane, task, fields):
                return
            self.in_hand.discard(task.id)
        self._holds.pop(task.id, None)
        try:
            changed = await self.store.release(
                task.id, self.owner, expected_state=task.state, **fields
            )
        except Exception:
            log.exception("task %s: could not record outcome", task.id)
            return
        if not changed:
            log.info("task %s changed meanwhile (e.g. cancelled); outcome dropped", task.id)
        next_at = fields.get("next_action_at")
        if (lane.saturated and lane.low) or (
            next_at is not None and next_at < self._sleep_until - MIN_TICK_GAP
        ):
            self.wake()
        if changed and (lane is self._delivery_lane or "state" in fields):
            # Re-render after every answer from the provider: the edit is skipped when
            # the text is unchanged and throttled, and a throttled change (queued →
            # running within seconds) is then shown by a later poll, not lost. After a
            # delivery the status is final, so the edit is never throttled.
            recorded = applied(lease.task, fields)
            await self._status_changed(recorded)
            if fields.get("delivered") and self._on_delivered is not None:
                try:
                    await self._on_delivered(recorded)
                except Exception:
                    log.warning("task %s: after-delivery step failed", task.id, exc_info=True)

    async def _status_changed(self, task: TaskRow) -> TaskChange:
        try:
            fields = await self._on_status(task)
            if fields:  # after the release: the row is no longer claimed by anyone
                await self.store.update_task(task.id, **fields)
                return fields
        except Exception:
            log.warning("task %s: status message update failed", task.id, exc_info=True)
        return {}

    def _may_hold(self, lane: Lane, task: TaskRow, fields: TaskChange) -> bool:
        """A quiet poll (nothing but the attempt count and the next poll changed) of a
        polled-only task whose next poll is near: see HOLD_HORIZON."""
        next_at = fields.get("next_action_at")
        return (
            lane is not self._delivery_lane
            and not self._stopping
            and task.state in ("queued", "running")
            and task.callback_token is None  # a callback must find it in the store
            and next_at is not None
            and next_at - time.time() <= HOLD_HORIZON
            and self._holds.get(task.id, 0) < MAX_HOLDS
            and fields.keys() <= _QUIET_FIELDS
            and all(getattr(task, k) == v for k, v in fields.items() if k not in _BOOKKEEPING)
        )

    async def _hold(self, lane: Lane, task: TaskRow, fields: TaskChange) -> bool:
        """Keep a quietly polled task in memory for its next poll; False if stop() came
        meanwhile (then its outcome is released as usual)."""
        # The row as it now reads, in place: this worker's own copy, which nothing else
        # refers to once its poll ended; a quiet poll changes only these few fields
        # (dataclasses.replace, 40 fields, was most of the cost of holding a task).
        # The values stay the ones the store would have (what a release would write).
        changes = {k: v for k, v in fields.items() if k in _BOOKKEEPING}
        _update_in_place(task, **changes, updated_at=time.time())
        # As after any answer: a change the last edit was too recent to show (queued →
        # running within seconds) is shown now. Usually nothing to do (Delivery knows
        # the text is shown already, without rendering it).
        status = await self._status_changed(task)
        if self._stopping:
            return False
        if status:
            _update_in_place(task, **status)
        self._holds[task.id] = self._holds.get(task.id, 0) + 1
        lane.hold(task)
        next_at = fields.get("next_action_at")
        if next_at is not None and next_at < self._sleep_until - MIN_TICK_GAP:
            self.wake()
        return True

    @property
    def _schedule(self) -> Schedule:
        return Schedule(floor=self.settings.poll_interval, ceiling=self.settings.poll_max_interval)

    # --- actions ----------------------------------------------------------------------------
    async def _submit(self, task: TaskRow, lease: Lease) -> Outcome:
        now = time.time()
        provider = self.providers.get(task.provider)
        refused = outcomes.before_submit(
            task,
            configured=provider is not None,
            idempotent=provider is not None and provider.capabilities.idempotent_submit,
            now=now,
            task_timeout=self.settings.task_timeout,
        )
        if refused is not None:
            return refused
        assert provider is not None
        probe = False
        if self.failover is not None:
            gate = await self.failover.before(lease)
            if gate.fields is not None:  # its provider is down: moved, or refused
                return gate.fields
            probe = gate.probe
        remaining = task.created_at + self.settings.task_timeout - now
        attempt = Attempt(sent=task.submitted_at is not None)
        try:
            # TASK_TIMEOUT_SECONDS bounds a submit too, however its retries went.
            async with asyncio.timeout(remaining):
                provider_task_id = await self._send(lease, provider, now, attempt)
        except ProviderError as exc:
            if self.failover is not None:
                return await self._refused(task, lease, provider, exc, probe=probe)
            return self._submit_error(task, provider, exc)
        except TimeoutError:
            return self._submit_error(
                task,
                provider,
                ProviderError(
                    ErrorKind.TRANSIENT,
                    "no answer before the task's time ran out",
                    code="timeout",
                    delivery=Delivery.AMBIGUOUS if attempt.sent else Delivery.NOT_SENT,
                ),
            )
        except Exception as exc:
            # A bug of ours (in building the request or reading the answer) is retried a
            # few times like a transient error, never forever, and never resent to a
            # provider that cannot deduplicate once the request may have left.
            log.exception("task %s: unexpected error while submitting", task.id)
            error = ProviderError(
                ErrorKind.TRANSIENT,
                f"an internal error of the bot ({type(exc).__name__})",
                code="internal_error",
                delivery=Delivery.AMBIGUOUS if attempt.sent else Delivery.NOT_SENT,
            )
            return self._submit_error(task, provider, error)
        log.info("task %s submitted to %s as %s", task.id, task.provider, provider_task_id)
        if self.failover is not None:
            await self.failover.succeeded(task, probe=probe)
        interval = self.settings.poll_interval
        if lease.task.callback_token is not None:  # given while sending
            # The provider calls back when it is done, failures included: the first
            # poll is already the safety net's, not an early look (one request less
            # per video, and most tasks are then polled only once, after the callback).
            interval = callback_safety_net(
                interval,
                ceiling=self.settings.poll_max_interval,
                timeout=self.settings.task_timeout,
                age=0.0,
                model=self._timed_model(task),
            )
        return outcomes.submitted(provider_task_id, sent_at=now, now=time.time(), interval=interval)

    async def _send(self, lease: Lease, provider: Provider, now: float, attempt: Attempt) -> str:
        """The task's kind builds the request (or takes the stored first one), marks the
        task as sent and sends it; the provider's task id."""
        return await self._kind(lease.task).send(lease, provider, now=now, attempt=attempt)

    def _timed_model(self, task: TaskRow) -> CompletionModel | None:
        """The completion times that schedule this task's polls (kinds that are timed)."""
        kind = self.kinds.get(task.kind)
        return (
            self.completion_models.get(task.provider) if kind is not None and kind.timed else None
        )

    def _kind(self, task: TaskRow) -> JobKind:
        kind = self.kinds.get(task.kind)
        if kind is None:
            raise ProviderError(ErrorKind.INVALID, f"{task.kind} tasks are not available")
        return kind

    def _submit_error(
        self, task: TaskRow, provider: Provider, exc: ProviderError, *, also: str = ""
    ) -> Outcome:
        return outcomes.submit_error(
            task,
            exc,
            idempotent=provider.capabilities.idempotent_submit,
            now=time.time(),
            schedule=self._schedule,
            also=also,
        )

    async def _refused(
        self, task: TaskRow, lease: Lease, provider: Provider, exc: ProviderError, *, probe: bool
    ) -> Outcome:
        """A failed submit, with failover: recorded in the provider's health; a refusal
        of a request that named no provider may move it (never an ambiguous one); a
        request that named its provider fails naming the providers that are up."""
        assert self.failover is not None
        moved = await self.failover.failed(
            lease,
            exc,
            probe=probe,
            # As outcomes.submit_error: an earlier attempt may have been taken.
            unsure=exc.ambiguous or task.submitted_at is not None,
            retries_left=task.error_streak < outcomes.MAX_SUBMIT_RETRIES,
        )
        if moved is not None:
            return moved
        also = ""
        if refused_by_provider(exc):
            also = up_note(await self.failover.up_providers(exclude=task.provider))
        return self._submit_error(task, provider, exc, also=also)

    async def _poll(self, task: TaskRow) -> Outcome:
        now = time.time()
        provider = self.providers.get(task.provider)
        timed_out = outcomes.poll_timed_out(task, now=now, task_timeout=self.settings.task_timeout)
        if timed_out is not None:
            if provider is not None and task.provider_task_id:
                with contextlib.suppress(ProviderError):
                    await provider.cancel(task.provider_task_id)
            return timed_out
        if provider is None:
            # Keep the task: the operator may configure the provider again.
            return {"next_action_at": now + self.settings.poll_max_interval}
        assert task.provider_task_id is not None
        try:
            status = await self._kind(task).status(provider, task.provider_task_id)
        except ProviderError as exc:
            if self.failover is not None:
                await self.failover.polled(task, good=False, error=f"{exc.code}: {exc.message}")
            return outcomes.poll_error(task, exc, now=time.time(), schedule=self._schedule)
        if self.failover is not None and status.finished:
            # The recent success rate counts how tasks end (one write per task, not per poll).
            await self.failover.polled(
                task, good=status.state == "succeeded", error=status.error_code
            )
        return self._apply_status(task, status, now)

    def _apply_status(self, task: TaskRow, status: TaskStatus, now: float) -> Outcome:
        started = task.submitted_at or task.created_at
        model = self._timed_model(task)
        if status.state == "succeeded" and model is not None:
            model.observe(now - started)
        interval = next_poll_interval(
            age=now - started,
            floor=self.settings.poll_interval,
            ceiling=self.settings.poll_max_interval,
            previous_progress=task.progress,
            progress=status.progress,
            since_last_poll=now - task.updated_at,
            model=model,
        )
        if task.callback_token is not None:
            # A provider that calls back needs only a sparse safety-net poll.
            interval = callback_safety_net(
                interval,
                ceiling=self.settings.poll_max_interval,
                timeout=self.settings.task_timeout,
                age=now - started,
                model=model,
            )
        kind = self.kinds.get(task.kind)
        return outcomes.from_status(
            task,
            status,
            now=now,
            interval=interval,
            outputs_expected=kind is None or kind.has_outputs,
        )
