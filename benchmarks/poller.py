"""Benchmark of the poller, store and delivery: ``python benchmarks/poller.py --tasks N``.

Runs the real bot (store, poller, delivery, discord.py) against the Discord double
and the provider doubles, with randomised completion times, and prints one JSON
object. Modes:

* ``poller`` (default): N tasks in flight for ``--duration`` seconds, twice in the
  same run: with the product's adaptive poll policy and with a naive baseline
  (every task polled every POLL_INTERVAL_SECONDS); figures for both and the ratio;
* ``ack``: ``/animate`` acknowledgement latency, bursts of 100 concurrent commands
  on a bot that has N tasks in flight;
* ``tick``: the cost of one poller tick at N/10 and N stored tasks, same number due;
* ``download``: RSS growth while delivering a 200 MiB video;
* ``all``: every mode, one combined object.

Each round runs in a fresh bot process and the doubles in a second process (see
``benchmarks/world.py``), on 127.0.0.1 only. ``--quick`` is a smoke run of seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # ``python benchmarks/poller.py``: make the repo importable
    sys.path.insert(0, str(ROOT))

from providers import PROVIDER_IDS  # noqa: E402

MODES = ("poller", "ack", "tick", "download", "all")
QUICK = {
    "tasks": 300,
    "duration": 5.0,
    "warmup": 1.5,
    "median": 6.0,
    "fair_tasks": 0,
    "bursts": 1,
    "download_mib": 20,
    "tick_reps": 10,
}
SHARED_FIGURES = (
    "provider_requests_per_task",
    "status_polls_per_task",
    "delivery_delay_s",
    "event_loop_lag_ms",
    "peak_rss_mib",
    "store_ops_per_s",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=MODES, default="poller")
    p.add_argument("--tasks", type=int, default=10_000, help="tasks in flight (N)")
    p.add_argument(
        "--providers",
        default=",".join(PROVIDER_IDS),
        help="comma-separated provider ids the tasks are spread over",
    )
    p.add_argument("--duration", type=float, default=35.0, help="seconds per poller round")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds not measured")
    p.add_argument(
        "--median", type=float, default=900.0, help="median completion time (s), see workload.py"
    )
    p.add_argument("--sigma", type=float, default=0.3, help="log-normal spread of it")
    p.add_argument("--poll-interval", type=float, default=1.0, help="POLL_INTERVAL_SECONDS")
    p.add_argument("--poll-max-interval", type=float, default=60.0)
    p.add_argument("--status-latency", type=float, default=0.0, help="provider answer delay (s)")
    p.add_argument(
        "--wire",
        choices=("whole", "sliced"),
        default="whole",
        help="provider answers in one piece, or in random slices as in the test suite",
    )
    p.add_argument(
        "--callbacks",
        action="store_true",
        help="poller: hiapi, foxapi and gptge call the bot back (PUBLIC_BASE_URL); "
        "adaptive round only, figures per provider",
    )
    p.add_argument(
        "--fair-tasks", type=int, default=1000, help="equal-delay comparison: N (0: skip it)"
    )
    p.add_argument("--fair-median", type=float, default=180.0)
    p.add_argument("--fair-duration", type=float, default=28.0)
    p.add_argument("--fair-warmup", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=100, help="ack: commands per burst")
    p.add_argument("--bursts", type=int, default=3, help="ack: bursts")
    p.add_argument("--download-mib", type=int, default=200)
    p.add_argument("--due", type=int, default=40, help="tick: tasks due per tick")
    p.add_argument("--tick-reps", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="smoke run: N=300, a few seconds")
    p.add_argument(
        "--pyspy", default="", help="py-spy samples (raw, --gil) of the adaptive round's window"
    )
    p.add_argument(
        "--no-naive", action="store_true", help="poller: the adaptive round only (no baseline)"
    )
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    unknown = set(args.providers.split(",")) - set(PROVIDER_IDS)
    if unknown:
        p.error(f"unknown providers: {', '.join(sorted(unknown))}")
    return args


class WorldProcess:
    """The doubles in a child process; stopped when we are done (or die: stdin closes)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.world",
                "--status-latency",
                str(args.status_latency),
                "--wire",
                args.wire,
                *(["--callbacks"] if args.callbacks else []),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("the world process did not start")
        self.info: dict[str, Any] = json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the world exits when its stdin closes
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def round_options(args: argparse.Namespace, **overrides: Any) -> list[str]:
    options = {
        "tasks": args.tasks,
        "providers": args.providers,
        "duration": args.duration,
        "warmup": args.warmup,
        "median": args.median,
        "sigma": args.sigma,
        "poll_interval": args.poll_interval,
        "poll_max_interval": args.poll_max_interval,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "bursts": args.bursts,
        "download_mib": args.download_mib,
        "due": args.due,
        "tick_reps": args.tick_reps,
    } | overrides
    flags = [("--" + key.replace("_", "-"), str(value)) for key, value in options.items()]
    return [x for pair in flags for x in pair]


