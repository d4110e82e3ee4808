"""The background loop: submit, poll and hand finished tasks to delivery.

The store is the queue (RoboDanny's reminder pattern): the loop claims tasks whose
``next_action_at`` has come, in lanes (one per provider, plus one for delivery) so a
slow provider never holds up another's tasks, acts on each in its own asyncio task,
records the outcome with the next action time, and sleeps until the next due time
or until :meth:`Poller.wake` says new work arrived. Nothing lives only in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.base import (
    Delivery,
    ErrorKind,
    GenerationRequest,
    Provider,
    ProviderError,
    SubmitCall,
    TaskStatus,
    TrainingRequest,
)
from reelbot import messages
from reelbot.failover import refused_by_provider
from reelbot.failover_submit import SubmitFailover, up_note
from reelbot.inputs import InputStore
from reelbot.scheduling import (
    CompletionModel,
    backoff,
    callback_safety_net,
    next_poll_interval,
)
from reelbot.store.base import Store
from reelbot.store.models import TaskRow

log = logging.getLogger(__name__)

NOT_FOUND_CONFIRMATIONS = 3  # a provider 404 is believed only after this many in a row
MAX_SUBMIT_RETRIES = 5
MAX_PROVIDER_WORD = 100  # stored error codes and state words
MAX_ERROR_MESSAGE = 1000
# The failure code of a submit the provider may have acted on (SPEC §4 "Never pay twice").
UNCONFIRMED = "submit_unconfirmed"
# Default TASK_LEASE_SECONDS: how long a claim lasts unless renewed (every third of it
# while the action runs), so a crashed worker's tasks are taken over within this long.
LEASE_SECONDS = 120.0
IDLE_WAKE = 30.0  # re-check the store at least this often even when nothing is due
CALLBACK_TOKEN_BYTES = 24  # 192 random bits in each task's callback URL


def callback_url(base: str, provider_id: str, token: str) -> str:
    """The URL a provider calls back for one task (served by reelbot/callbacks.py)."""
    return f"{base.rstrip('/')}/callbacks/{provider_id}/{token}"


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
    # PUBLIC_BASE_URL: submits to providers with callbacks carry
    # <callback_base>/callbacks/<provider>/<token>; empty = polling only (SPEC §6).
    callback_base: str = ""


class Lane:
    """A bounded number of concurrent actions (one provider's, or delivery's)."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.busy = 0
        self.saturated = False

    @property
    def free(self) -> int:
        return self.capacity - self.busy


