"""Assertions that read like what a member sees in Discord."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from doubles.discord.model import Message
from doubles.harness import World, sample_video
from doubles.providers import ProviderDouble, Step
from reelbot import vocabulary
from reelbot.store.models import TaskRow

TIMEOUT = 20.0
_THREAD_LINK = re.compile(r"<#(\d+)> \(task #(\d+)\)")


async def started(world: World, ix) -> tuple[int, int]:
    """Wait for /animate's ephemeral 'On it' reply; return (thread id, task id)."""
    content = await ix.wait_for_content("On it", timeout=TIMEOUT)
    assert ix.ephemeral, "the /animate acknowledgement must be ephemeral"
    match = _THREAD_LINK.search(content if isinstance(content, str) else ix.response_content)
    assert match, ix.response_content
    return int(match.group(1)), int(match.group(2))


async def refused(ix, *needles: str) -> str:
    """The interaction was answered ephemerally with text containing every needle."""
    await ix.wait_for_response(timeout=TIMEOUT)
    content = await ix.wait_for_content(lambda c: bool(c), timeout=TIMEOUT)
    text = content if isinstance(content, str) else ix.response_content
    assert ix.ephemeral, f"refusal must be ephemeral: {text!r}"
    for needle in needles:
        assert needle.lower() in text.lower(), f"{needle!r} not in {text!r}"
    return text


def bot_messages(world: World, channel_id: int) -> list[Message]:
    return [
        m for m in world.discord.messages(channel_id) if m.author_id == world.discord.bot_user_id
    ]


def status_message(world: World, channel_id: int, task_id: int) -> Message:
    for m in bot_messages(world, channel_id):
        if vocabulary.is_status_text(m.content) and m.content.endswith(vocabulary.footer(task_id)):
            return m
    raise AssertionError(f"no status message for task {task_id} in {channel_id}")


def _final(world: World, channel_id: int, task_id: int) -> Message | None:
    for m in bot_messages(world, channel_id):
        if vocabulary.is_final_text(m.content, task_id):
            return m
    return None


async def final_message(
    world: World, channel_id: int, task_id: int, timeout: float = TIMEOUT
) -> Message:
    """The task's final message (video, error or cancellation) once it is posted."""
    return await world.discord.wait_for(
        lambda: _final(world, channel_id, task_id),
        timeout=timeout,
        description=f"final message of task {task_id} in channel {channel_id}",
    )


def finals(world: World, channel_id: int, task_id: int) -> list[Message]:
    return [
        m for m in bot_messages(world, channel_id) if vocabulary.is_final_text(m.content, task_id)
    ]


async def video_lands(
    world: World, channel_id: int, task_id: int, timeout: float = TIMEOUT
) -> Message:
    """A video attachment lands in the thread for this task, mentioning the requester."""
    message = await final_message(world, channel_id, task_id, timeout)
    assert any(a.filename.endswith(".mp4") for a in message.attachments), message.content
    return message


async def bot_reacted(world: World, message: Message, emoji: str = "🔁") -> None:
    bot_id = world.discord.bot_user_id
    await world.discord.wait_for(
        lambda: bot_id in message.reactions.get(emoji, set()),
        timeout=TIMEOUT,
        description=f"the bot's {emoji} on message {message.id}",
    )


async def status_shows(world: World, channel_id: int, task_id: int, text: str) -> Message:
    def check() -> Message | None:
        try:
            message = status_message(world, channel_id, task_id)
        except AssertionError:
            return None
        return message if text in message.content else None

    return await world.discord.wait_for(
        check, timeout=TIMEOUT, description=f"status of task {task_id} shows {text!r}"
    )


# --- fault injection and exactly-once accounting (reliability suite) -----------------------
# Waiting is always on observable state: the Discord double announces its own changes
# (world.discord.wait_for); for state it cannot announce (provider doubles, the store, a
# subprocess) ``eventually`` re-checks a predicate every 10 ms.