def run_round(
    name: str, args: argparse.Namespace, *extra: str, world: bool = True, **overrides: Any
) -> dict[str, Any]:
    """One round in a fresh bot process (and, unless ``world`` is False, a fresh world)."""
    doubles = WorldProcess(args) if world else None
    try:
        options = round_options(args, **overrides)
        cmd = [sys.executable, "-m", "benchmarks.botside", name, *options, *extra]
        if args.callbacks:
            cmd.append("--callbacks")
        if doubles is not None:
            cmd += ["--world", json.dumps(doubles.info)]
        # Bounded: set-up, the measured time and shutdown; a hung round fails the run.
        tasks = overrides.get("tasks", args.tasks)
        limit = 120 + overrides.get("duration", args.duration) + tasks / 50
        done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=limit)
    finally:
        if doubles is not None:
            doubles.close()
    if done.returncode != 0:
        raise RuntimeError(f"round {name} {' '.join(extra)} failed (exit {done.returncode})")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


def meets_delay_target(figures: dict[str, Any], poll_interval: float) -> bool:
    """Median at most POLL_INTERVAL_SECONDS, 95th percentile at most twice that."""
    delay = figures["delivery_delay_s"]
    if delay["p50"] is None:
        return False
    return delay["p50"] <= poll_interval and delay["p95"] <= 2 * poll_interval


def poller_mode(args: argparse.Namespace) -> dict[str, Any]:
    spy = ("--pyspy", args.pyspy) if args.pyspy else ()
    adaptive = run_round("poller", args, "--policy", "adaptive", *spy)
    if args.callbacks or args.no_naive:  # the naive baseline ignores callbacks: nothing to compare
        return {
            "tasks": args.tasks,
            "callbacks": args.callbacks,
            "poll_interval_s": args.poll_interval,
            "workload": adaptive["workload"],
            **{key: adaptive[key] for key in SHARED_FIGURES},
            "by_provider": adaptive["by_provider"],
            "details": {"adaptive": _trim(adaptive)},
        }
    naive = run_round("poller", args, "--policy", "naive")
    result: dict[str, Any] = {
        "tasks": args.tasks,
        "poll_interval_s": args.poll_interval,
        "workload": adaptive["workload"],
    }
    result.update({key: adaptive[key] for key in SHARED_FIGURES})
    result["naive"] = {key: naive[key] for key in SHARED_FIGURES}
    result["ratio_naive_over_adaptive"] = {
        "provider_requests_per_task": _ratio(
            naive["provider_requests_per_task"], adaptive["provider_requests_per_task"]
        ),
        "store_ops_per_s": _ratio(naive["store_ops_per_s"], adaptive["store_ops_per_s"]),
        "delivery_delay_p50": _ratio(
            naive["delivery_delay_s"]["p50"], adaptive["delivery_delay_s"]["p50"]
        ),
    }
    if args.fair_tasks:
        result["equal_delay"] = equal_delay(args)
    result["details"] = {"adaptive": _trim(adaptive), "naive": _trim(naive)}
    return result


def equal_delay(args: argparse.Namespace) -> dict[str, Any]:
    """Requests per task of both policies where the naive one keeps its promise.

    At N = 10,000 the naive baseline needs 10,000 polls a second, which one process
    cannot make: it falls behind and its delay grows, so comparing request counts
    there compares policies at different delays. Here N is small enough for it to
    poll every task every POLL_INTERVAL_SECONDS, with shorter tasks so that enough
    complete during the round.
    """
    overrides = {
        "tasks": args.fair_tasks,
        "median": args.fair_median,
        "duration": args.fair_duration,
        "warmup": args.fair_warmup,
    }
    adaptive = run_round("poller", args, "--policy", "adaptive", **overrides)
    naive = run_round("poller", args, "--policy", "naive", **overrides)
    keys = ("provider_requests_per_task", "delivery_delay_s", "poll_lateness_s")
    return {
        "tasks": args.fair_tasks,
        "workload": adaptive["workload"],
        "adaptive": {key: adaptive[key] for key in keys},
        "naive": {key: naive[key] for key in keys},
        "ratio_naive_over_adaptive": _ratio(
            naive["provider_requests_per_task"], adaptive["provider_requests_per_task"]
        ),
        "both_meet_delay_target": meets_delay_target(adaptive, args.poll_interval)
        and meets_delay_target(naive, args.poll_interval),
    }


def _trim(figures: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in figures.items() if key != "workload"}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else round(a / b, 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    modes = ("poller", "ack", "tick", "download") if args.mode == "all" else (args.mode,)
    out: dict[str, Any] = {"mode": args.mode, "tasks": args.tasks, "quick": args.quick}
    for mode in modes:
        t0 = time.monotonic()
        if mode == "poller":
            figures = poller_mode(args)
        elif mode == "tick":
            figures = run_round("tick", args, world=False)
        else:
            figures = run_round(mode, args)
        figures["wall_time_s"] = round(time.monotonic() - t0, 1)
        if args.mode == "all":
            out[mode] = figures
        else:
            out.update(figures)
    out["wall_time_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
