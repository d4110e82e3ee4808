"""The benchmark's outside world, in its own process: Discord and provider doubles.

In production Discord and the providers are other machines. Serving them from the
bot's event loop would charge their work (tens of thousands of HTTP answers a
minute) to the bot's loop lag, CPU and RSS, so the benchmark runs them here, in a
separate process (on a 2-core machine: one core for the world, one for the bot).

Tasks are tagged in their prompt with ``#b<serial>/<total>/<elapsed>[/L<bytes>]``:
the provider double then plays the *rest* of a ``timed_timeline(total)`` that
started ``elapsed`` seconds ago (a task that was already running before the
benchmark began), and records when, on the shared monotonic clock, the task
completes. ``L<bytes>`` makes the output a generated stream of that size.

Control API (JSON over 127.0.0.1, used by ``benchmarks.botside``):

* ``POST /threads {"count"}``: create that many threads, each with a starter and a
  status message by the bot, as ``/animate`` would have (no gateway traffic when
  the bot is not connected yet);
* ``POST /epoch {"at"}``: start the clocks of the tasks submitted so far;
* ``POST /tier {"tier"}``: the guild's boost tier (its upload limit);
* ``GET /counters``: per provider, requests served and status polls answered;
* ``GET /results``: completion times and polls per serial, final messages per nonce;
* ``POST /ack {"count", "timeout"}``: ``count`` concurrent ``/animate`` invocations,
  answered with each one's invoke-to-acknowledgement latency;
* ``POST /stop``.

``--callbacks``: the doubles of providers with callbacks (hiapi, foxapi, gptge) call
the bot back when a tagged task completes, as ``doubles.providers.callbacks`` does,
but on a timer per task at its known completion time (the doubles' own watcher looks
at every pending task 20 times a second, too much for 25,000 of them).

Run by the benchmark as ``python -m benchmarks.world``; it prints one JSON line with
the addresses, then serves until ``/stop`` or until its stdin closes (the parent died).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

if __package__ in (None, ""):  # ``python benchmarks/world.py``: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from doubles.discord import DiscordDouble
from doubles.discord.messaging import MessageBody
from doubles.providers import ProviderDouble, Step, make_double
from doubles.providers.base import Task
from doubles.providers.wire import Wire
from providers import PROVIDER_IDS

API_KEY = "bench-key"
TAG = re.compile(r"#b(\d+)/([\d.]+)/([\d.]+)(?:/L(\d+))?")
ACK_USERS = 100
# (progress or None for queued, fraction of the total at which this step ends), as
# in doubles.providers.timeline.timed_timeline with its default queued_fraction.
_QUEUED_FRACTION = 0.2
_SLICE = (1.0 - _QUEUED_FRACTION) / 3
SEGMENTS: tuple[tuple[int | None, float], ...] = (
    (None, _QUEUED_FRACTION),
    (25, _QUEUED_FRACTION + _SLICE),
    (50, _QUEUED_FRACTION + 2 * _SLICE),
    (75, 1.0),
)


def tail_timeline(total: float, elapsed: float, large_bytes: int | None = None) -> list[Step]:
    """The remainder of ``timed_timeline(total)`` for a task that began ``elapsed`` ago."""
    steps: list[Step] = []
    start = 0.0
    for progress, end_fraction in SEGMENTS:
        end = total * end_fraction
        if end > elapsed:
            seconds = end - max(start, elapsed)
            if progress is None:
                steps.append(Step.queued(seconds=seconds))
            else:
                steps.append(Step.running(progress, seconds=seconds))
        start = end
    steps.append(Step.succeed(large_bytes=large_bytes))
    return steps


class BenchDouble:
    """Per-provider bookkeeping of tagged tasks, hooked into one provider double.

    Tagged tasks submitted before the world's epoch is set (the benchmark's set-up)
    stay queued until it is; their clock then starts at the epoch, so a task that
    "began 100 s ago" does not finish during the set-up, before the bot is running.
    """

    def __init__(self, double: ProviderDouble, world: World) -> None:
        self.double = double
        self.world = world
        self.tasks: dict[int, Task] = {}
        self.complete_at: dict[int, float] = {}
        self.pending: list[tuple[int, float, float, int | None]] = []
        self.serial_of: dict[str, int] = {}  # provider task id -> serial
        self.callback_jobs: set[asyncio.Task[None]] = set()
        original_create = double.create_task
        original_timeline = double._timeline_for

        # The double picks a timeline from (index, prompt); a tagged prompt carries its
        # own, so tasks keep their completion time however many are submitted at once.
        def timeline_for(index: int, prompt: str) -> tuple[Step, ...]:
            match = TAG.search(prompt)
            if match is None:
                return original_timeline(index, prompt)
            if self.world.epoch is None:
                return (Step.queued(),)  # frozen until the epoch
            total, elapsed = float(match.group(2)), float(match.group(3))
            large = int(match.group(4)) if match.group(4) else None
            return tuple(tail_timeline(total, elapsed, large))

        def create_task(
            request: web.Request, task_id: str, body: Any, prompt: str, *, family: str = ""
        ) -> Task:
            task = original_create(request, task_id, body, prompt, family=family)
            match = TAG.search(prompt)
            if match is not None:
                serial = int(match.group(1))
                total, elapsed = float(match.group(2)), float(match.group(3))
                large = int(match.group(4)) if match.group(4) else None
                self.tasks[serial] = task
                self.serial_of[task.id] = serial
                if self.world.epoch is None:
                    self.pending.append((serial, total, elapsed, large))
                else:
                    # Timelines run on loop.time() == time.monotonic(), which is
                    # system-wide on Linux: the bot process can compare against it.
                    self.complete_at[serial] = task.since + max(0.0, total - elapsed)
                    if self.world.callbacks:
                        self._call_back_at(serial, self.complete_at[serial])
            return task

        double._timeline_for = timeline_for  # type: ignore[method-assign]
        double.create_task = create_task  # type: ignore[method-assign]
        if world.callbacks:
            original_track = double.callbacks.track

            # The double tracks a task while creating it, before create_task above
            # knows its serial: a tagged task is recognised by its prompt. Its timer
            # is set once its completion time is known (above, or at the epoch); the
            # double's own watcher (every pending task 20 times a second) never
            # sees it. It did, once: at N = 25,000 that watcher took 87 % of this
            # process, and every answer to the bot came late.
            def track(task: Task, url: str | None) -> None:
                if not url or TAG.search(task.prompt) is None:
                    original_track(task, url)
                    return
                double.callbacks.urls[task.id] = url

            double.callbacks.track = track  # type: ignore[method-assign]

    def _call_back_at(self, serial: int, at: float) -> None:
        task = self.tasks[serial]
        if task.id not in self.double.callbacks.urls:
            return
        loop = asyncio.get_running_loop()
        loop.call_later(max(0.0, at - time.monotonic()), self._call_back, task.id)

    def _call_back(self, task_id: str) -> None:
        callbacks = self.double.callbacks
        task = self.double.tasks[task_id]
        step = callbacks._final_step(task)
        if step is None:  # a timer a little early: look again shortly
            asyncio.get_running_loop().call_later(0.02, self._call_back, task_id)
            return
        job = asyncio.create_task(callbacks.send(task_id, step=step))
        self.callback_jobs.add(job)
        job.add_done_callback(self.callback_jobs.discard)

    def start_clock(self, epoch: float) -> None:
        for serial, total, elapsed, large in self.pending:
            task = self.tasks[serial]
            task.replace_timeline(tail_timeline(total, elapsed, large), epoch)
            self.complete_at[serial] = epoch + max(0.0, total - elapsed)
            if self.world.callbacks:
                self._call_back_at(serial, self.complete_at[serial])
        self.pending.clear()

    def counters(self) -> dict[str, int]:
        polls = sum(t.polls for t in self.double.tasks.values())
        return {
            "requests": self.double.request_count,
            "polls": polls,
            "tasks": len(self.double.tasks),
        }


class World:
    def __init__(
        self,
        *,
        status_latency: float,
        submit_latency: float,
        wire: str = "whole",
        callbacks: bool = False,
    ) -> None:
        self.callbacks = callbacks
        self.discord = DiscordDouble()
        self.providers: dict[str, ProviderDouble] = {}
        self.bench: dict[str, BenchDouble] = {}
        self.status_latency = status_latency
        self.submit_latency = submit_latency
        self.wire = wire
        self.guild_id = 0
        self.channel_id = 0
        self.users: list[int] = []
        self.stopped = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.control_url = ""
        self._ack_serial = 50_000_000
        self.epoch: float | None = None

    async def start(self) -> dict[str, Any]:
        await self.discord.start()
        for pid in PROVIDER_IDS:
            # record=False: no per-request lists; 10,000 tasks must not grow the world.
            double = make_double(pid, api_key=API_KEY, record=False, seed=7)
            double.status_latency = self.status_latency
            double.submit_latency = self.submit_latency
            if self.wire == "whole":
                # A real provider's small JSON answer usually arrives in one segment; the
                # sliced wire (the test suite's default) costs the bot extra reads per poll.
                double.wire = Wire.whole()
            await double.start()
            self.providers[pid] = double
            self.bench[pid] = BenchDouble(double, self)
        d = self.discord
        self.guild_id = d.add_guild("Benchmark Server", premium_tier=0)
        self.channel_id = d.add_channel(self.guild_id, "videos")
        self.users = [d.add_member(self.guild_id, f"user{i}") for i in range(ACK_USERS)]

        app = web.Application(client_max_size=4 * 2**20)
        app.router.add_post("/threads", self._threads)
        app.router.add_post("/epoch", self._epoch)
        app.router.add_post("/tier", self._tier)
        app.router.add_get("/counters", self._counters)
        app.router.add_get("/results", self._results)
        app.router.add_post("/ack", self._ack)
        app.router.add_post("/stop", self._stop)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.control_url = f"http://{host}:{port}"
        return {
            "control": self.control_url,
            "token": d.token,
            "api_base": d.api_base,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "bot_user_id": d.bot_user_id,
            "users": self.users,
            "api_key": API_KEY,
            "providers": {pid: p.base_url for pid, p in self.providers.items()},
            "media_png": self.providers["hiapi"].media_url("input.png"),
        }

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for double in self.providers.values():
            await double.close()
        await self.discord.close()

    # --- control routes ---------------------------------------------------------------
    async def _threads(self, request: web.Request) -> web.Response:
        count = int((await request.json())["count"])
        ops = self.discord._ops  # the double has no bulk API; its operations are the model
        state = ops.state
        parent = state.channels[self.channel_id]
        bot = state.bot_user_id
        limit = ops.upload_limit(parent)
        items: list[list[int]] = []
        for i in range(count):
            anchor = ops.create_message(
                parent,
                bot,
                MessageBody({"content": f"🎬 benchmark request {i}"}),
                upload_limit=limit,
            )
            thread = ops.start_thread(parent, f"benchmark {i}", bot, starter=anchor)
            status = ops.create_message(
                thread, bot, MessageBody({"content": "⏳ Queued"}), upload_limit=limit
            )
            items.append([thread.id, status.id])
            if i % 500 == 499:
                await asyncio.sleep(0)  # stay responsive while creating thousands
        return web.json_response({"items": items})

    async def _epoch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.epoch = float(body.get("at") or time.monotonic())
        for bench in self.bench.values():
            bench.start_clock(self.epoch)
        return web.json_response({"epoch": self.epoch})

    async def _tier(self, request: web.Request) -> web.Response:
        tier = int((await request.json())["tier"])
        self.discord.set_upload_limit(self.guild_id, premium_tier=tier)
        return web.json_response({"tier": tier})

    async def _counters(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "now": time.monotonic(),
                "cpu_s": time.process_time(),
                "providers": {pid: b.counters() for pid, b in self.bench.items()},
                "discord": self._discord_counts(),
            }
        )

    def _discord_counts(self) -> dict[str, int]:
        """The bot's Discord REST requests so far, by what they do."""
        counts = dict.fromkeys(("messages", "edits", "reactions", "reads", "other", "total"), 0)
        for method, path, _ in self.discord.request_log:
            if "/reactions/" in path:
                kind = "reactions"
            elif "/messages" in path and method == "POST":
                kind = "messages"
            elif "/messages/" in path and method == "PATCH":
                kind = "edits"
            elif method == "GET":
                kind = "reads"
            else:
                kind = "other"
            counts[kind] += 1
            counts["total"] += 1
        return counts

    async def _results(self, request: web.Request) -> web.Response:
        complete_at: dict[str, float] = {}
        polls: dict[str, int] = {}
        for bench in self.bench.values():
            for serial, at in bench.complete_at.items():
                complete_at[str(serial)] = at
                polls[str(serial)] = bench.tasks[serial].polls
        state = self.discord._ops.state
        finals: dict[str, dict[str, Any]] = {}
        for (_, author, nonce), message_id in state.nonces.items():
            if author != state.bot_user_id or not str(nonce).startswith("reelbot-"):
                continue
            message = state.messages[message_id]
            finals[str(nonce)[len("reelbot-") :]] = {
                "at": message.created_monotonic,
                "files": len(message.attachments),
                "bytes": sum(a.size for a in message.attachments),
                "large_link": "/media/large/" in message.content,
            }
        return web.json_response(
            {"now": time.monotonic(), "complete_at": complete_at, "polls": polls, "finals": finals}
        )

    async def _ack(self, request: web.Request) -> web.Response:
        body = await request.json()
        count = int(body.get("count", 100))
        timeout = float(body.get("timeout", 10.0))
        total = float(body.get("total", 30.0))
        pids: Sequence[str] = body.get("providers") or ("hiapi", "foxapi", "higgsfield", "gptge")

        async def one(i: int) -> float | None:
            self._ack_serial += 1
            interaction = await self.discord.invoke(
                "animate",
                guild_id=self.guild_id,
                channel_id=self.channel_id,
                user_id=self.users[i % len(self.users)],
                options={
                    "prompt": f"ack clip #b{self._ack_serial}/{total}/0",
                    "provider": pids[i % len(pids)],
                },
            )
            try:
                await interaction.wait_for_response(timeout=timeout)
            except TimeoutError:
                return None
            assert interaction.acknowledged_monotonic is not None
            return interaction.acknowledged_monotonic - interaction.created_monotonic

        results = await asyncio.gather(*(one(i) for i in range(count)))
        latencies = [r for r in results if r is not None]
        return web.json_response(
            {"latencies": latencies, "unanswered": sum(r is None for r in results)}
        )

    async def _stop(self, request: web.Request) -> web.Response:
        self.stopped.set()
        return web.json_response({"ok": True})


async def _stdin_closed() -> None:
    # The parent holds our stdin open; EOF means it is gone, so we must not linger.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status-latency", type=float, default=0.0)
    parser.add_argument("--submit-latency", type=float, default=0.0)
    parser.add_argument("--wire", choices=("whole", "sliced"), default="whole")
    parser.add_argument("--callbacks", action="store_true", help="hiapi, foxapi, gptge call back")
    args = parser.parse_args(argv)
    world = World(
        status_latency=args.status_latency,
        submit_latency=args.submit_latency,
        wire=args.wire,
        callbacks=args.callbacks,
    )
    info = await world.start()
    print(json.dumps(info), flush=True)
    orphan = asyncio.create_task(_stdin_closed())
    stop = asyncio.create_task(world.stopped.wait())
    await asyncio.wait({orphan, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    await world.close()
    # The executor thread blocked on stdin.read() would keep the process alive.
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    import os

    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
