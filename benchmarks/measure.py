"""Measuring instruments for the bot process: loop lag, RSS, store and provider calls.

They wrap or watch the product code from outside (class-level wrappers installed
before the bot starts); nothing here changes what the product does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

PROC_STATUS = Path("/proc/self/status")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float], *, scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """median/p95/p99/max (scaled, rounded) of ``values``."""

    def r(v: float | None) -> float | None:
        return None if v is None else round(v * scale, digits)

    return {
        "count": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
    }


def _status_kib(field: str) -> int:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """The process's high-water mark (VmHWM)."""
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False if not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class LagMonitor:
    """Event-loop lag: how late a short sleep wakes up (what every other callback waits)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic, lag seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag-monitor")

    async def _run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.samples.append((start, max(0.0, now - start - self.interval)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at <= end]


def _wrap_async_methods(
    cls: type, names: Iterable[str], before: Callable[[str, Any], Any], after: Callable[..., None]
) -> None:
    for name in names:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def wrapper(self: Any, *args: Any, _o: Any = original, _n: str = name, **kw: Any):
            token = before(_n, self)
            try:
                return await _o(self, *args, **kw)
            finally:
                after(_n, self, token)

        setattr(cls, name, wrapper)


class StoreMeter:
    """Counts store operations (one per public store call; each is one transaction/query)."""

    SKIP = frozenset({"open", "close", "migrate", "schema_version"})

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def install(self) -> None:
        from reelbot.store.sqlite import SqliteStore

        names = [
            name
            for name, fn in vars(SqliteStore).items()
            if not name.startswith("_")
            and name not in self.SKIP
            and inspect.iscoroutinefunction(fn)
        ]

        def before(name: str, _: Any) -> None:
            self.calls[name] += 1

        _wrap_async_methods(SqliteStore, names, before, lambda *a: None)

    def total(self) -> int:
        return sum(self.calls.values())


class ProviderMeter:
    """Provider API calls the bot makes: totals and the most ever in flight, per provider."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.per_second: dict[str, Counter[int]] = {}

    def install(self) -> None:
        from providers.http import ProviderHttp

        def before(_: str, http: Any) -> None:
            pid = http.provider_id
            self.calls[pid] += 1
            self.in_flight[pid] += 1
            self.max_in_flight[pid] = max(self.max_in_flight[pid], self.in_flight[pid])
            self.per_second.setdefault(pid, Counter())[int(time.monotonic())] += 1

        def after(_: str, http: Any, __: Any) -> None:
            self.in_flight[http.provider_id] -= 1

        _wrap_async_methods(ProviderHttp, ["request_json"], before, after)

    def reset_peaks(self) -> None:
        self.max_in_flight = Counter(self.in_flight)

    def peak_rate(self, start: float, end: float) -> dict[str, int]:
        lo, hi = int(start), int(end)
        return {
            pid: max((n for s, n in seconds.items() if lo <= s < hi), default=0)
            for pid, seconds in self.per_second.items()
        }


class PollerMeter:
    """How late the poller acts: seconds from a task's due time to the start of its action."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, str, float]] = []  # (monotonic, lane, lateness)

    def install(self) -> None:
        from reelbot.jobs import poller

        spawn = poller.Poller._spawn

        @functools.wraps(spawn)
        def wrapper(self_: Any, lane: Any, task: Any) -> None:
            if task.next_action_at is not None:
                late = max(0.0, time.time() - task.next_action_at)
                self.samples.append((time.monotonic(), lane.name, late))
            spawn(self_, lane, task)

        poller.Poller._spawn = wrapper  # type: ignore[method-assign]

    def lateness(self, start: float, end: float, *, delivery: bool) -> list[float]:
        return [
            late
            for at, lane, late in self.samples
            if start <= at <= end and (lane == "delivery") == delivery
        ]
