"""The motion autocomplete cache: per provider and search, with a TTL, never slower
than its deadline (what Discord's 3-second autocomplete window needs)."""

from __future__ import annotations

import asyncio

import pytest

from providers.base import Motion
from reelbot.motions import MotionCache

pytestmark = pytest.mark.timeout(10)


class FakeProvider:
    id = "higgsfield_feed"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def motions(self, search: str = "") -> list[Motion]:
        self.calls.append(search)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("provider down")
        names = ["Face Punch", "Spin", "Zoom In"]
        return [Motion(id=f"id-{n}", name=n) for n in names if search in n.casefold()]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_fresh_answers_come_from_the_cache() -> None:
    provider, clock = FakeProvider(), Clock()
    cache = MotionCache(ttl=60, deadline=0.5, clock=clock)
    for typed in ("punch", "Punch", " punch "):
        assert [m.name for m in await cache.lookup(provider, typed)] == ["Face Punch"]
    assert provider.calls == ["punch"]
    clock.now += 61
    await cache.lookup(provider, "punch")
    assert provider.calls == ["punch", "punch"], "expired entries are fetched again"


async def test_a_slow_provider_gets_the_stale_entry_within_the_deadline() -> None:
    provider, clock = FakeProvider(), Clock()
    cache = MotionCache(ttl=60, deadline=0.05, clock=clock)
    await cache.lookup(provider, "")
    clock.now += 61
    provider.gate = asyncio.Event()
    loop = asyncio.get_running_loop()
    began = loop.time()
    stale = await cache.lookup(provider, "")
    assert len(stale) == 3 and loop.time() - began < 1.0
    # Another search while slow: filtered locally from the full list, no wait.
    assert [m.name for m in await cache.lookup(provider, "zoom")] == ["Zoom In"]
    provider.gate.set()  # the background fetch finishes and refreshes the entry
    await asyncio.gather(*cache._fetching.values())
    clock.now += 1
    assert len(await cache.lookup(provider, "")) == 3
    cache.close()


async def test_a_failing_provider_answers_from_the_cache_or_with_nothing() -> None:
    provider, clock = FakeProvider(), Clock()
    cache = MotionCache(ttl=60, deadline=0.5, clock=clock)
    provider.fail = True
    assert await cache.lookup(provider, "spin") == []
    provider.fail = False
    assert [m.name for m in await cache.lookup(provider, "spin")] == ["Spin"]
    clock.now += 61
    provider.fail = True
    assert [m.name for m in await cache.lookup(provider, "spin")] == ["Spin"]
