"""The video job kind: submit a generation, poll it, deliver its outputs."""

from __future__ import annotations

import dataclasses
import logging
import secrets

from providers.base import Provider, ProviderError, SubmitCall, TaskStatus
from reelbot import messages, vocabulary
from reelbot.generations.request import VideoRequest
from reelbot.jobs.inputs import InputStore
from reelbot.jobs.kinds import Attempt, JobKind
from reelbot.jobs.lease import Lease
from reelbot.store.models import TaskRow

CALLBACK_TOKEN_BYTES = 24  # 192 random bits in each task's callback URL

log = logging.getLogger(__name__)


def callback_url(base: str, provider_id: str, token: str) -> str:
    """The URL a provider calls back for one task (served by reelbot/callbacks.py)."""
    return f"{base.rstrip('/')}/callbacks/{provider_id}/{token}"


class VideoKind(JobKind):
    name = "video"
    title = vocabulary.STATUS_TITLE
    rerunnable = True
    timed = True

    def __init__(self, inputs: InputStore, *, callback_base: str = "") -> None:
        self.inputs = inputs
        # PUBLIC_BASE_URL: submits to providers with callbacks carry
        # <callback_base>/callbacks/<provider>/<token>; empty = polling only (SPEC §6).
        self.callback_base = callback_base

    async def send(self, lease: Lease, provider: Provider, *, now: float, attempt: Attempt) -> str:
        task = lease.task
        if task.submit_call is not None and task.submit_key is not None:
            # A resend under the same key: the stored first request, byte for byte.
            call, key = SubmitCall.from_json(task.submit_call), task.submit_key
        else:
            req = VideoRequest.of(task)
            image = None
            if req.image:
                image = await self.inputs.input_image(req.image, refresh=task.retry_of is not None)
            request = req.generation(image)
            token = self._callback_token(provider)
            url = None
            if token is not None:
                url = callback_url(self.callback_base, provider.id, token)
                request = dataclasses.replace(request, callback_url=url)
            call = await provider.prepare_submit(request)
            if token is not None and url and url in call.body:  # some models take none
                await lease.checkpoint(callback_token=token)
            # Random per task, not only its row id: after a store restored from a
            # backup hands the same ids out again, an old key must never match. A
            # task sent before keys were stored (an upgrade mid-submit) keeps its old key.
            key = (
                f"reelbot-{task.id}"
                if task.submitted_at is not None
                else f"reelbot-{task.id}-{secrets.token_hex(8)}"
            )
        # From here on the provider may have the request: mark it before sending.
        await lease.checkpoint(submitted_at=now, submit_key=key, submit_call=call.to_json())
        attempt.sent = True
        return await provider.send_submit(call, idempotency_key=key)

    def _callback_token(self, provider: Provider) -> str | None:
        """A new unguessable token for this task's callback URL, or None (no callbacks)."""
        if not self.callback_base or not provider.capabilities.callbacks:
            return None
        return secrets.token_urlsafe(CALLBACK_TOKEN_BYTES)

    async def status(self, provider: Provider, provider_task_id: str) -> TaskStatus:
        return await provider.status(provider_task_id)

    async def cancelled(self, task: TaskRow, provider: Provider | None) -> None:
        # Not every provider can stop a generation; either way we stop tracking it.
        if provider is None or not task.provider_task_id:
            return
        try:
            accepted = await provider.cancel(task.provider_task_id)
        except ProviderError as exc:
            log.warning("task %s: provider cancel failed (%r); stopped tracking", task.id, exc)
            return
        log.info(
            "task %s: provider cancel %s",
            task.id,
            "accepted" if accepted else "not available; stopped tracking",
        )

    def status_title(self, task: TaskRow) -> str:
        return messages.video_title(VideoRequest.of(task))

    def about(self, task: TaskRow) -> str:
        return VideoRequest.of(task).prompt
