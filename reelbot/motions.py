"""Motion templates for /animate's autocomplete, cached per provider.

Autocomplete fires on every keystroke and Discord drops an answer that comes
later than 3 seconds after the interaction. A provider's motion list changes
rarely, so one answer per (provider, search) is kept for ``ttl`` seconds, and
a lookup never waits longer than ``deadline``: when the provider is slow the
answer comes from the cache (even a stale entry, or the provider's full list
filtered locally) or is empty, while the fetch finishes in the background and
fills the cache for the next keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from providers.base import Motion, Provider

log = logging.getLogger(__name__)

DEFAULT_TTL = 300.0
# Discord's window is 3 s from the interaction; leave room for the callback itself.
DEFAULT_DEADLINE = 2.0
MAX_ENTRIES = 256


@dataclass(slots=True)
class _Entry:
    motions: list[Motion]
    fetched_at: float


class MotionCache:
    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        deadline: float = DEFAULT_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.deadline = deadline
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._fetching: dict[tuple[str, str], asyncio.Task[list[Motion]]] = {}

    async def lookup(self, provider: Provider, search: str) -> list[Motion]:
        """The provider's motions matching ``search``, within ``deadline`` seconds."""
        key = (provider.id, " ".join(search.split()).casefold())
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.fetched_at < self.ttl:
            self._entries.move_to_end(key)
            return entry.motions
        fetch = self._fetching.get(key)
        if fetch is None:
            fetch = asyncio.create_task(self._fetch(provider, key), name=f"motions-{key[0]}")
            # A fetch that outlives its keystroke may fail later: that is logged in _fetch.
            fetch.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._fetching[key] = fetch
        try:
            return await asyncio.wait_for(asyncio.shield(fetch), self.deadline)
        except TimeoutError:
            log.info("motions from %s are slow; answering from the cache", provider.id)
        except Exception:  # noqa: BLE001 - logged in _fetch; autocomplete must answer
            log.debug("motions from %s failed; answering from the cache", provider.id)
        if entry is not None:
            return entry.motions
        return self._filtered(provider.id, key[1])

    def close(self) -> None:
        """Stop fetches still running (the bot is shutting down)."""
        for fetch in list(self._fetching.values()):
            fetch.cancel()
        self._fetching.clear()

    def _filtered(self, provider_id: str, needle: str) -> list[Motion]:
        """Best effort without the provider: the unfiltered list, filtered here."""
        full = self._entries.get((provider_id, ""))
        if full is None:
            return []
        return [m for m in full.motions if needle in m.name.casefold()]

    async def _fetch(self, provider: Provider, key: tuple[str, str]) -> list[Motion]:
        try:
            motions = await provider.motions(key[1])
        except Exception:
            log.warning("motion list from %s failed", provider.id, exc_info=True)
            raise
        finally:
            self._fetching.pop(key, None)
        self._entries[key] = _Entry(list(motions), self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return motions
