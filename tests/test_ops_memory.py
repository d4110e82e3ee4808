"""The collector's tuning for a worker process (reelbot/ops/memory.py)."""

from __future__ import annotations

import gc

import pytest

from reelbot.ops import memory


def test_the_collector_is_tuned_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full collections every second or two (60-90 ms each) were the loop's p99 lag at
    N = 10,000: the young generation is enlarged and start-up's objects frozen, once."""
    calls: list[str] = []
    monkeypatch.setattr(memory, "_gc_tuned", False)
    monkeypatch.setattr(gc, "get_threshold", lambda: (700, 10, 10))
    monkeypatch.setattr(gc, "set_threshold", lambda *a: calls.append(f"threshold {a}"))
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    memory.tune_gc()
    memory.tune_gc()
    assert calls == [f"threshold {(memory.GC_YOUNG_THRESHOLD, 10, 10)}", "collect", "freeze"]