async def eventually(predicate, *, timeout: float = TIMEOUT, description: str = "a condition"):
    """Return the first truthy value of ``predicate()`` (sync or async), re-checked every 10 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {description}")
        await asyncio.sleep(0.01)


class Gate:
    """A checkpoint for async hooks: ``reached`` is set by the first call, and calls wait
    until ``release()`` (let them through) or ``fail_held()`` (the held ones raise). Calls
    after either pass straight through. Lets a test stop the system at one precise point."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.calls = 0
        self._open = False
        self._held: list[asyncio.Future[None]] = []

    async def __call__(self) -> None:
        self.calls += 1
        self.reached.set()
        if self._open:
            return
        held = asyncio.get_running_loop().create_future()
        self._held.append(held)
        await held

    async def wait_reached(self, calls: int = 1, timeout: float = TIMEOUT) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout)
        await eventually(
            lambda: self.calls >= calls,
            timeout=timeout,
            description=f"{calls} call(s) to reach the gate",
        )

    def release(self) -> None:
        self._open = True
        for held in self._held:
            if not held.done():
                held.set_result(None)

    def fail_held(self, error: BaseException | None = None) -> None:
        self._open = True
        for held in self._held:
            if not held.done():
                held.set_exception(error or ConnectionResetError("dropped by the test"))


def gate_submits(double: ProviderDouble) -> Gate:
    """Hold submits inside the provider double once it has read the request body, before
    it creates the task (hiapi, foxapi, gptge, higgsfield: only their submits read JSON)."""
    gate, original = Gate(), double.read_json

    async def gated(request: web.Request) -> Any:
        body = await original(request)
        await gate()
        return body

    double.read_json = gated  # type: ignore[method-assign]
    return gate


def gate_polls(double: ProviderDouble) -> Gate:
    """Hold every status request inside the provider double until released."""
    gate, original = Gate(), double.status_gate

    async def gated() -> None:
        await gate()
        await original()

    double.status_gate = gated  # type: ignore[method-assign]
    return gate


def poll_times(double: ProviderDouble) -> list[float]:
    """Loop times at which the double received status requests (appended as they arrive)."""
    times: list[float] = []
    original = double.status_gate

    async def recorded() -> None:
        times.append(asyncio.get_running_loop().time())
        await original()

    double.status_gate = recorded  # type: ignore[method-assign]
    return times


def hold(double: ProviderDouble, progress: int = 40) -> None:
    """The next submitted task stays running at ``progress`` until :func:`finish`."""
    double.script_next([Step.running(progress)])


async def polled(double: ProviderDouble, count: int = 1) -> None:
    """Wait until ``count`` tasks were submitted to the double and each was polled."""
    await eventually(
        lambda: len(double.tasks) >= count and all(t.polls for t in double.tasks.values()),
        description=f"{count} task(s) submitted to {double.protocol} and polled",
    )


def finish(double: ProviderDouble, steps=None) -> None:
    """Move every unfinished task of the double on to ``steps`` (default: succeed)."""
    for task in double.tasks.values():
        if task.state in ("queued", "running"):
            task.replace_timeline(list(steps or [Step.succeed()]), double.now())


async def discord_answered(world: World, method: str, path_regex: str, status: int) -> None:
    """Wait until the Discord double answered a matching request with ``status``."""
    pattern = re.compile(path_regex)
    await world.discord.wait_for(
        lambda: any(
            m == method and s == status and pattern.search(p)
            for m, p, s in world.discord.request_log
        ),
        timeout=TIMEOUT,
        description=f"{method} {path_regex} answered {status}",
    )


async def all_tasks(world: World) -> list[TaskRow]:
    assert world.bot is not None, "the bot is not running"
    return await world.bot.store.guild_tasks(world.guild_id, limit=10_000)


async def task_state(world: World, task_id: int, state: str) -> TaskRow:
    """Wait until the store records ``state`` for the task."""
    assert world.bot is not None
    store = world.bot.store

    async def check() -> TaskRow | None:
        task = await store.get_task(task_id)
        return task if task is not None and task.state == state else None

    return await eventually(check, description=f"task {task_id} to be {state}")


def finals_anywhere(world: World, task: TaskRow) -> list[Message]:
    """Final messages of a task in its thread and in the parent channel (the fallback)."""
    found = finals(world, task.reply_channel_id, task.id)
    if task.channel_id != task.reply_channel_id:
        found += finals(world, task.channel_id, task.id)
    return found


async def settled(world: World, timeout: float = TIMEOUT) -> list[TaskRow]:
    """Wait until the store has no work left (every task finished and delivered)."""

    async def done() -> list[TaskRow] | None:
        tasks = await all_tasks(world)
        return tasks if all(t.next_action_at is None for t in tasks) else None

    return await eventually(done, timeout=timeout, description="every task to settle")


