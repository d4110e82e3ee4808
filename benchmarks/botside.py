"""One benchmark round, in a fresh process: the real bot against the world process.

``python -m benchmarks.botside <round> --world '<json>' ...`` prints one JSON object
on its last stdout line. Rounds:

* ``poller``: N tasks in flight (steady state, see ``benchmarks.workload``), the real
  ``Reelbot`` (store, poller, delivery, discord.py) for ``--duration`` seconds;
  ``--policy naive`` swaps the poll-interval policy for "every POLL_INTERVAL_SECONDS";
* ``ack``: the same background load, then bursts of concurrent ``/animate``;
* ``download``: one task whose output is a large generated stream; RSS delta;
* ``tick``: the poller's claim step at two store sizes with the same number due
  (no world needed: stub providers, since only the scheduler's own cost counts).

A fresh process per round keeps peak RSS, the policy patch and the store apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):  # ``python benchmarks/botside.py``: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import (
    LagMonitor,
    PollerMeter,
    ProviderMeter,
    StoreMeter,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    summary,
)
from benchmarks.workload import Workload
from doubles.harness import free_port
from providers import PROVIDER_IDS
from providers.base import GenerationRequest, InputImage, Provider, TaskStatus
from reelbot import buttons, messages
from reelbot.app import Reelbot
from reelbot.config import Config, load_config
from reelbot.generations.kind import CALLBACK_TOKEN_BYTES, VideoKind, callback_url
from reelbot.generations.request import VideoRequest
from reelbot.jobs import poller as poller_module
from reelbot.jobs.inputs import InputStore
from reelbot.ops.discordpy import use_api_base
from reelbot.ops.resources import open_resources
from reelbot.store.models import NewTask, QuotaPolicy, TaskRow
from reelbot.store.sqlite import SqliteStore
from reelbot.wiring import ETA_SEED_LIMIT, build_providers

log = logging.getLogger("benchmarks")

NO_QUOTA = QuotaPolicy(default_limit=0, enforce=False)
REQUESTER = 4242
SETUP_CONCURRENCY = 48
HISTORY_PER_PROVIDER = 512
SETTLE = 5.0  # completions this close to the end (at most 30 % of the window) are not judged
PNG = (Path(__file__).resolve().parent.parent / "doubles" / "media" / "input.png").read_bytes()


# --- plumbing ---------------------------------------------------------------------------
def bot_env(world: dict[str, Any], data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = {
        "DISCORD_TOKEN": world["token"],
        "DISCORD_API_BASE": world["api_base"],
        "DISCORD_GUILD_IDS": str(world["guild_id"]),
        "DATABASE_URL": f"sqlite:///{data_dir / 'reelbot.db'}",
        "DATA_DIR": str(data_dir),
        "POLL_INTERVAL_SECONDS": str(args.poll_interval),
        "POLL_MAX_INTERVAL_SECONDS": str(args.poll_max_interval),
        "TASK_TIMEOUT_SECONDS": "3600",
        "DAILY_QUOTA": "0",
        "USER_COOLDOWN_SECONDS": "0",
        "MAX_USER_IN_FLIGHT": "0",
        "ALLOW_LOCAL_URLS": "true",
        "LOG_LEVEL": "WARNING",
    }
    if getattr(args, "callbacks", False):  # the world's doubles call back (SPEC §6)
        port = free_port()
        env |= {
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
        }
    for pid, base in world["providers"].items():
        if pid not in args.providers.split(","):
            continue
        env[f"{pid.upper()}_API_KEY"] = world["api_key"]
        env[f"{pid.upper()}_BASE_URL"] = base
    return env


async def eta_as_the_bot_shows(
    store: SqliteStore, providers: dict[str, Provider]
) -> Callable[[TaskRow], str | None]:
    """The ETA phrase the bot will put in each status text (reelbot.wiring.eta_of, seeded from
    the same history), so the set-up's status texts are what the bot renders."""
    book = buttons.EtaBook()
    models: dict[str, Any] = {}
    for pid in providers:
        book.seed(pid, await store.recent_completions(pid, limit=ETA_SEED_LIMIT))
        model = poller_module.CompletionModel()
        for seconds in await store.recent_durations(pid, limit=model.capacity):
            model.observe(seconds)
        models[pid] = model

    def eta(task: TaskRow) -> str | None:
        provider = providers.get(task.provider)
        if task.kind != "video" or provider is None:
            return None
        return book.text_for(
            task, provider_model=models[task.provider], single_model=len(provider.models()) <= 1
        )

    return eta


def callback_net(age: float, floor: float, ceiling: float, model: Any) -> float:
    """The poller's safety-net interval for a task with a callback, ``age`` old."""
    interval = poller_module.next_poll_interval(
        age=age,
        floor=floor,
        ceiling=ceiling,
        previous_progress=None,
        progress=None,
        since_last_poll=floor,
        model=model,
    )
    return poller_module.callback_safety_net(
        interval, ceiling=ceiling, timeout=3600.0, age=age, model=model
    )


