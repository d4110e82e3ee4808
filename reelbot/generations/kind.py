"""The video job kind: submit a generation, poll it, deliver its outputs."""

from __future__ import annotations

import secrets

from providers.base import Provider, SubmitCall, TaskStatus
from reelbot.jobs.inputs import InputStore
from reelbot.jobs.kinds import Attempt, JobKind
from reelbot.jobs.lease import Lease
from reelbot.jobs.model import VideoRequest


class VideoKind(JobKind):
    name = "video"
    rerunnable = True
    timed = True

    def __init__(self, inputs: InputStore) -> None:
        self.inputs = inputs

    async def send(self, lease: Lease, provider: Provider, *, now: float, attempt: Attempt) -> str:
        task = lease.task
        if task.submit_call is not None and task.submit_key is not None:
            # A resend under the same key: the stored first request, byte for byte.
            call, key = SubmitCall.from_json(task.submit_call), task.submit_key
        else:
            req = VideoRequest.from_stored(task.request)
            image = None
            if req.image:
                image = await self.inputs.input_image(
                    req.image, refresh=task.retry_of is not None
                )
            call = await provider.prepare_submit(req.generation(image))
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

    async def status(self, provider: Provider, provider_task_id: str) -> TaskStatus:
        return await provider.status(provider_task_id)
