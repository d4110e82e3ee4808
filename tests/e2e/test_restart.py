"""Restarts: kill the bot at every point of a task's life, start it again, and check that
every task ends delivered exactly once or failed with a message — never dropped.

In-process kills (``World.kill_bot``) stop the bot at a precise point, held there by a
gate in a double (submit, poll, download), a Discord fault, or a hook on the store;
nothing here sleeps to hide a race. The subprocess tests run the real ``python bot.py``
against the doubles and send it SIGKILL / SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doubles.harness import API_KEY, World, build_world, input_png
from doubles.providers import Step
from tests.helpers import (
    Gate,
    MediaHost,
    all_tasks,
    assert_exactly_once,
    discord_answered,
    eventually,
    fast_forward,
    final_message,
    finals_anywhere,
    finish,
    gate_polls,
    gate_submits,
    hold,
    polled,
    started,
    task_state,
    video_lands,
)

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]


async def restart(world: World) -> None:
    """kill -9, then start again on the same store and data directory."""
    await world.kill_bot()
    await world.start_bot()


# --- before the provider hears of it ------------------------------------------------------
async def test_killed_before_the_request_was_announced_it_still_runs(world: World) -> None:
    """Fault: Discord rate-limits the thread's anchor post for a minute and the bot dies
    meanwhile. The intent is in the store, but no thread, status message or submit yet."""
    anchor = rf"^/channels/{world.channel_id}/messages$"
    world.discord.fail_next("POST", anchor, 429, retry_after=60)
    await world.animate("alice", prompt="announce me later", provider="hiapi")
    await discord_answered(world, "POST", anchor, 429)
    [task] = await all_tasks(world)
    assert task.state == "submitting" and not world.providers["hiapi"].submissions

    await restart(world)
    await fast_forward(world, task.id)  # the grace period for an unannounced request
    final = await video_lands(world, world.channel_id, task.id)
    assert final.mention_ids == [world.users["alice"]]
    await assert_exactly_once(world, expect=1)


@pytest.mark.parametrize("provider_got_it", [False, True], ids=["request-lost", "answer-lost"])
@pytest.mark.parametrize("pid", ["hiapi", "foxapi"])
async def test_killed_while_submitting(world: World, pid: str, provider_got_it: bool) -> None:
    """Fault: the bot dies with the submit request in the air. Either the provider never
    processed it, or it created the task and only the answer was lost (died after submit,
    before the store write). hiapi takes an Idempotency-Key, so the bot submits again and
    gets the same task; foxapi does not, so the bot fails the task with a message rather
    than risk paying twice."""
    double = world.providers[pid]
    gate = gate_submits(double)
    ix = await world.animate("alice", prompt="die while submitting", provider=pid)
    thread_id, task_id = await started(world, ix)
    await gate.wait_reached()
    await world.kill_bot()
    if provider_got_it:
        gate.release()
        await eventually(lambda: double.tasks, description="the provider to create the task")
    else:
        gate.fail_held()

    await world.start_bot()
    final = await final_message(world, thread_id, task_id)
    if pid == "hiapi":
        assert any(a.filename.endswith(".mp4") for a in final.attachments)
        assert len(double.tasks) == 1, "an idempotent resubmit must not create a second task"
        # One key across the restart: stored with the task, random beyond its row id.
        [key] = {s["headers"].get("Idempotency-Key") for s in double.submissions}
        assert key.startswith(f"reelbot-{task_id}-") and len(key) > len(f"reelbot-{task_id}-")
    else:
        assert "could not confirm" in final.content and "🔁" in final.content
        assert "quota for it was given back" in final.content
        assert len(double.tasks) == (1 if provider_got_it else 0)
    await assert_exactly_once(world, expect=1)


# --- while the provider works ---------------------------------------------------------------
@pytest.mark.parametrize("point", ["between-polls", "poll-in-flight"])
async def test_killed_while_running(world: World, point: str) -> None:
    """Fault: the bot dies while the provider is still generating (between two polls, or
    with a status request in the air). The restarted bot polls the same provider task."""
    double = world.providers["foxapi"]
    hold(double, progress=30)
    ix = await world.animate("alice", prompt="die while running", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    await polled(double)
    await task_state(world, task_id, "running")
    gate = None
    if point == "poll-in-flight":
        gate = gate_polls(double)
        await gate.wait_reached()
    await world.kill_bot()
    finish(double)
    if gate is not None:
        gate.release()

    await world.start_bot()
    await video_lands(world, thread_id, task_id)
    assert len(double.submissions) == 1
    await assert_exactly_once(world, expect=1)


# --- while delivering -----------------------------------------------------------------------
@pytest.mark.parametrize("kills", [1, 2])
async def test_killed_during_the_download(world: World, kills: int) -> None:
    """Fault: the bot dies half-way through downloading the finished video (and, with
    kills=2, again during the retried download after the restart)."""
    gate = Gate()
    host = await MediaHost(gate=gate).start()
    try:
        double = world.providers["foxapi"]
        host.serve_outputs_of(double)
        ix = await world.animate("alice", prompt="die while downloading", provider="foxapi")
        thread_id, task_id = await started(world, ix)
        for n in range(1, kills + 1):
            await gate.wait_reached(calls=n)
            await restart(world)
        gate.release()
        final = await video_lands(world, thread_id, task_id)
        assert final.attachments[0].size > 0
        await assert_exactly_once(world, expect=1)
    finally:
        await host.close()


async def test_killed_during_the_upload(world: World) -> None:
    """Fault: Discord answers the video upload with 429 (retry in 60 s) and the bot dies
    while waiting to retry it."""
    double = world.providers["hiapi"]
    hold(double)
    ix = await world.animate("alice", prompt="die while uploading", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    upload = rf"^/channels/{thread_id}/messages$"
    world.discord.fail_next("POST", upload, 429, retry_after=60)
    await polled(double)
    finish(double)
    await discord_answered(world, "POST", upload, 429)
    await restart(world)
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


@pytest.mark.parametrize("outcome", ["video", "failure"])
async def test_killed_after_discord_accepted_the_final_message(world: World, outcome: str) -> None:
    """Fault: the final message reached Discord, then the bot died before recording that
    it was delivered. The restarted bot finds the earlier copy and does not post again."""
    double = world.providers["hiapi"]
    if outcome == "failure":
        double.script_next([Step.running(10), Step.fail(code="E_MODEL", message="model crashed")])
    assert world.bot is not None
    gate = Gate()
    original = world.bot.store.release  # the poller records the delivery in its outcome

    async def die_before_recording(*args, **kwargs):
        if kwargs.get("delivered"):
            await gate()
        return await original(*args, **kwargs)

    world.bot.store.release = die_before_recording  # type: ignore[method-assign]
    ix = await world.animate("alice", prompt="die after posting", provider="hiapi")
    await started(world, ix)
    await gate.wait_reached()
    [posted] = finals_anywhere(world, (await all_tasks(world))[0])
    await restart(world)

    [task] = await assert_exactly_once(world, expect=1)
    assert task.result_message_id == posted.id
    if outcome == "failure":
        assert "`E_MODEL`" in posted.content
    else:
        assert posted.attachments
    await world.discord.wait_for(
        lambda: world.discord.bot_user_id in posted.reactions.get("🔁", set()),
        description="the 🔁 affordance on the recovered final message",
    )


# --- many tasks, several crashes --------------------------------------------------------------
async def test_repeated_crashes_with_many_tasks_in_flight(world: World) -> None:
    """Fault: three kill -9s while ten tasks across all five providers are at whatever
    point they happen to be (submitting, polling, downloading, uploading). Every task
    ends exactly once, and no provider is ever sent the same task twice."""
    for double in world.providers.values():
        double.default_timeline = [
            Step.queued(),
            Step.running(30),
            Step.running(60),
            Step.running(90),
            Step.succeed(),
        ]
    for n in range(10):
        pid = list(world.providers)[n % 5]
        image = input_png() if pid == "higgsfield_feed" else None
        ix = await world.animate(
            "alice" if n < 5 else "bob", prompt=f"crash test {n}", provider=pid, image=image
        )
        await started(world, ix)
        if n in (3, 7):
            await restart(world)

    async def delivered_count() -> int:
        return sum(t.delivered for t in await all_tasks(world))

    await eventually(lambda: delivered_count(), description="a first delivery")
    await restart(world)
    tasks = await assert_exactly_once(world, expect=10)
    for task in tasks:  # a kill mid-submit fails a non-idempotent provider's task, with a message
        assert task.state == "succeeded" or (
            task.error_code == "submit_unconfirmed" and task.provider != "hiapi"
        ), (task.id, task.provider, task.state, task.error_code)
    for double in world.providers.values():
        assert len(double.tasks) <= 2, "a task was submitted twice"


# --- the real process: SIGKILL and SIGTERM ----------------------------------------------------
class BotProcess:
    """``python bot.py`` with the world's environment (and nothing from a stray .env)."""

    def __init__(self, world: World, log_path: Path) -> None:
        self.world = world
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SYSTEMROOT") if k in os.environ}
        blank = {
            f"{pid.upper()}_{suffix}": ""
            for pid in ("higgsfield", "higgsfield_feed", "hiapi", "foxapi", "gptge")
            for suffix in ("API_KEY", "BASE_URL")
        }
        return {**base, **blank, **self.world.env, "PYTHONUNBUFFERED": "1"}

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [sys.executable, str(REPO / "bot.py")],
            cwd=self.world.data_dir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        # Ready when it holds a gateway session and has synced /animate.
        await self.world.discord.wait_for_gateway(self.world.guild_id, timeout=30)
        await self.world.discord.wait_for(
            lambda: self.world.discord.commands(self.world.guild_id),
            timeout=30,
            description="the subprocess to sync its commands",
        )

    async def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        proc = self.proc
        code = await eventually(
            lambda: proc.poll() is not None, timeout=timeout, description="the bot process to exit"
        )
        assert code
        return proc.returncode

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
async def offline_world(tmp_path: Path):
    """The doubles only: the bot runs as a subprocess (or is started by the test)."""
    world = await build_world(
        tmp_path,
        provider_ids=("hiapi", "foxapi"),
        start=False,
        env={"LOG_LEVEL": "DEBUG"},
    )
    try:
        yield world
    finally:
        await world.close()