def use_naive_policy() -> None:
    """The baseline: every in-flight task polled every POLL_INTERVAL_SECONDS.

    Same code path, only the interval policy is replaced (the poller imported the
    function by name, so that is where it is swapped).
    """

    def every_interval(**kwargs: Any) -> float:
        return float(kwargs["floor"])

    poller_module.next_poll_interval = every_interval  # type: ignore[assignment]


async def control(
    session: aiohttp.ClientSession, world: dict[str, Any], method: str, path: str, **body: Any
) -> Any:
    async with session.request(
        method, world["control"] + path, json=body if method == "POST" else None
    ) as resp:
        resp.raise_for_status()
        return await resp.json()


def start_pyspy(path: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """Sample this process with py-spy for the measured window (``--pyspy PATH``).

    ``PATH`` ending in ``+threads``: every busy thread (the SQLite thread's statements
    too, which run without the GIL), written to ``PATH`` without that suffix.
    """
    if not path:
        return None
    all_threads = path.endswith("+threads")
    path = path.removesuffix("+threads")
    cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid())]
    cmd += ["--duration", str(max(1, int(seconds))), "--format", "raw", "--output", path]
    if not all_threads:
        cmd += ["--gil"]  # what holds the GIL: the one core the event loop runs on
    else:
        cmd += ["--threads"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def serve(bot: Reelbot, config: Config, owned: contextlib.AsyncExitStack) -> None:
    """Run the bot until it is closed, then close what was opened for it (its store and
    sessions), as bot.py does: the runner task owns them."""
    async with owned:
        await bot.start(config.discord_token)


async def start_bot(env: dict[str, str]) -> tuple[Reelbot, asyncio.Task[None]]:
    config = load_config(env)
    use_api_base(config.discord_api_base)
    owned = contextlib.AsyncExitStack()
    resources = await owned.enter_async_context(open_resources(config))
    bot = Reelbot(config, resources, guild_ready_timeout=0.1)
    runner = asyncio.create_task(serve(bot, config, owned), name="bot")
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({ready, runner}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        if runner in done:
            runner.result()
        raise TimeoutError("the bot did not become ready within 120 s")
    return bot, runner


async def stop_bot(bot: Reelbot, runner: asyncio.Task[None]) -> None:
    await bot.close()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(runner, 15)


async def bounded(items: list[Any], fn: Callable[[Any], Awaitable[Any]], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with sem:
            return await fn(item)

    return await asyncio.gather(*(one(i) for i in items))


# --- the steady state of N tasks in flight ------------------------------------------------
class Population:
    """Creates the benchmark's tasks: in flight at the start, and arrivals during the run."""

    def __init__(
        self,
        *,
        world: dict[str, Any],
        workload: Workload,
        args: argparse.Namespace,
        threads: list[list[int]],
        image_meta: dict[str, Any],
        rng: random.Random,
    ) -> None:
        self.world = world
        self.workload = workload
        self.args = args
        self.threads = threads
        self.image_meta = image_meta
        self.rng = rng
        self.serial_to_task: dict[int, int] = {}
        self.callback_base = ""  # PUBLIC_BASE_URL when the world calls back
        self.eta: Callable[[TaskRow], str | None] | None = None  # the status's ETA phrase
        self.raw_words: dict[str, dict[str, str | None]] = {}  # pid -> state -> word
        self.next_serial = 0
        self.next_thread = 0

    async def probe_raw_words(self, providers: dict[str, Provider]) -> None:
        """The provider's own state words (queued, running), from one untagged task each.

        The in-flight rows then show what the bot would have shown all along: without
        them, every task's first poll would change its status text and cost a Discord
        edit that a bot in its steady state does not make.
        """
        image = InputImage(url=self.world["media_png"], data=PNG, content_type="image/png")
        for pid, provider in providers.items():
            if pid not in self.workload.providers:
                continue
            request = self._request(pid, provider, "benchmark probe")
            task_id = await provider.submit(
                GenerationRequest(
                    prompt="benchmark probe",
                    model=request.get("model"),
                    image=image if pid == "higgsfield_feed" else None,
                ),
                idempotency_key=f"bench-probe-{pid}",
            )
            words: dict[str, str | None] = {}
            for _ in range(6):  # the default timeline: queued, running, succeeded
                status = await provider.status(task_id)
                words.setdefault(status.state, status.raw_state)
                if status.state in ("succeeded", "failed"):
                    break
            self.raw_words[pid] = words

    def _take_thread(self) -> tuple[int, int]:
        thread_id, status_id = self.threads[self.next_thread]
        self.next_thread += 1
        return thread_id, status_id

    def _request(self, pid: str, provider: Provider, prompt: str) -> dict[str, Any]:
        request: dict[str, Any] = {"prompt": prompt}
        if provider.default_model():
            request["model"] = provider.default_model()
        if pid == "higgsfield_feed":  # image-to-video only
            request["image"] = self.image_meta
        return request

    async def in_flight(
        self, store: SqliteStore, providers: dict[str, Provider], count: int, ref_wall: float
    ) -> None:
        """Submit ``count`` tasks to the providers and record them as already running."""
        floor, ceiling = self.args.poll_interval, self.args.poll_max_interval
        image = InputImage(url=self.world["media_png"], data=PNG, content_type="image/png")
        models = self._warm_models()
        plans = []
        for _ in range(count):
            serial = self.next_serial
            self.next_serial += 1
            pid = self.workload.provider_for(serial)
            total, age = self.workload.in_flight(pid, self.rng)
            plans.append((serial, pid, total, age, self._take_thread(), self.rng.random()))

        async def create(plan: tuple[Any, ...]) -> None:
            serial, pid, total, age, (thread_id, status_id), jitter = plan
            provider = providers[pid]
            prompt = f"benchmark clip #b{serial}/{total:.3f}/{age:.3f}"
            request = self._request(pid, provider, prompt)
            generation = GenerationRequest(
                prompt=prompt,
                model=request.get("model"),
                image=image if pid == "higgsfield_feed" else None,
            )
            # As the poller submits (with a callback URL where there are callbacks).
            token = None
            if self.callback_base and provider.capabilities.callbacks:
                token = secrets.token_urlsafe(CALLBACK_TOKEN_BYTES)
                url = callback_url(self.callback_base, pid, token)
                generation = dataclasses.replace(generation, callback_url=url)
            call = await provider.prepare_submit(generation)
            if token is not None and url not in call.body:
                token = None
            provider_task_id = await provider.send_submit(call, idempotency_key=f"bench-{serial}")
            started = ref_wall - age
            row = await store.create_task(
                NewTask(
                    provider=pid,
                    guild_id=self.world["guild_id"],
                    channel_id=self.world["channel_id"],
                    requester_id=REQUESTER,
                    request=request,
                    poll_interval=floor,
                    thread_id=thread_id,
                ),
                now=started,
                policy=NO_QUOTA,
            )
            queued = age < 0.2 * total
            progress = None
            if pid == "foxapi":  # the only protocol that reports progress (0 while queued)
                progress = 25 if age < 0.4667 * total else 50 if age < 0.7333 * total else 75
                progress = 0 if queued else progress
            # Where the policy under test would have put the next poll of a task this
            # old; a uniform phase within it, as if the bot had been running all along.
            extra = {"model": models[pid]} if models else {}
            interval = poller_module.next_poll_interval(
                age=age,
                floor=floor,
                ceiling=ceiling,
                previous_progress=progress,
                progress=progress,
                since_last_poll=floor,
                **extra,
            )
            next_at = ref_wall + jitter * interval
            if token is not None:
                # The safety net was set when the task was submitted, ``age`` ago: the
                # first net poll, or (if that was due already) a later one.
                net = callback_net(0.0, floor, ceiling, models.get(pid))
                while net < age:
                    net += callback_net(net, floor, ceiling, models.get(pid))
                next_at, interval = ref_wall + (net - age), net - age
            state = "queued" if queued else "running"
            fields: dict[str, Any] = {
                "state": state,
                "raw_state": self.raw_words.get(pid, {}).get(state),
                "progress": progress,
                "provider_task_id": provider_task_id,
                "submitted_at": started,
                "poll_interval": interval,
                "status_message_id": status_id,
                "status_edited_at": ref_wall - 60,
                "next_action_at": next_at,
            }
            if token is not None:
                fields["callback_token"] = token
            shown = TaskRow(**{**_row_dict(row), **fields})
            fields["status_text"] = _status_text(shown)
            await store.update_task(row.id, **fields)
            self.serial_to_task[serial] = row.id

        await bounded(plans, create, SETUP_CONCURRENCY)

    def _warm_models(self) -> dict[str, Any]:
        """What a poller that learns completion times would know after running a while.

        Only when the poller under test learns them (it then holds ``CompletionModel``s):
        the tasks' first polls are placed as that poller would have placed them.
        """
        model_class = getattr(poller_module, "CompletionModel", None)
        if model_class is None:
            return {}
        models = {}
        for pid in self.workload.providers:
            model = model_class()
            for _ in range(model.capacity):
                model.observe(self.workload.duration(pid, self.rng))
            models[pid] = model
        return models

    async def arrive(self, bot: Reelbot) -> None:
        """A new /animate: the store rows and poller wake-up of ``Generations``."""
        serial = self.next_serial
        self.next_serial += 1
        pid = self.workload.provider_for(serial)
        total = self.workload.duration(pid, self.rng)
        thread_id, status_id = self._take_thread()
        prompt = f"benchmark clip #b{serial}/{total:.3f}/0"
        row = await bot.store.create_task(
            NewTask(
                provider=pid,
                guild_id=self.world["guild_id"],
                channel_id=self.world["channel_id"],
                requester_id=REQUESTER,
                request=self._request(pid, bot.providers[pid], prompt),
                poll_interval=self.args.poll_interval,
                thread_id=thread_id,
            ),
            now=time.time(),
            policy=NO_QUOTA,
        )
        self.serial_to_task[serial] = row.id
        now = time.time()
        await bot.store.update_task(
            row.id,
            status_message_id=status_id,
            status_text=_status_text(row),
            status_edited_at=now,
            next_action_at=now,
        )
        bot.poller.wake()

    async def arrivals(self, bot: Reelbot, rate: float) -> None:
        """New tasks at ``rate`` per second (what keeps N in flight about constant)."""
        pending: set[asyncio.Task[None]] = set()
        owed = 0.0
        last = time.monotonic()
        try:
            while self.next_thread < len(self.threads):
                await asyncio.sleep(0.1)
                now = time.monotonic()
                owed += (now - last) * rate
                last = now
                while owed >= 1 and self.next_thread < len(self.threads):
                    owed -= 1
                    job = asyncio.create_task(self.arrive(bot))
                    pending.add(job)
                    job.add_done_callback(pending.discard)
        finally:
            for job in pending:
                job.cancel()


async def add_history(
    store: SqliteStore,
    world: dict[str, Any],
    workload: Workload,
    rng: random.Random,
    now: float,
    models: dict[str, str | None],
) -> None:
    """Delivered tasks of the past hour, as a bot that has been running would have.

    Rows only (no provider or Discord side): they give a poller that learns from the
    store's history something to start from, and the store its realistic size. Of the
    model the benchmark's tasks use (``models``, per provider): without it the ETA per
    model came only once enough of them finished during the round, and then every
    status message in flight was edited to show it (13 of the 14.4 edits per delivery
    at N = 10,000).
    """
    rows = []
    for pid in workload.providers:
        request: dict[str, Any] = {"prompt": "an earlier clip"}
        if models.get(pid):
            request["model"] = models[pid]
        for i in range(HISTORY_PER_PROVIDER):
            took = workload.duration(pid, rng)
            finished = now - 3600 + 3600 * i / HISTORY_PER_PROVIDER
            rows.append(
                (
                    pid,
                    world["guild_id"],
                    world["channel_id"],
                    REQUESTER,
                    json.dumps(request),
                    1.0,
                    finished - took,
                    finished,
                    finished - took,
                    finished,
                    "2024-01-01",
                )
            )
    await store.db.execute("BEGIN")
    await store.db.executemany(
        "INSERT INTO tasks (provider, guild_id, channel_id, requester_id, request_json, state, "
        "poll_interval, created_at, updated_at, submitted_at, finished_at, quota_day, "
        "delivered, progress) VALUES (?, ?, ?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, 1, 100)",
        rows,
    )
    await store.db.execute("COMMIT")


def _row_dict(row: TaskRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}


def shift_times(
    db_path: Path, delta: float, eta: Callable[[TaskRow], str | None] | None = None
) -> None:
    """Move the set-up's timestamps by ``delta`` seconds (set-up time is not task age)."""
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        db.execute(
            "UPDATE tasks SET created_at = created_at + ?, submitted_at = submitted_at + ?, "
            "next_action_at = next_action_at + ?, status_edited_at = status_edited_at + ?, "
            "updated_at = updated_at + ?",
            (delta,) * 5,
        )

        # The status text shows the start time: render it again, as the bot would have
        # (otherwise every task's first poll costs a Discord edit a steady state does not).
        def render(task: TaskRow) -> str:
            return _status_text(task, eta=eta(task) if eta else None)

        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT * FROM tasks WHERE status_text IS NOT NULL AND delivered = 0"
        ).fetchall()
        db.executemany(
            "UPDATE tasks SET status_text = ? WHERE id = ?",
            [(render(TaskRow.from_mapping(r)), r["id"]) for r in rows],
        )


async def prepare(
    world: dict[str, Any], args: argparse.Namespace, data_dir: Path, session: aiohttp.ClientSession
) -> tuple[Population, dict[str, str], float]:
    """Threads, the store with N tasks in flight, and their provider tasks; bot not started."""
    t0 = time.monotonic()
    workload = Workload(
        median=args.median, sigma=args.sigma, providers=tuple(args.providers.split(","))
    )
    rate = args.tasks / workload.mean
    spare = int(rate * (args.duration + 30) * 1.2) + 200
    threads = (await control(session, world, "POST", "/threads", count=args.tasks + spare))["items"]
    env = bot_env(world, data_dir, args)
    config = load_config(env)
    inputs = InputStore(data_dir / "inputs")
    image_meta = await inputs.save(PNG, "image/png", url=world["media_png"])
    population = Population(
        world=world,
        workload=workload,
        args=args,
        threads=threads,
        image_meta=image_meta,
        rng=random.Random(args.seed),
    )
    population.callback_base = config.public_base_url
    store = SqliteStore(str(data_dir / "reelbot.db"))
    await store.open()
    ref_wall = time.time()
    try:
        providers = build_providers(config, session)
        defaults = {pid: p.default_model() for pid, p in providers.items()}
        await add_history(store, world, workload, population.rng, ref_wall, defaults)
        await population.probe_raw_words(providers)
        await population.in_flight(store, providers, args.tasks, ref_wall)
        population.eta = await eta_as_the_bot_shows(store, providers)
    finally:
        await store.close()
    log.warning("set-up of %d tasks took %.1f s", args.tasks, time.monotonic() - t0)
    return population, env, ref_wall


def _status_text(task: TaskRow, eta: str | None = None) -> str:
    """A video's status text as the bot renders it (the set-up's tasks are all videos)."""
    return messages.status_text(task, title=messages.video_title(VideoRequest.of(task)), eta=eta)


# --- rounds -------------------------------------------------------------------------------
async def poller_round(args: argparse.Namespace, world: dict[str, Any]) -> dict[str, Any]:
    if args.policy == "naive":
        use_naive_policy()
    store_meter, provider_meter, poller_meter = StoreMeter(), ProviderMeter(), PollerMeter()
    store_meter.install()
    provider_meter.install()
    poller_meter.install()
    with tempfile.TemporaryDirectory(prefix="reelbot-bench-") as tmp:
        data_dir = Path(tmp)
        async with aiohttp.ClientSession() as session:
            t_setup = time.monotonic()
            population, env, ref_wall = await prepare(world, args, data_dir, session)
            # Set-up took a while; the tasks' ages are as of now, when their clocks start.
            shift_times(data_dir / "reelbot.db", time.time() - ref_wall, population.eta)
            await control(session, world, "POST", "/epoch", at=time.monotonic())
            setup_s = time.monotonic() - t_setup
            lag = LagMonitor()
            lag.start()
            bot, runner = await start_bot(env)
            t_ready = time.monotonic()
            rate = args.tasks / population.workload.mean
            arrivals = asyncio.create_task(population.arrivals(bot, rate))
            try:
                await asyncio.sleep(max(0.0, t_ready + args.warmup - time.monotonic()))
                t_w = time.monotonic()
                c0 = await control(session, world, "GET", "/counters")
                ops0, ticks0 = store_meter.total(), bot.poller.ticks
                calls0, cpu0 = dict(provider_meter.calls), time.process_time()
                provider_meter.reset_peaks()
                spy = start_pyspy(args.pyspy, args.duration - args.warmup)
                await asyncio.sleep(max(0.0, t_ready + args.duration - time.monotonic()))
                t_e = time.monotonic()
                c1 = await control(session, world, "GET", "/counters")
                ops1, ticks1 = store_meter.total(), bot.poller.ticks
                calls1, cpu1 = dict(provider_meter.calls), time.process_time()
                results = await control(session, world, "GET", "/results")
                if spy is not None:
                    spy.wait(timeout=60)
                in_flight = await bot.store.count_unfinished()
            finally:
                arrivals.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await arrivals
                await lag.stop()
                await stop_bot(bot, runner)
    window = t_e - t_w
    complete_at = {int(s): at for s, at in results["complete_at"].items()}
    finals = results["finals"]
    completed = [s for s, at in complete_at.items() if t_w <= at < t_e]
    delays: list[float] = []
    delays_of: dict[str, list[float]] = {}
    undelivered = 0
    settle = min(SETTLE, 0.3 * window)
    for serial in completed:
        at = complete_at[serial]
        if at >= t_e - settle:
            continue
        task_id = population.serial_to_task.get(serial)
        final = finals.get(str(task_id)) if task_id is not None else None
        if final is None:
            undelivered += 1
            delays.append(t_e - at)  # a lower bound: still not delivered at the end
        else:
            delays.append(final["at"] - at)
        delays_of.setdefault(population.workload.provider_for(serial), []).append(delays[-1])
    by_provider: dict[str, Any] = {}
    for pid in population.workload.providers:
        done_here = sum(1 for s in completed if population.workload.provider_for(s) == pid)
        pid_polls = c1["providers"][pid]["polls"] - c0["providers"][pid]["polls"]
        by_provider[pid] = {
            "completed": done_here,
            "status_polls_per_task": round(pid_polls / max(1, done_here), 2),
            "delivery_delay_s": _pick(summary(delays_of.get(pid, [])), "p50", "p95", "max"),
        }
    polls = sum(p["polls"] for p in c1["providers"].values()) - sum(
        p["polls"] for p in c0["providers"].values()
    )
    submits = sum(p["tasks"] for p in c1["providers"].values()) - sum(
        p["tasks"] for p in c0["providers"].values()
    )
    api_calls = sum(calls1.values()) - sum(calls0.values())
    # Discord requests in the window per final message posted in it (every in-flight
    # task's status edits included: that is what the 50 requests/s global limit sees).
    finals_in_window = sum(1 for f in finals.values() if t_w <= f["at"] < t_e)
    discord = {k: v - c0["discord"].get(k, 0) for k, v in c1["discord"].items()}
    per_delivery = {k: round(v / max(1, finals_in_window), 2) for k, v in discord.items()}
    n_done = max(1, len(completed))
    lags = lag.between(t_w, t_e)
    return {
        "round": "poller",
        "policy": args.policy,
        "tasks": args.tasks,
        "in_flight_at_end": in_flight,
        "setup_s": round(setup_s, 1),
        "window_s": round(window, 1),
        "completed_in_window": len(completed),
        "delivered_in_window": len(delays) - undelivered,
        "undelivered": undelivered,
        "provider_requests_per_task": round((polls + submits) / n_done, 2),
        "status_polls_per_task": round(polls / n_done, 2),
        "bot_provider_calls_per_s": round(api_calls / window, 1),
        "delivery_delay_s": _pick(summary(delays), "count", "p50", "p95", "max"),
        "event_loop_lag_ms": _pick(summary(lags, scale=1000, digits=1), "p50", "p99", "max"),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "store_ops_per_s": round((ops1 - ops0) / window, 1),
        "poller_ticks_per_s": round((ticks1 - ticks0) / window, 1),
        "poll_lateness_s": _pick(
            summary(poller_meter.lateness(t_w, t_e, delivery=False)), "p50", "p95", "max"
        ),
        "delivery_lateness_s": _pick(
            summary(poller_meter.lateness(t_w, t_e, delivery=True)), "p50", "p95", "max"
        ),
        "bot_cpu_percent": round(100 * (cpu1 - cpu0) / window, 1),
        "bot_cpu_ms_per_provider_call": round(1000 * (cpu1 - cpu0) / max(1, api_calls), 3),
        "discord_requests_per_delivery": per_delivery,
        "discord_requests_per_s": round(discord["total"] / window, 1),
        "world_cpu_percent": round(100 * (c1["cpu_s"] - c0["cpu_s"]) / window, 1),
        "provider_max_in_flight": dict(provider_meter.max_in_flight),
        "provider_peak_requests_per_s": provider_meter.peak_rate(t_w, t_e),
        "by_provider": by_provider,
        "workload": population.workload.describe(),
    }


def _pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys}


async def ack_round(args: argparse.Namespace, world: dict[str, Any]) -> dict[str, Any]:
    """/animate acknowledgement latency: bursts of concurrent commands on a busy bot."""
    with tempfile.TemporaryDirectory(prefix="reelbot-bench-") as tmp:
        data_dir = Path(tmp)
        async with aiohttp.ClientSession() as session:
            background = args.tasks
            if background:
                _, env, ref_wall = await prepare(world, args, data_dir, session)
                shift_times(data_dir / "reelbot.db", time.time() - ref_wall)
            else:
                env = bot_env(world, data_dir, args)
            await control(session, world, "POST", "/epoch", at=time.monotonic())
            lag = LagMonitor()
            lag.start()
            bot, runner = await start_bot(env)
            try:
                await asyncio.sleep(args.warmup)
                latencies: list[float] = []
                unanswered = 0
                t0 = time.monotonic()
                for _ in range(args.bursts):
                    answer = await control(
                        session, world, "POST", "/ack", count=args.concurrency, timeout=10
                    )
                    latencies += answer["latencies"]
                    unanswered += answer["unanswered"]
                    await asyncio.sleep(1.0)
                t1 = time.monotonic()
            finally:
                await lag.stop()
                await stop_bot(bot, runner)
    stats = summary(latencies, scale=1000, digits=1)
    return {
        "round": "ack",
        "background_tasks": background,
        "concurrency": args.concurrency,
        "bursts": args.bursts,
        "ack_latency_ms": _pick(stats, "count", "p50", "p99", "max"),
        "unanswered": unanswered,
        "event_loop_lag_ms": _pick(
            summary(lag.between(t0, t1), scale=1000, digits=1), "p50", "p99", "max"
        ),
    }


async def download_round(args: argparse.Namespace, world: dict[str, Any]) -> dict[str, Any]:
    """RSS growth while delivering big videos: one above the upload limit, one below.

    ``--download-mib`` (200) is above every guild's upload limit: the bot streams it
    to disk, finds it too big and posts a link. A second video just under the limit
    of a boosted guild (90 MiB at tier 3) is downloaded *and* uploaded to Discord.
    """
    upload_mib = max(1, min(90, args.download_mib // 2))
    with tempfile.TemporaryDirectory(prefix="reelbot-bench-") as tmp:
        data_dir = Path(tmp)
        env = bot_env(world, data_dir, args)
        async with aiohttp.ClientSession() as session:
            await control(session, world, "POST", "/epoch", at=time.monotonic())
            if upload_mib > 10:  # tier 0 allows 10 MiB; tier 3, 100 MiB
                await control(session, world, "POST", "/tier", tier=3)
            threads = (await control(session, world, "POST", "/threads", count=2))["items"]
            bot, runner = await start_bot(env)
            try:
                await asyncio.sleep(1.0)  # let start-up settle: the baseline is the idle bot
                large = await _deliver_one(bot, world, args, threads[0], args.download_mib, 1)
                small = await _deliver_one(bot, world, args, threads[1], upload_mib, 2)
            finally:
                await stop_bot(bot, runner)
            results = await control(session, world, "GET", "/results")
    for figures in (large, small):
        final = results["finals"].get(str(figures.pop("task_id")))
        if final is None:
            figures["delivered_as"] = "nothing"
        elif final["large_link"]:
            figures["delivered_as"] = "link (above the upload limit: downloaded, then dropped)"
        else:
            figures["delivered_as"] = f"attachments ({final['bytes'] / 2**20:.1f} MiB)"
    return {
        "round": "download",
        "video_mib": args.download_mib,
        "rss_delta_mib": large["rss_delta_mib"],
        "above_upload_limit": large,
        "uploaded": small,
    }


async def _deliver_one(
    bot: Reelbot,
    world: dict[str, Any],
    args: argparse.Namespace,
    thread: list[int],
    mib: int,
    serial: int,
) -> dict[str, Any]:
    """Create a task whose video is ``mib`` MiB, wait for its delivery, watch RSS."""
    prompt = f"large clip #b{serial}/1.0/0/L{mib * 2**20}"
    row = await bot.store.create_task(
        NewTask(
            provider="hiapi",
            guild_id=world["guild_id"],
            channel_id=world["channel_id"],
            requester_id=REQUESTER,
            request={"prompt": prompt, "model": bot.providers["hiapi"].default_model()},
            poll_interval=args.poll_interval,
            thread_id=thread[0],
        ),
        now=time.time(),
        policy=NO_QUOTA,
    )
    await bot.store.update_task(row.id, status_message_id=thread[1], next_action_at=time.time())
    baseline = rss_mib()
    exact = reset_peak_rss()  # VmHWM from here on is this delivery's peak
    peak = baseline
    bot.poller.wake()
    t0 = time.monotonic()
    delivered = False
    while time.monotonic() - t0 < 120:
        peak = max(peak, rss_mib())
        task = await bot.store.get_task(row.id)
        if task is not None and task.delivered:
            delivered = True
            break
        await asyncio.sleep(0.01)
    took = time.monotonic() - t0
    if exact:
        peak = max(peak, peak_rss_mib())
    return {
        "task_id": row.id,
        "video_mib": mib,
        "delivered": delivered,
        "seconds": round(took, 2),
        "rss_baseline_mib": round(baseline, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_delta_mib": round(peak - baseline, 1),
        "peak_exact": exact,
    }


async def _plan(store: SqliteStore, statements: list[str], needle: str) -> str:
    """EXPLAIN QUERY PLAN of the first traced statement that reads ``tasks``."""
    for sql in statements:
        if "tasks" in sql and sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
            async with store.db.execute("EXPLAIN QUERY PLAN " + sql) as cur:
                return " / ".join(str(r[3]) for r in await cur.fetchall())
    return "(no statement traced)"


class _StubProvider:
    """Answers "still running" at once: the tick round times the scheduler alone."""

    def __init__(self, pid: str) -> None:
        self.id = pid

    async def status(self, provider_task_id: str) -> TaskStatus:
        return TaskStatus(state="running", raw_state="running")


async def tick_round(args: argparse.Namespace) -> dict[str, Any]:
    """Cost of one poller tick (claims in every lane) with ``--due`` tasks due, at two sizes."""
    sizes = (args.tasks // 10, args.tasks) if args.tasks >= 1000 else (100, args.tasks)
    out: dict[str, Any] = {"round": "tick", "due": args.due, "sizes": {}}
    for n in sizes:
        out["sizes"][str(n)] = await _tick_at(n, args)
    small, large = (out["sizes"][str(n)] for n in sizes)
    out["tick_ratio_large_vs_small"] = round(large["tick_ms"]["p50"] / small["tick_ms"]["p50"], 2)
    out["next_due_ratio_large_vs_small"] = round(
        large["next_due_ms"]["p50"] / small["next_due_ms"]["p50"], 2
    )
    return out


async def _tick_at(n: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reelbot-bench-") as tmp:
        store = SqliteStore(str(Path(tmp) / "reelbot.db"))
        await store.open()
        try:
            return await _measure_ticks(store, n, args, Path(tmp))
        finally:
            # Always: aiosqlite's thread would otherwise keep the process alive.
            await store.close()


async def _measure_ticks(
    store: SqliteStore, n: int, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    now = time.time()
    # Bulk rows straight into the table: only the shape matters here, and 10,000
    # create_task transactions would time the set-up rather than the tick.
    rows = [
        (
            PROVIDER_IDS[i % len(PROVIDER_IDS)],
            f"stub-{i}",
            1,
            2,
            3 + i,
            REQUESTER,
            json.dumps({"prompt": f"tick {i}"}),
            "running",
            1.0,
            now + 600 + i % 3000,
            now - 60,
            now - 60,
            now - 60,
            "2024-01-01",
        )
        for i in range(n)
    ]
    await store.db.executemany(
        "INSERT INTO tasks (provider, provider_task_id, guild_id, channel_id, thread_id, "
        "requester_id, request_json, state, poll_interval, next_action_at, created_at, "
        "updated_at, submitted_at, quota_day) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    async with store.db.execute("ANALYZE") as _:
        pass

    async def nothing(task: TaskRow) -> dict[str, Any]:
        return {"next_action_at": None}

    async def no_status(task: TaskRow) -> None:
        return None

    providers: dict[str, Any] = {pid: _StubProvider(pid) for pid in PROVIDER_IDS}
    poller = poller_module.Poller(
        store=store,
        providers=providers,
        settings=poller_module.PollerSettings(
            poll_interval=1.0, poll_max_interval=60.0, task_timeout=3600.0
        ),
        inputs=InputStore(tmp / "inputs"),
        deliver=nothing,
        on_status=no_status,
        kinds={"video": VideoKind(InputStore(tmp / "inputs"))},
    )
    rng = random.Random(args.seed)
    ticks, next_due = [], []
    claimed: list[int] = []
    spawned = 0
    spawn = poller._spawn

    def counting_spawn(lane: Any, task: TaskRow) -> None:
        nonlocal spawned
        spawned += 1
        spawn(lane, task)

    poller._spawn = counting_spawn  # type: ignore[method-assign]
    statements: list[str] = []
    for _ in range(args.tick_reps):
        ids = rng.sample(range(1, n + 1), args.due)
        marks = ",".join("?" * len(ids))
        await store.db.execute(
            f"UPDATE tasks SET next_action_at = ?, lease_owner = NULL, lease_until = NULL "
            f"WHERE id IN ({marks})",
            (time.time() - 1, *ids),
        )
        before = spawned
        t0 = time.perf_counter()
        await poller._tick()
        t1 = time.perf_counter()
        await store.next_due_at()
        t2 = time.perf_counter()
        claimed.append(spawned - before)
        if poller._running:
            await asyncio.wait(set(poller._running))
        ticks.append(t1 - t0)
        next_due.append(t2 - t1)
    # The statements the product ran for one tick and one next_due_at, as SQLite
    # saw them (parameters bound), and how SQLite executes each.
    # sqlite3 objects belong to aiosqlite's thread: set the hook from there.
    conn = store.db._conn
    await store.db._execute(conn.set_trace_callback, statements.append)
    await poller._tick()
    marker = len(statements)
    await store.next_due_at()
    await store.db._execute(conn.set_trace_callback, None)
    if poller._running:
        await asyncio.wait(set(poller._running))
    plans = {
        "claim_due": await _plan(store, statements[:marker], "tasks.provider"),
        "next_due_at": await _plan(store, statements[marker:], "FROM tasks"),
    }
    return {
        "tasks": n,
        "claimed_per_tick": statistics.median(claimed),
        "tick_ms": _pick(summary(ticks, scale=1000), "p50", "p95", "max"),
        "next_due_ms": _pick(summary(next_due, scale=1000), "p50", "p95", "max"),
        "query_plans": plans,
    }


# --- entry point ------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="one benchmark round (run by benchmarks/poller.py)")
    p.add_argument("round", choices=("poller", "ack", "download", "tick"))
    p.add_argument("--world", default="{}", help="the world process's JSON line")
    p.add_argument("--policy", choices=("adaptive", "naive"), default="adaptive")
    p.add_argument("--callbacks", action="store_true", help="the world calls back")
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--providers", default=",".join(PROVIDER_IDS))
    p.add_argument("--duration", type=float, default=40.0)
    p.add_argument("--warmup", type=float, default=12.0)
    p.add_argument("--median", type=float, default=900.0)
    p.add_argument("--sigma", type=float, default=0.3)
    p.add_argument("--poll-interval", type=float, default=1.0)
    p.add_argument("--poll-max-interval", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--bursts", type=int, default=3)
    p.add_argument("--download-mib", type=int, default=200)
    p.add_argument("--due", type=int, default=40)
    p.add_argument("--tick-reps", type=int, default=40)
    p.add_argument("--profile", default="", help="write a cProfile dump of the round here")
    p.add_argument(
        "--pyspy", default="", help="poller: py-spy samples of the measured window (raw) here"
    )
    return p


async def run(args: argparse.Namespace) -> dict[str, Any]:
    world = json.loads(args.world)
    if args.round == "poller":
        return await poller_round(args, world)
    if args.round == "ack":
        return await ack_round(args, world)
    if args.round == "download":
        return await download_round(args, world)
    return await tick_round(args)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    logging.getLogger("discord").setLevel(logging.ERROR)  # voice-support notices
    args = parser().parse_args()
    if args.profile:  # where does the bot process spend its time? (pstats file)
        import cProfile

        with cProfile.Profile() as profile:
            result = asyncio.run(run(args))
        profile.dump_stats(args.profile)
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
