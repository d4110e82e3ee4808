"""Provider health at work: records outcomes in the store, logs transitions once,
gates submits (send / be the probe / skip) and finds where a request can fail over.

The decisions are reelbot/failover/health.py's and reelbot/failover/mapping.py's (pure); this
class only reads and writes the store and logs. One per process; every process sees
the same records (the store), so shards and workers agree on a provider's state.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from providers.base import Provider, ProviderError
from reelbot.failover import mapping
from reelbot.failover.health import Health, Outcome, Verdict, classify, describe, verdict
from reelbot.generations.request import VideoRequest
from reelbot.store.base import Store

log = logging.getLogger(__name__)

SNAPSHOT_TTL = 1.0  # seconds a read of every record serves autocomplete and /providers
DURATION_SAMPLES = 50  # recent videos behind "typical time to a video"
MIN_DURATIONS = 3


@dataclass(frozen=True, slots=True)
class Move:
    """Failover's outcome: send this request to ``target`` instead (SPEC §4)."""

    target: str
    request: VideoRequest
    note: str  # "hiapi is unavailable: sent to foxapi"


@dataclass(frozen=True, slots=True)
class NoMove:
    """It cannot go anywhere else; ``up`` are the providers that are up (to name)."""

    reason: str
    up: tuple[str, ...]


class HealthBook:
    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        order: Sequence[str] = (),
        cooloff: float = 30.0,
    ) -> None:
        self.store = store
        self.providers = providers
        self.order = tuple(order)
        self.cooloff = cooloff
        self._cache: tuple[float, dict[str, Health]] | None = None

    # --- reading ----------------------------------------------------------------------------
    async def snapshot(self, *, fresh: bool = False) -> dict[str, Health]:
        now = time.monotonic()
        if not fresh and self._cache is not None and now - self._cache[0] < SNAPSHOT_TTL:
            return self._cache[1]
        try:
            records = await self.store.provider_health()
        except Exception:  # health is advice: never let a read break /animate
            log.warning("could not read provider health", exc_info=True)
            records = self._cache[1] if self._cache else {}
        self._cache = (now, records)
        return records

    async def down(self, pid: str, *, fresh: bool = False) -> Health | None:
        """The provider's record when it is down and not due for a probe, else None
        (``fresh``: read the store now rather than the last second's snapshot)."""
        h = (await self.snapshot(fresh=fresh)).get(pid)
        return h if verdict(h, now=time.time()) == "skip" else None

    async def up_providers(self, *, exclude: str | None = None) -> list[str]:
        health = await self.snapshot()
        return [
            p for p in mapping.up_providers(self.providers, health, time.time()) if p != exclude
        ]

    # --- recording --------------------------------------------------------------------------
    async def record(
        self,
        pid: str,
        outcome: Outcome,
        *,
        submit: bool = True,
        probe: bool = False,
        error: str | None = None,
    ) -> Health | None:
        try:
            h, transition = await self.store.record_provider_outcome(
                pid,
                outcome,
                now=time.time(),
                submit=submit,
                probe=probe,
                error=error,
                cooloff_base=self.cooloff,
            )
        except Exception:
            log.warning("could not record %s's health", pid, exc_info=True)
            return None
        self._cache = None
        if transition == "down":
            if h.reason == "credits":
                log.error(
                    "provider %s is DOWN: out of credits (402); top up the %s account. "
                    "Requests that named no provider go to %s meanwhile",
                    pid,
                    pid,
                    ", ".join(mapping.candidates(pid, self.order, self.providers)) or "nowhere",
                )
            else:
                log.warning(
                    "provider %s is DOWN after %d refused or failed submits in a row (%s); "
                    "next try in %.0f s",
                    pid,
                    h.streak,
                    h.last_error or "no detail",
                    h.cooloff,
                )
        elif transition == "up":
            log.warning("provider %s is back UP", pid)
        return h

    async def record_submit_error(self, pid: str, exc: ProviderError, *, probe: bool) -> None:
        outcome = classify(exc)
        if outcome is not None:
            await self.record(pid, outcome, probe=probe, error=f"{exc.code}: {exc.message}")

    # --- gating -----------------------------------------------------------------------------
    async def gate(self, pid: str) -> Verdict:
        """send; probe (this process won the one probe: send it, record with probe=True);
        or skip (down: send nothing)."""
        h = (await self.snapshot(fresh=True)).get(pid)
        now = time.time()
        seen = verdict(h, now=now)
        if seen != "probe":
            return seen
        try:
            won = await self.store.claim_probe(pid, now=now)
        except Exception:
            log.warning("could not claim %s's probe", pid, exc_info=True)
            return "skip"
        if won:
            log.info("provider %s: sending one probe after its cool-off", pid)
        self._cache = None
        return "probe" if won else "skip"

    # --- failover ---------------------------------------------------------------------------
    async def find_move(
        self,
        current: str,
        request: VideoRequest,
        exc: ProviderError | None = None,
        *,
        exclude: Collection[str] = (),
    ) -> Move | NoMove:
        """The first FAILOVER_PROVIDERS provider (not ``current``, none already tried)
        that is up, can honour the request and whose adapter accepts it mapped."""
        health = await self.snapshot(fresh=True)
        now = time.time()
        found, why = mapping.options(
            request,
            current,
            order=self.order,
            capabilities={pid: p.capabilities for pid, p in self.providers.items()},
            default_models={pid: p.default_model() for pid, p in self.providers.items()},
            health=health,
            now=now,
        )
        for option in found:
            if option.target in exclude:
                why[option.target] = "it was tried already"
                continue
            reason = await mapping.dry_check(self.providers[option.target], option.request)
            if reason is None:
                note = mapping.moved_note(current, option.target, health.get(current), exc)
                return Move(option.target, option.request, note)
            why[option.target] = reason
        up = tuple(p for p in mapping.up_providers(self.providers, health, now) if p != current)
        detail = "; ".join(f"{pid}: {w}" for pid, w in why.items())
        return NoMove(detail or "no other provider is set up to take it", up)

    # --- showing ----------------------------------------------------------------------------
    async def typical_seconds(self, pid: str) -> float | None:
        try:
            durations = await self.store.recent_durations(pid, limit=DURATION_SAMPLES)
        except Exception:
            log.debug("could not read %s's recent durations", pid, exc_info=True)
            return None
        if len(durations) < MIN_DURATIONS:
            return None
        return statistics.median(durations)

    async def rows(self) -> list[dict[str, Any]]:
        """One row per configured provider, for /providers and /health."""
        health = await self.snapshot(fresh=True)
        out = []
        for pid in self.providers:
            h = health.get(pid)
            out.append(
                {
                    "provider": pid,
                    "state": h.state if h else "up",
                    "text": describe(h),
                    "down_since": h.down_since if h and h.down else None,
                    "out_of_credits": bool(h and h.out_of_credits),
                    "success_rate": h.success_rate if h else None,
                    "samples": len(h.recent) if h else 0,
                    "last_error": h.last_error if h else None,
                    "typical_seconds": await self.typical_seconds(pid),
                }
            )
        return out
