"""A per-process health endpoint (HEALTH_PORT): role, shards, lag, work in hand.

Process managers and load balancers poll ``GET /health``; it answers 200 with JSON
while the event loop is responsive, so a stuck process shows as a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from aiohttp import web

from reelbot.ops.roles import Role


class WorkInHand(Protocol):
    """What the health endpoint reads of the poller: no import of it."""

    @property
    def in_hand(self) -> Collection[int]: ...

    @property
    def claimed_total(self) -> int: ...


class ProviderRows(Protocol):
    """What it reads of the providers' health book (SPEC §4 "Failover")."""

    async def rows(self) -> list[dict[str, Any]]: ...


log = logging.getLogger(__name__)

LAG_SAMPLE_SECONDS = 0.5


class LoopLagMonitor:
    """How late the event loop wakes up: the worst of the last minute, in ms."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_SAMPLE_SECONDS)
            lag = max(0.0, loop.time() - before - LAG_SAMPLE_SECONDS) * 1000
            self.samples = [*self.samples[-119:], lag]

    @property
    def worst_ms(self) -> float:
        return round(max(self.samples, default=0.0), 1)


class HealthServer:
    def __init__(
        self,
        *,
        role: Role,
        latency: Callable[[], float],
        poller: WorkInHand,
        book: ProviderRows,
        host: str,
        port: int,
    ) -> None:
        self.role = role
        self.latency = latency  # the gateway's heartbeat latency, read on each request
        self.poller = poller
        self.book = book
        self.host = host
        self.port = port
        self.lag = LoopLagMonitor()
        self.started = time.time()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.lag.start()
        log.info("health endpoint on http://%s:%d/health", self.host, self.port)

    async def close(self) -> None:
        await self.lag.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    def snapshot(self) -> dict[str, Any]:
        role, poller = self.role, self.poller
        latency = self.latency() if role.gateway else math.nan
        return {
            "status": "ok",
            "role": role.name,
            "shards": list(role.shard_ids) if role.shard_ids is not None else None,
            "shard_count": role.shard_count,
            "gateway_latency_ms": None
            if math.isnan(latency) or math.isinf(latency)
            else round(latency * 1000, 1),
            "loop_lag_ms": self.lag.worst_ms,
            "tasks_in_hand": len(poller.in_hand) if role.worker else 0,
            "tasks_claimed_total": poller.claimed_total,
            "uptime_s": round(time.time() - self.started, 1),
        }

    async def provider_states(self) -> dict[str, dict[str, Any]]:
        """Each configured provider's state from the store (SPEC §4 "Failover")."""
        return {
            row["provider"]: {
                "state": row["state"],
                "down_since": row["down_since"],
                "out_of_credits": row["out_of_credits"],
                "success_rate": row["success_rate"],
            }
            for row in await self.book.rows()
        }

    async def _health(self, _request: web.Request) -> web.Response:
        body = self.snapshot()
        try:
            body["providers"] = await self.provider_states()
        except Exception:  # the endpoint answers while the loop does, store or not
            log.warning("could not read provider health for /health", exc_info=True)
            body["providers"] = None
        return web.json_response(body)
