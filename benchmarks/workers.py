"""Worker scaling on PostgreSQL: ``python benchmarks/workers.py [--tasks 300] [--workers 1,2,4]``.

For each worker count, a fresh schema, fresh doubles (served by this process) and that
many real ``python bot.py --worker`` processes. N tasks (round robin over four
text-to-video providers, each generated a fixed ``--completion`` seconds after its
submit) are written to the store through the product's own ``create_task``, with no
thread or status message (as if their gateway had posted nothing yet: the final message
goes to the channel), while the workers are idle. Once every worker is up, one UPDATE
makes all N due together and a NOTIFY wakes the workers: the clock starts there.

Per worker count, one JSON object gets:

* ``wall_s``: from "all due" to the last final message (Discord double timestamps, ms);
* ``tasks_per_s``: N / ``wall_s``;
* ``delivery_delay_s``: p50/p95/max of "final message posted" minus "provider had the
  video" (submit time + completion), i.e. what the poll interval and the delivery
  queue add;
* ``duplicates``: final messages beyond one per task (must be 0); ``resubmits``:
  provider submissions beyond one per task (must be 0);
* ``claimed_by_worker``: each worker's ``tasks_claimed_total`` (health endpoint):
  claims of submit, poll and deliver actions, to show how the work was shared.

PostgreSQL: REELBOT_TEST_POSTGRES_URL (a role that may create databases), or else a
throwaway cluster from ``tests/pg.py``. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # ``python benchmarks/workers.py``: make the repo importable
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from doubles.discord.snowflake import DISCORD_EPOCH_MS  # noqa: E402
from doubles.harness import World, build_world  # noqa: E402
from providers import PROVIDER_IDS  # noqa: E402
from reelbot.store.models import NewTask, QuotaPolicy  # noqa: E402
from reelbot.store.postgres import PostgresStore  # noqa: E402
from reelbot.wiring import build_providers  # noqa: E402
from tests.pg import Cluster, fresh_schema, own_database  # noqa: E402

PROVIDERS = ("hiapi", "foxapi", "gptge", "higgsfield")  # text-to-video: no input image
_FINAL = re.compile(r"-# Task #(\d+)$")
STARTUP_TIMEOUT = 60.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--tasks", type=int, default=300, help="tasks per round (N)")
    p.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    p.add_argument(
        "--completion", type=float, default=2.0, help="seconds from submit to a finished video"
    )
    p.add_argument("--poll-interval", type=float, default=0.25, help="POLL_INTERVAL_SECONDS")
    p.add_argument("--poll-max-interval", type=float, default=1.0, help="POLL_MAX_INTERVAL_SECONDS")
    p.add_argument("--log-dir", type=Path, help="keep the workers' logs here")
    return p.parse_args(argv)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def snowflake_seconds(snowflake: int) -> float:
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu(pid: int | str, *, children: bool = False) -> tuple[float, int]:
    """(CPU seconds, parent pid) of a process from /proc; with ``children``, plus the
    CPU of its children that already exited (cutime/cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK"), int(fields[1])


def postgres_cpu_seconds(postmaster: int | None) -> float | None:
    """CPU used so far by a local server: the postmaster, its live backends and the
    ones that exited. None when the server is not ours to see."""
    if postmaster is None:
        return None
    total = _proc_cpu(postmaster, children=True)[0]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                cpu, parent = _proc_cpu(entry.name)
                if parent == postmaster:
                    total += cpu
    return total


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str, str, int | None]]:
    """(server URL, where it came from, postmaster pid if it is our throwaway cluster)."""
    url = os.environ.get("REELBOT_TEST_POSTGRES_URL", "").strip()
    if url:
        yield url, "REELBOT_TEST_POSTGRES_URL", None
        return
    cluster = Cluster.start()
    try:
        pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        yield cluster.url, "throwaway cluster (tests/pg.py, fsync off)", pid
    finally:
        cluster.stop()


class Worker:
    """One ``python bot.py --worker`` with the world's environment (nothing from .env)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.health_port = free_port()
        self.log_path = log_dir / f"{name}.log"
        base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        blank = {f"{p.upper()}_{s}": "" for p in PROVIDER_IDS for s in ("API_KEY", "BASE_URL")}
        full = {**base, **blank, **env, "HEALTH_PORT": str(self.health_port)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bot.py"), "--worker"],
                cwd=log_dir,
                env=full,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "running as worker" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start within {STARTUP_TIMEOUT:g}s")
            await asyncio.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (Linux /proc), to see where the time went."""
        return _proc_cpu(self.proc.pid)[0]

    async def claimed(self) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.health_port}/health") as resp,
        ):
            return int((await resp.json())["tasks_claimed_total"])


