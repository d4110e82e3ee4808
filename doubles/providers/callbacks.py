"""Provider doubles that call back (SPEC §6), as the real services would.

A submit carrying a callback URL (hiapi ``callback.url``, foxapi and gptge
``callback_url``) is watched: once the task's next status answer would be final, the
double POSTs the callback, in the provider's way (hiapi: the task object, signed when
``webhook_secret`` is set; gptge/MiniMax: a ``challenge`` handshake first; foxapi:
plain). Scriptable per double: ``callback_mode`` = ``once`` | ``duplicate`` |
``never``, ``callback_delay`` seconds late. Only to 127.0.0.1 URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from doubles.providers.timeline import NORMALISED, advance

if TYPE_CHECKING:
    from doubles.providers.base import ProviderDouble, Task

log = logging.getLogger(__name__)

WATCH_EVERY = 0.05
FINAL = frozenset({"succeeded", "failed", "cancelled"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(slots=True)
class Sent:
    """One callback POST the double made."""

    task_id: str
    url: str
    body: bytes
    status: int  # what the bot answered (0: no answer)
    challenge: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Callbacks:
    """The callback side of one double (``double.callbacks``)."""

    def __init__(self, double: ProviderDouble) -> None:
        self.double = double
        self.mode = "once"  # once | duplicate | never
        self.delay = 0.0
        self.sent: list[Sent] = []
        self.urls: dict[str, str] = {}  # task id → callback URL given at submit
        self._pending: set[str] = set()
        self._handshaken: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def track(self, task: Task, url: str | None) -> None:
        """A task was submitted with ``url`` (None: no callback asked for)."""
        if not url or urlsplit(url).hostname not in LOCAL_HOSTS:
            return
        self.urls[task.id] = url
        self._pending.add(task.id)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="double-callbacks")

    def of(self, task_id: str) -> list[Sent]:
        return [s for s in self.sent if s.task_id == task_id and not s.challenge]

    async def close(self) -> None:
        for job in (self._watcher, *self._jobs):
            if job is not None:
                job.cancel()
        for job in (self._watcher, *self._jobs):
            if job is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
        if self._session is not None:
            await self._session.close()

    def _final_step(self, task: Task) -> Any:
        """The step the next poll would answer, when it is final (without consuming it)."""
        peek = copy.copy(task)
        step = advance(peek, self.double.now())
        return step if NORMALISED.get(step.kind) in FINAL else None

    async def _watch(self) -> None:
        while self._pending:
            for task_id in list(self._pending):
                task = self.double.tasks.get(task_id)
                step = None if task is None else self._final_step(task)
                if task is None or step is None:
                    continue
                self._pending.discard(task_id)
                if self.mode == "never":
                    continue
                job = asyncio.create_task(self._deliver(task, step))
                self._jobs.add(job)
                job.add_done_callback(self._jobs.discard)
            await asyncio.sleep(WATCH_EVERY)

    async def _deliver(self, task: Task, step: Any) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        for _ in range(2 if self.mode == "duplicate" else 1):
            await self.send(task.id, step=step)

    async def send(
        self,
        task_id: str,
        *,
        step: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        url: str | None = None,
    ) -> int:
        """POST one callback for ``task_id`` (by default: what the provider would send
        now); the HTTP status the bot answered."""
        double = self.double
        task = double.tasks[task_id]
        target = url or self.urls[task_id]
        if double.callback_handshake(task) and target not in self._handshaken:
            if not await self._handshake(task_id, target):
                return 0
            self._handshaken.add(target)
        if body is None:
            body = double.callback_body(task, step or task.shown or self._final_step(task))
        sent_headers = (
            double.callback_headers(body)
            if headers is None
            else {"Content-Type": "application/json", **headers}
        )
        status = await self._post(target, body, sent_headers)
        self.sent.append(Sent(task_id, target, body, status))
        return status

    async def _handshake(self, task_id: str, url: str) -> bool:
        """MiniMax: a verification request with ``challenge``; the URL is used only
        when the same value comes back."""
        challenge = f"ch-{secrets.token_hex(8)}"
        body = json.dumps({"challenge": challenge}).encode()
        session = await self._client()
        ok = False
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
                ok = isinstance(answer, dict) and answer.get("challenge") == challenge
                self.sent.append(Sent(task_id, url, body, resp.status, challenge=True))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.sent.append(Sent(task_id, url, body, 0, challenge=True))
        if not ok:
            log.info("%s double: challenge not echoed by %s", self.double.protocol, url)
        return ok

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        session = await self._client()
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return 0
