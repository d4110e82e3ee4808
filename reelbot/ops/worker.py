"""A worker process's loops: the poller and the first-frame sweep.

Each runs as a kept task whose crash is logged (python-discord's ``scheduling``: never
a bare ``create_task``). ``stop`` stops the poller first, so in-flight store writes
finish before whoever opened the store closes it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reelbot.generations.service import Generations
from reelbot.jobs.poller import Poller
from reelbot.ops.memory import tune_gc
from reelbot.store import Store

log = logging.getLogger(__name__)

INPUT_SWEEP_INTERVAL = 6 * 3600.0


class Worker:
    def __init__(self, *, poller: Poller, store: Store, generations: Generations) -> None:
        self.poller = poller
        self.store = store
        self.generations = generations
        self.poller_task: asyncio.Task[None] | None = None
        self.sweep_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        tune_gc()  # after start-up, whose objects it freezes
        await self.store.subscribe(self.poller.wake)  # work added by other processes
        self.poller_task = asyncio.create_task(self.poller.run(), name="poller")
        self.poller_task.add_done_callback(_log_crash)
        self.sweep_task = asyncio.create_task(self._sweep_inputs(), name="input-sweep")

    async def stop(self) -> None:
        """Stop claiming work and let in-flight actions record their outcomes, then end
        the loops. Safe on a worker never started (a gateway-only process)."""
        await self.poller.stop()
        for task in (self.poller_task, self.sweep_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _sweep_inputs(self) -> None:
        """At start and every few hours: remove first-frame images no task created
        within INPUT_RETENTION_DAYS uses."""
        while True:
            try:
                await self.generations.sweep_inputs(now=time.time())
            except Exception:
                log.warning("could not clean up old first-frame images", exc_info=True)
            await asyncio.sleep(INPUT_SWEEP_INTERVAL)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the poller stopped unexpectedly", exc_info=task.exception())