def stop(workers: Sequence[Worker]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for w in workers:
        try:
            w.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(5)


async def seed(world: World, store: PostgresStore, count: int) -> dict[int, str]:
    """N tasks as /animate would record them (request dict with the default model), not
    yet due; returns task id → prompt."""
    async with aiohttp.ClientSession() as session:
        providers = build_providers(world.config, session)
        prompts: dict[int, str] = {}
        for serial in range(count):
            pid = PROVIDERS[serial % len(PROVIDERS)]
            prompt = f"benchmark clip {serial}"
            request = {"prompt": prompt, "model": providers[pid].default_model()}
            task = await store.create_task(
                NewTask(
                    provider=pid,
                    guild_id=world.guild_id,
                    channel_id=world.channel_id,
                    requester_id=world.users["alice"],
                    request={k: v for k, v in request.items() if v is not None},
                    poll_interval=world.config.poll_interval,
                ),
                now=time.time(),
                policy=QuotaPolicy(default_limit=0, enforce=False),
            )
            prompts[task.id] = prompt
    return prompts


async def one_round(
    args: argparse.Namespace,
    database_url: str,
    worker_count: int,
    log_dir: Path,
    postmaster: int | None,
) -> dict[str, Any]:
    async with fresh_schema(database_url) as url:
        world = await build_world(
            log_dir / f"data-{worker_count}",
            start=False,
            provider_ids=PROVIDERS,
            env={
                "DATABASE_URL": url,
                "POLL_INTERVAL_SECONDS": str(args.poll_interval),
                "POLL_MAX_INTERVAL_SECONDS": str(args.poll_max_interval),
                "TASK_TIMEOUT_SECONDS": "3600",
                "DAILY_QUOTA": "0",
                "LOG_LEVEL": "INFO",
                "LOG_FORMAT": "text",
            },
        )
        for double in world.providers.values():
            double.record = False  # no per-request lists: N can be large
            double.completion_delay = lambda _index: args.completion
        store = PostgresStore(url)
        await store.open()
        workers: list[Worker] = []
        try:
            prompts = await seed(world, store, args.tasks)
            for i in range(worker_count):
                workers.append(Worker(f"w{worker_count}-{i}", dict(world.env), log_dir))
            await asyncio.gather(*(w.ready() for w in workers))

            # All N due at once; the NOTIFY wakes every worker.
            cpu_before = [w.cpu_seconds() for w in workers]
            world_cpu_before = time.process_time()
            pg_cpu_before = postgres_cpu_seconds(postmaster)
            started = time.time()
            await store.pool.execute("UPDATE tasks SET next_action_at = $1", started)
            await store.notify_work()
            timeout = 120.0 + args.tasks * args.completion / 10
            while (
                await store.pool.fetchval("SELECT COUNT(*) FROM tasks WHERE delivered") < args.tasks
            ):
                if time.time() - started > timeout:
                    raise TimeoutError(f"not every task delivered within {timeout:.0f}s")
                for w in workers:
                    if w.proc.poll() is not None:
                        raise RuntimeError(f"{w.name} exited:\n{w.log()[-3000:]}")
                await asyncio.sleep(0.05)
            world_cpu = time.process_time() - world_cpu_before
            pg_cpu_after = postgres_cpu_seconds(postmaster)
            cpu = [w.cpu_seconds() - b for w, b in zip(workers, cpu_before, strict=True)]
            claimed = [await w.claimed() for w in workers]
            return measure(world, prompts, started, args.completion) | {
                "workers": worker_count,
                "claimed_by_worker": claimed,
                # CPU seconds spent during the round: by each worker, and by this
                # process (the Discord and provider doubles, and the progress checks).
                "worker_cpu_s": [round(c, 2) for c in cpu],
                "doubles_cpu_s": round(world_cpu, 2),
                "postgres_cpu_s": None
                if pg_cpu_before is None or pg_cpu_after is None
                else round(pg_cpu_after - pg_cpu_before, 2),
            }
        finally:
            stop(workers)
            await store.close()
            await world.close()


def measure(
    world: World, prompts: dict[int, str], started: float, completion: float
) -> dict[str, Any]:
    bot = world.discord.bot_user_id
    finals: Counter[int] = Counter()
    posted: dict[int, float] = {}
    for message in world.discord.messages(world.channel_id):
        match = _FINAL.search(message.content) if message.author_id == bot else None
        if match is None:
            continue
        task_id = int(match.group(1))
        finals[task_id] += 1
        posted[task_id] = min(posted.get(task_id, math.inf), snowflake_seconds(message.id))
    # When each video was ready at its provider: submit time + the fixed completion.
    ready: dict[str, float] = {}
    submits: Counter[str] = Counter()
    for double in world.providers.values():
        for task in double.tasks.values():
            submits[task.prompt] += 1
            ready[task.prompt] = min(ready.get(task.prompt, math.inf), task.created + completion)
    delays = [posted[t] - ready[p] for t, p in prompts.items() if t in posted and p in ready]
    wall = max(posted.values()) - started

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "tasks": len(prompts),
        "delivered": len(posted),
        "wall_s": r(wall),
        "tasks_per_s": r(len(posted) / wall),
        "delivery_delay_s": {
            "p50": r(percentile(delays, 50)),
            "p95": r(percentile(delays, 95)),
            "max": r(max(delays, default=None)),
        },
        "duplicates": sum(n - 1 for n in finals.values()),
        "resubmits": sum(n - 1 for n in submits.values()),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    with contextlib.ExitStack() as stack:
        # Logs and data directories: kept with --log-dir, else removed at the end.
        log_dir = args.log_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="reelbot-bench-"))
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        server, source, postmaster = stack.enter_context(postgres_server())
        database = stack.enter_context(own_database(server))
        rounds = [await one_round(args, database, n, log_dir, postmaster) for n in counts]
    return {
        "benchmark": "workers",
        "tasks": args.tasks,
        "completion_s": args.completion,
        "poll_interval_s": [args.poll_interval, args.poll_max_interval],
        "providers": list(PROVIDERS),
        "cpus": os.cpu_count(),
        "postgres": source,
        "rounds": rounds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))
    return 0 if all(r["duplicates"] == 0 and r["resubmits"] == 0 for r in result["rounds"]) else 1


if __name__ == "__main__":
    sys.exit(main())
