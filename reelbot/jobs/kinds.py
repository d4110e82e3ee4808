"""Job kinds: what differs between a video and a character training, owned by each.

The worker loop knows no kind by name. Each kind's owner (the generations and the
characters packages) gives a :class:`JobKind`: how to send its submission, how to ask
about it, and the final words its thread gets. They are registered in one
:class:`JobKinds` mapping, which the poller and delivery read (RoboDanny's cogs own
their ``*_timer_complete`` handlers the same way).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from providers.base import Provider, TaskStatus
from reelbot.jobs.lease import Lease
from reelbot.store.models import TaskRow


@dataclass(slots=True)
class Attempt:
    """One submit in progress. ``sent``: the request may have left, so from here on a
    failure is ambiguous (SPEC §4). A kind sets it right before sending."""

    sent: bool


class JobKind(ABC):
    name: str
    title: str  # the first words of its status message (vocabulary.STATUS_TITLES)
    rerunnable: bool = False  # 🔁 under its final message runs it again
    has_outputs: bool = True  # a success must bring outputs (a video does; a training's
    # result is its model id, known since the submit)
    timed: bool = False  # how long it took sets its provider's poll schedule

    @abstractmethod
    async def send(self, lease: Lease, provider: Provider, *, now: float, attempt: Attempt) -> str:
        """Build the submission, mark the task as sent (``lease.checkpoint``, then
        ``attempt.sent``), send it; the provider's task id."""

    @abstractmethod
    async def status(self, provider: Provider, provider_task_id: str) -> TaskStatus:
        """How the provider's task is doing."""

    async def final_words(self, task: TaskRow) -> str | None:
        """The final message's text, or None for the default (the outputs, or the
        failure / cancellation words)."""
        return None

    @abstractmethod
    def status_title(self, task: TaskRow) -> str:
        """The first line of its status message: ``title`` and what the task is of."""

    @abstractmethod
    async def cancelled(self, task: TaskRow, provider: Provider | None) -> None:
        """After a member's cancel is recorded: stop what can be stopped of the task
        outside the store (``provider``: None when it is no longer configured)."""

    def about(self, task: TaskRow) -> str:
        """What the task is about in the member's words, for lists (/jobs): a video's
        prompt, a training's character name. Only the kind knows its request's keys."""
        return ""


class JobKinds(dict[str, JobKind]):
    """The registry: kind name → its :class:`JobKind`."""

    def register(self, kind: JobKind) -> None:
        if kind.name in self:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        self[kind.name] = kind