def integrity(db_path: str) -> str:
    with sqlite3.connect(db_path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


async def test_sigkill_mid_task_then_restart_delivers_exactly_once(
    offline_world: World, tmp_path: Path
) -> None:
    """Fault: SIGKILL of the real process while the provider is generating."""
    world = offline_world
    double = world.providers["foxapi"]
    hold(double)
    bot = BotProcess(world, tmp_path / "bot.log")
    try:
        await bot.start()
        ix = await world.animate("alice", prompt="a real crash", provider="foxapi")
        thread_id, task_id = await started(world, ix)
        await polled(double)
        bot.signal(signal.SIGKILL)
        assert await bot.wait() == -signal.SIGKILL
        assert integrity(world.config.sqlite_path) == "ok"

        finish(double)
        await bot.start()
        await video_lands(world, thread_id, task_id)
        bot.signal(signal.SIGTERM)
        assert await bot.wait() == 0
    finally:
        bot.ensure_dead()
    logs = bot.logs()
    assert "1 unfinished task(s) to resume" in logs
    for secret in (world.env["DISCORD_TOKEN"], API_KEY):  # LOG_LEVEL=DEBUG here
        assert secret not in logs
    assert len(double.submissions) == 1
    await world.start_bot()  # in-process, to read the store through the product's API
    await assert_exactly_once(world, expect=1)
    assert integrity(world.config.sqlite_path) == "ok"


async def test_sigterm_exits_cleanly_and_the_task_resumes_on_the_next_start(
    offline_world: World, tmp_path: Path
) -> None:
    """Fault: SIGTERM with a task in flight: exit 0 promptly, nothing lost."""
    world = offline_world
    double = world.providers["hiapi"]
    hold(double)
    bot = BotProcess(world, tmp_path / "bot.log")
    try:
        await bot.start()
        ix = await world.animate("alice", prompt="stop politely", provider="hiapi")
        thread_id, task_id = await started(world, ix)
        await polled(double)
        started_at = time.monotonic()
        bot.signal(signal.SIGTERM)
        assert await bot.wait() == 0
        assert time.monotonic() - started_at < 10
    finally:
        bot.ensure_dead()
    logs = bot.logs()
    assert "SIGTERM received" in logs and "stopped cleanly" in logs
    assert "Traceback" not in logs and "Unclosed" not in logs

    finish(double)
    await world.start_bot()
    await video_lands(world, thread_id, task_id)
    await assert_exactly_once(world, expect=1)


# --- the store itself ---------------------------------------------------------------------------
WRITER = """
import asyncio, sys, time
from reelbot.store.sqlite import SqliteStore
from reelbot.store.models import NewTask, QuotaPolicy

async def main(path):
    store = SqliteStore(path)
    await store.open()
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        task = await store.create_task(
            NewTask(provider="hiapi", guild_id=1, channel_id=2, requester_id=n % 7,
                    request={"prompt": "x" * 500}, poll_interval=1.0),
            now=time.time(), policy=QuotaPolicy(default_limit=0))
        await store.update_task(task.id, state="failed", next_action_at=time.time())
        if n % 2:
            await store.refund(task.id)

asyncio.run(main(sys.argv[1]))
"""


async def test_sigkill_during_store_writes_leaves_a_consistent_store(tmp_path: Path) -> None:
    """Fault: SIGKILL of a process in the middle of a stream of store transactions
    (task creation with quota, updates, refunds). The store reopens, migrated, intact,
    and the quota ledger still matches the tasks."""
    from reelbot.store.sqlite import SqliteStore

    db = str(tmp_path / "crash.db")
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", WRITER, db],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == b"ready"

        def enough_rows() -> bool:
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    return conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] >= 200
            except sqlite3.Error:
                return False

        await eventually(enough_rows, description="200 tasks written")
    finally:
        proc.kill()
        proc.wait(5)
    assert integrity(db) == "ok"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        used = {u: n for u, n in conn.execute("SELECT user_id, used FROM quota_usage") if n}
        owed = dict(
            conn.execute(
                "SELECT requester_id, SUM(quota_weight) FROM tasks WHERE refunded = 0 "
                "GROUP BY requester_id"
            ).fetchall()
        )
    assert used == owed, "quota usage and tasks disagree after the crash"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]

    store = SqliteStore(db)  # reopening runs the migrations again: a no-op
    await store.open()
    try:
        assert await store.schema_version() >= 1
        # Every task survived; the last one may have been killed between its creation
        # (not yet due: a new task waits for its status message) and its update.
        assert rows >= 200
        assert rows - 1 <= await store.count_unfinished() <= rows
    finally:
        await store.close()
