"""The character-training job kind: what the worker loop runs for a training task.

Registered with the worker by reelbot/app.py; the decisions (which photos, what a
finished training means for its character) stay with :class:`Characters`.
"""

from __future__ import annotations

import logging

from providers.base import Provider, TaskStatus
from reelbot import messages, vocabulary
from reelbot.characters.model import StoredTraining
from reelbot.characters.service import Characters
from reelbot.jobs.kinds import Attempt, JobKind
from reelbot.jobs.lease import Lease
from reelbot.store.models import TaskRow

log = logging.getLogger(__name__)


class TrainingKind(JobKind):
    """The character-training job kind, owned by :class:`Characters`."""

    name = "training"
    title = vocabulary.TRAINING_TITLE
    has_outputs = False  # the model id, known since the submit, is the result

    def __init__(self, characters: Characters) -> None:
        self.characters = characters

    async def send(self, lease: Lease, provider: Provider, *, now: float, attempt: Attempt) -> str:
        task = lease.task
        training = await self.characters.training_request(task)
        await lease.checkpoint(submitted_at=now)
        attempt.sent = True
        model_id = await provider.train_character(training)
        # Recorded at once, even if the task was cancelled meanwhile, so a delete or
        # ❌ that reads the task from now on finds the model (see training_submitted).
        await lease.checkpoint(provider_task_id=model_id)
        try:
            await self.characters.training_submitted(task, model_id)
        except Exception:  # the model id is returned and recorded regardless
            log.warning("task %s: training_submitted hook failed", task.id, exc_info=True)
        return model_id

    async def status(self, provider: Provider, provider_task_id: str) -> TaskStatus:
        return await provider.character_status(provider_task_id)

    async def final_words(self, task: TaskRow) -> str | None:
        return await self.characters.finish_training(task)

    async def cancelled(self, task: TaskRow, provider: Provider | None) -> None:
        await self.characters.training_cancelled(task)

    def status_title(self, task: TaskRow) -> str:
        return messages.training_title(StoredTraining.from_stored(task.request).name)

    def about(self, task: TaskRow) -> str:
        return StoredTraining.from_stored(task.request).name
