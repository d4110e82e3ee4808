"""The benchmark still runs: ``benchmarks/poller.py --mode all --quick`` in a subprocess.

A smoke run (N = 300, a few seconds per round; about 20 s in all): it proves the
benchmark drives the real bot end to end and prints the promised figures, not that
the figures are good (those need N = 10,000; see the README's "Benchmarks").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)

POLLER_FIGURES = (
    "provider_requests_per_task",
    "delivery_delay_s",
    "event_loop_lag_ms",
    "peak_rss_mib",
    "store_ops_per_s",
)


def test_quick_benchmark_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/poller.py", "--mode", "all", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)

    assert result["mode"] == "all" and result["quick"] is True
    assert result["wall_time_s"] > 0

    poller = result["poller"]
    assert poller["tasks"] == 300 and poller["wall_time_s"] > 0
    for figures in (poller, poller["naive"]):
        for key in POLLER_FIGURES:
            assert key in figures, key
        assert set(figures["delivery_delay_s"]) >= {"p50", "p95", "max"}
        assert set(figures["event_loop_lag_ms"]) >= {"p50", "p99", "max"}
        # Tasks completed during the run and the Discord double received them.
        assert figures["delivery_delay_s"]["count"] > 0
        assert figures["delivery_delay_s"]["p50"] is not None
        assert figures["peak_rss_mib"] > 0
    assert "provider_requests_per_task" in poller["ratio_naive_over_adaptive"]

    ack = result["ack"]["ack_latency_ms"]
    assert ack["count"] == 100 and ack["p50"] is not None and ack["p99"] is not None
    assert result["ack"]["unanswered"] == 0

    tick = result["tick"]
    assert len(tick["sizes"]) == 2
    assert tick["tick_ratio_large_vs_small"] > 0
    for size in tick["sizes"].values():
        assert size["claimed_per_tick"] > 0
        assert "claim_due" in size["query_plans"]

    download = result["download"]
    assert download["above_upload_limit"]["delivered"]
    assert download["uploaded"]["delivered"]
    assert download["rss_delta_mib"] is not None