async def assert_exactly_once(world: World, *, expect: int | None = None) -> list[TaskRow]:
    """Nothing lost, nothing twice: every task of the store is finished, recorded as
    delivered, and has exactly one final message in Discord (thread or parent channel)."""
    tasks = await settled(world)
    if expect is not None:
        assert len(tasks) == expect, [(t.id, t.state) for t in tasks]
    lost, duplicated = [], []
    for task in tasks:
        copies = finals_anywhere(world, task)
        if task.state not in ("succeeded", "failed", "cancelled") or not copies:
            lost.append((task.id, task.state, task.delivered))
        elif len(copies) > 1:
            duplicated.append((task.id, [m.id for m in copies]))
        elif not task.delivered or task.result_message_id != copies[0].id:
            lost.append((task.id, "delivery not recorded", task.result_message_id))
    assert not lost, f"tasks lost: {lost}"
    assert not duplicated, f"tasks delivered twice: {duplicated}"
    return tasks


async def fast_forward(world: World, task_id: int) -> None:
    """Once the task has a retry scheduled later than a test should wait, make it due now
    (as if the clock had moved on)."""
    assert world.bot is not None
    store = world.bot.store

    async def scheduled_later() -> bool:
        task = await store.get_task(task_id)
        return bool(task and task.next_action_at and task.next_action_at > time.time() + 1)

    await eventually(scheduled_later, description=f"task {task_id} to schedule a retry")
    await store.update_task(task_id, next_action_at=time.time())
    world.bot.poller.wake()


class MediaHost:
    """A stand-in for a provider's CDN: serves the sample video at ``url``, optionally held
    at a :class:`Gate` once the response has started (a download in progress)."""

    def __init__(
        self,
        *,
        gate: Gate | None = None,
        body: bytes | None = None,
        content_type: str = "video/mp4",
    ) -> None:
        self.gate = gate
        self.body = body
        self.content_type = content_type
        self.requests = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = sample_video() if self.body is None else self.body
        resp = web.StreamResponse(headers={"Content-Type": self.content_type})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        if self.gate is not None:
            await self.gate()
        await resp.write(body[len(body) // 2 :])
        await resp.write_eof()
        return resp

    async def start(self) -> MediaHost:
        app = web.Application()
        app.router.add_get("/video.mp4", self._serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/video.mp4"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            if self.gate is not None:
                self.gate.release()
            await self._runner.cleanup()

    def serve_outputs_of(self, double: ProviderDouble) -> None:
        double.output_url = lambda task, step, kind="video": self.url  # type: ignore[method-assign]


async def invoke_in_dm(world: World, command: str, user: str = "alice", **options: Any):
    """A slash command arriving from a DM (no guild, no member), as a stale client or a
    user-installed context could send it. The double only builds guild interactions, so
    this reshapes one before it is dispatched."""
    double = world.discord
    await double.wait_for_gateway(None)
    ix = double._interactions.create(
        command,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users[user],
        options=options,
        attachments={},
    )
    payload = ix.payload
    member = payload.pop("member")
    for key in ("guild_id", "guild", "guild_locale"):
        payload.pop(key, None)
    payload["data"].pop("guild_id", None)
    payload["user"] = member["user"]
    payload["channel"] = {"id": payload["channel_id"], "type": 1, "flags": 0}
    payload["context"] = 1
    payload["authorizing_integration_owners"] = {"0": str(world.users[user])}
    ix.guild_id = None
    double._gateway.dispatch("INTERACTION_CREATE", payload, guild_id=None)
    await double._gateway.flush()
    return ix


class FlakyLink:
    """A TCP relay in front of a provider double that fails like a network does.

    Modes: ``"up"`` relays bytes; ``"reset"`` accepts each connection, reads the request
    and answers with a TCP reset; ``"down"`` stops listening (connection refused).
    Leaving ``"up"`` also resets the connections already open, so a pooled keep-alive
    connection cannot sneak past the fault.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._path = parts.path
        self.port = 0
        self.mode = "up"
        self.resets = 0
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._live: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """The target's base URL, through the relay."""
        return f"http://127.0.0.1:{self.port}{self._path}"

    async def start(self) -> FlakyLink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def set_mode(self, mode: str) -> None:
        assert mode in ("up", "reset", "down")
        self.mode = mode
        if mode != "up":
            for writer in list(self._live):
                _reset(writer)
        if mode == "down" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "down" and self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.set_mode("down")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode != "up":
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await reader.read(1024)
            self.resets += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _reset(writer)
            return
        self._live.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._live.difference_update((writer, up_writer))
            for w in (writer, up_writer):
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed server or a middlebox does."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