class Poller:
    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        settings: PollerSettings,
        inputs: InputStore,
        deliver: Callable[[TaskRow], Awaitable[dict[str, Any]]],
        on_status: Callable[[TaskRow], Awaitable[None]],
        training_request: Callable[[TaskRow], Awaitable[TrainingRequest]] | None = None,
        # Told the provider's model id as soon as a training is accepted, before the
        # outcome is recorded (which a cancel meanwhile makes the poller drop).
        training_submitted: Callable[[TaskRow, str], Awaitable[None]] | None = None,
        owner: str | None = None,
        failover: SubmitFailover | None = None,
    ) -> None:
        # Provider health and failover around each submit (SPEC §4 "Failover").
        self.failover = failover
        self.store = store
        self.providers = providers
        self.settings = settings
        self.inputs = inputs
        self._deliver = deliver
        self._on_status = on_status
        self._training_request = training_request
        self._training_submitted = training_submitted
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
        self.in_hand: set[int] = set()  # task ids being acted on now (health endpoint)
        self.claimed_total = 0
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
            for task_id in sorted(lost):
                log.warning(
                    "task %s: no longer leased to this worker (cancelled, or taken over "
                    "after a stall); its outcome may be dropped",
                    task_id,
                )

    # --- the loop -------------------------------------------------------------------------
    async def _tick(self) -> None:
        self.ticks += 1
        now = time.time()
        for lane in (*self._lanes.values(), self._delivery_lane):
            if self._stopping:
                return
            if lane.free <= 0:
                lane.saturated = True
                continue
            claimed = await self.store.claim_due(
                now=now,
                limit=lane.free,
                owner=self.owner,
                lease_seconds=self.settings.lease_seconds,
                provider=None if lane is self._delivery_lane else lane.name,
                delivery=lane is self._delivery_lane,
            )
            lane.saturated = len(claimed) >= lane.free
            for task in claimed:
                self._spawn(lane, task)

    async def _sleep(self) -> None:
        if self._stopping:
            return
        next_due = await self.store.next_due_at()
        now = time.time()
        idle = self.settings.idle_wake
        timeout = idle if next_due is None else max(0.0, min(next_due - now, idle))
        self._sleep_until = now + timeout
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _spawn(self, lane: Lane, task: TaskRow) -> None:
        lane.busy += 1
        self.in_hand.add(task.id)
        self.claimed_total += 1
        job = asyncio.create_task(self._act(lane, task), name=f"task-{task.id}")
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        if lane is not self._delivery_lane and task.state == "submitting":
            self._submitting.add(job)
            job.add_done_callback(self._submitting.discard)

    async def _act(self, lane: Lane, task: TaskRow) -> None:
        fields: dict[str, Any]
        try:
            if lane is self._delivery_lane:
                fields = await self._deliver(task)
            elif task.state == "submitting":
                fields = await self._submit(task)
            else:
                fields = await self._poll(task)
        except asyncio.CancelledError:
            # Shutting down mid-action: leave the lease to expire; the next start resumes.
            raise
        except Exception:
            log.exception("task %s (%s): unexpected error; will retry", task.id, task.provider)
            fields = {
                "error_streak": task.error_streak + 1,
                "next_action_at": time.time() + self._backoff(task.error_streak + 1),
            }
        finally:
            lane.busy -= 1
            self.in_hand.discard(task.id)
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
        if lane.saturated or (next_at is not None and next_at <= self._sleep_until):
            self.wake()
        if changed and lane is not self._delivery_lane and "state" in fields:
            # Re-render after every answer from the provider: the edit is skipped when
            # the text is unchanged and throttled, and a throttled change (queued →
            # running within seconds) is then shown by a later poll, not lost.
            known = {k: v for k, v in fields.items() if k in _TASK_FIELDS}
            await self._status_changed(dataclasses.replace(task, **known))

    async def _status_changed(self, task: TaskRow) -> None:
        try:
            await self._on_status(task)
        except Exception:
            log.warning("task %s: status message update failed", task.id, exc_info=True)

    def _backoff(self, streak: int, retry_after: float | None = None) -> float:
        return backoff(
            streak,
            floor=self.settings.poll_interval,
            ceiling=self.settings.poll_max_interval,
            retry_after=retry_after,
        )

    # --- actions ----------------------------------------------------------------------------
    async def _submit(self, task: TaskRow) -> dict[str, Any]:
        now = time.time()
        provider = self.providers.get(task.provider)
        if provider is None:
            return _fail(now, "provider_unavailable", f"{task.provider} is no longer configured")
        if task.provider_task_id:  # submitted, then the process stopped before moving on
            return {"state": "queued", "next_action_at": now}
        idempotent = provider.capabilities.idempotent_submit
        if task.submitted_at is not None and not idempotent:
            # A previous submit may or may not have reached the provider. Submitting
            # again could bill twice, so we stop here and let the requester decide.
            return _fail(
                now,
                UNCONFIRMED,
                "the bot stopped while submitting this request, so it cannot tell whether "
                f"{task.provider} received it; it may still make the video",
            )
        remaining = task.created_at + self.settings.task_timeout - now
        if remaining <= 0:
            if task.submitted_at is not None:
                return _fail(now, UNCONFIRMED, f"{task.provider} never confirmed the request")
            minutes = self.settings.task_timeout / 60
            return _fail(now, "task_timeout", f"not submitted after {minutes:g} minutes")
        probe = False
        if self.failover is not None:
            gate = await self.failover.before(task)
            if gate.fields is not None:  # its provider is down: moved, or refused
                return gate.fields
            probe = gate.probe
        attempt = _Attempt(sent=task.submitted_at is not None)
        try:
            # TASK_TIMEOUT_SECONDS bounds a submit too, however its retries went.
            async with asyncio.timeout(remaining):
                provider_task_id = await self._send(task, provider, now, attempt)
        except ProviderError as exc:
            if self.failover is not None:
                moved = await self.failover.failed(
                    task,
                    exc,
                    probe=probe,
                    # As _submit_error: an earlier attempt may have been taken.
                    unsure=exc.ambiguous or task.submitted_at is not None,
                    retries_left=task.error_streak < MAX_SUBMIT_RETRIES,
                )
                if moved is not None:
                    return moved
                if not exc.ambiguous and refused_by_provider(exc):
                    up = await self.failover.up_providers(exclude=task.provider)
                    return self._submit_error(task, provider, exc, also=up_note(up))
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
        return {
            "state": "queued",
            "provider_task_id": provider_task_id,
            "submitted_at": now,
            "poll_interval": interval,
            "error_streak": 0,
            "next_action_at": time.time() + interval,
        }

    async def _send(self, task: TaskRow, provider: Provider, now: float, attempt: _Attempt) -> str:
        """Build the request (or take the stored first one), mark the task as sent, send it;
        the provider's task id."""
        if task.kind == "training":
            if self._training_request is None:
                raise ProviderError(ErrorKind.INVALID, "character training is not available")
            training = await self._training_request(task)
            await self.store.update_task(task.id, submitted_at=now)
            attempt.sent = True
            model_id = await provider.train_character(training)
            if self._training_submitted is not None:
                try:
                    await self._training_submitted(task, model_id)
                except Exception:  # the model id is returned and recorded regardless
                    log.warning("task %s: training_submitted hook failed", task.id, exc_info=True)
            return model_id
        if task.submit_call is not None and task.submit_key is not None:
            # A resend under the same key: the stored first request, byte for byte.
            call, key = SubmitCall.from_json(task.submit_call), task.submit_key
        else:
            request = await self._generation_request(task)
            token = self._callback_token(task, provider)
            url = None
            if token is not None:
                url = callback_url(self.settings.callback_base, provider.id, token)
                request = dataclasses.replace(request, callback_url=url)
            call = await provider.prepare_submit(request)
            if token is not None and url and url in call.body:  # some models take none
                await self.store.update_task(task.id, callback_token=token)
            # Random per task, not only its row id: after a store restored from a
            # backup hands the same ids out again, an old key must never match. A
            # task sent before keys were stored (an upgrade mid-submit) keeps its old key.
            key = (
                f"reelbot-{task.id}"
                if task.submitted_at is not None
                else f"reelbot-{task.id}-{secrets.token_hex(8)}"
            )
        # From here on the provider may have the request: mark it before sending.
        await self.store.update_task(
            task.id, submitted_at=now, submit_key=key, submit_call=call.to_json()
        )
        attempt.sent = True
        return await provider.send_submit(call, idempotency_key=key)

    def _callback_token(self, task: TaskRow, provider: Provider) -> str | None:
        """A new unguessable token for this task's callback URL, or None (no callbacks)."""
        if not self.settings.callback_base or task.kind != "video":
            return None
        if not provider.capabilities.callbacks:
            return None
        return secrets.token_urlsafe(CALLBACK_TOKEN_BYTES)

    def _submit_error(
        self, task: TaskRow, provider: Provider, exc: ProviderError, *, also: str = ""
    ) -> dict[str, Any]:
        """SPEC §4 "Never pay twice": a refused or never-sent submit may be retried; an
        ambiguous one only to a provider that deduplicates (hiapi's Idempotency-Key)."""
        now = time.time()
        idempotent = provider.capabilities.idempotent_submit
        # submitted_at is cleared after every attempt known to have made nothing, so a
        # task claimed with it set had an earlier attempt the provider may have taken.
        unsure = exc.ambiguous or task.submitted_at is not None
        may_resend = not exc.ambiguous or idempotent
        if exc.retryable and may_resend and task.error_streak < MAX_SUBMIT_RETRIES:
            log.warning("task %s: submit to %s failed (%r); retrying", task.id, task.provider, exc)
            fields: dict[str, Any] = {
                "error_streak": task.error_streak + 1,
                "next_action_at": now + self._backoff(task.error_streak + 1, exc.retry_after),
            }
            if not unsure:
                # Nothing was made: the next attempt starts afresh (a restart included).
                fields["submitted_at"] = None
                if not idempotent:
                    fields |= {"submit_call": None, "submit_key": None}
            return fields
        if exc.kind is ErrorKind.AUTH:
            log.error(
                "%s rejected the API key: check %s_API_KEY", task.provider, task.provider.upper()
            )
        if unsure:
            log.warning(
                "task %s: %s may have received the submit (%r); not sending it again",
                task.id,
                task.provider,
                exc,
            )
            return _fail(now, UNCONFIRMED, f"{exc.message} (sending it again could bill twice)")
        log.info("task %s: submit failed: %r", task.id, exc)
        code, message = exc.code, exc.message
        # Providers' own codes ("1008", "invalid_api_key") mean nothing to members: say
        # what kind of error it was (out of credits, bad key...) next to the provider's words.
        reason = messages.ERROR_REASONS.get(exc.kind.value)
        if code.lower() not in messages.ERROR_REASONS and reason and reason not in message:
            message = f"{reason}: {message}"
        if also:  # a request that named its provider: say which providers are up
            message = f"{message}; {also}"
        return _fail(now, code, message)

    async def _generation_request(self, task: TaskRow) -> GenerationRequest:
        req = task.request
        image = None
        if req.get("image"):
            image = await self.inputs.input_image(req["image"], refresh=task.retry_of is not None)
        return GenerationRequest(
            prompt=req["prompt"],
            model=req.get("model"),
            image=image,
            duration=req.get("duration"),
            aspect_ratio=req.get("aspect_ratio"),
            resolution=req.get("resolution"),
            seed=req.get("seed"),
            negative_prompt=req.get("negative_prompt"),
            motion=req.get("motion"),
            character_id=req.get("character_model_id"),
        )

    async def _poll(self, task: TaskRow) -> dict[str, Any]:
        now = time.time()
        provider = self.providers.get(task.provider)
        started = task.submitted_at or task.created_at
        if now - started > self.settings.task_timeout:
            if provider is not None and task.provider_task_id:
                with contextlib.suppress(ProviderError):
                    await provider.cancel(task.provider_task_id)
            minutes = self.settings.task_timeout / 60
            return _fail(now, "task_timeout", f"no result after {minutes:g} minutes")
        if provider is None:
            # Keep the task: the operator may configure the provider again.
            return {"next_action_at": now + self.settings.poll_max_interval}
        assert task.provider_task_id is not None
        try:
            if task.kind == "training":
                status = await provider.character_status(task.provider_task_id)
            else:
                status = await provider.status(task.provider_task_id)
        except ProviderError as exc:
            return self._poll_error(task, exc)
        return self._apply_status(task, status, now)

    def _poll_error(self, task: TaskRow, exc: ProviderError) -> dict[str, Any]:
        now = time.time()
        streak = task.error_streak + 1
        # Consecutive "task not found" answers, kept in the row (not in memory, where a
        # worker's count would grow forever and be lost on restart): other errors say
        # nothing about the task, so they neither count nor reset; a real answer resets.
        misses = task.not_found_streak
        if exc.kind is ErrorKind.NOT_FOUND:
            misses += 1
            if misses >= NOT_FOUND_CONFIRMATIONS:
                return _fail(now, "not_found", exc.message) | {"not_found_streak": misses}
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
            "next_action_at": now + self._backoff(streak, exc.retry_after),
        }

    def _apply_status(self, task: TaskRow, status: TaskStatus, now: float) -> dict[str, Any]:
        common: dict[str, Any] = {
            "attempts": task.attempts + 1,
            "error_streak": 0,
            "not_found_streak": 0,
            "raw_state": _clip(status.raw_state),
        }
        if status.credits is not None:
            common["credits"] = status.credits
        started = task.submitted_at or task.created_at
        model = self.completion_models.get(task.provider) if task.kind == "video" else None
        if status.state == "succeeded":
            if model is not None:
                model.observe(now - started)
            outputs = [_output_dict(o) for o in status.outputs]
            if not outputs and task.kind != "training":
                return common | _fail(now, "no_output", "the provider returned no output")
            return common | {
                "state": "succeeded",
                "progress": 100,
                "outputs": outputs,
                "finished_at": now,
                "next_action_at": now,
            }
        if status.state == "failed":
            return common | _fail(
                now, status.error_code or "failed", status.error_message or "generation failed"
            )
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
            interval = callback_safety_net(
                interval,
                ceiling=self.settings.poll_max_interval,
                timeout=self.settings.task_timeout,
            )
        return common | {
            "state": status.state,
            "progress": status.progress,
            "poll_interval": interval,
            "next_action_at": now + interval,
        }


_TASK_FIELDS = frozenset(f.name for f in dataclasses.fields(TaskRow))


@dataclass(slots=True)
class _Attempt:
    sent: bool  # the request may have left: from here on a failure is ambiguous


def _clip(text: str | None, limit: int = MAX_PROVIDER_WORD) -> str | None:
    """Provider words (codes, states) are unbounded; what we keep of them is not."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _fail(now: float, code: str, message: str) -> dict[str, Any]:
    return {
        "state": "failed",
        "error_code": _clip(code),
        "error_message": _clip(message, MAX_ERROR_MESSAGE),
        "finished_at": now,
        "next_action_at": now,
    }


def _output_dict(output: Any) -> dict[str, Any]:
    return {
        "kind": output.kind,
        "url": output.url,
        "data_base64": output.data_base64,
        "file_id": output.file_id,
        "expires_at": output.expires_at,
        "content_type": output.content_type,
    }
