"""The sandbox's web page: the sandbox guild as Discord shows it, driven from a browser.

One aiohttp app on 127.0.0.1 serves a static, dependency-free page (``static/``), a
WebSocket that pushes a snapshot of the guild every time the Discord double's state
changes (the double's own change notifier; the page never polls), and one POST route
for the visitor's actions. Every action goes through the Discord double as a real
interaction, reaction or message, so the bot answering is exactly the production bot.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from doubles.discord.errors import CommandContractError
from doubles.discord.model import Message
from doubles.harness import World
from doubles.providers import ProviderDouble, Step
from doubles.providers.timeline import timed_timeline

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HOST = "127.0.0.1"  # a development tool: never reachable from another machine
MAX_UPLOAD = 25 * 2**20
# How often, at most, a burst of changes is pushed to one page.
PUSH_INTERVAL = 0.1

# What the control panel offers for each provider double (its existing scripting).
BEHAVIOURS: dict[str, str] = {
    "normal": "normal (about 4 s)",
    "slow": "slow (about 40 s)",
    "failing": "failing (the model crashes)",
    "out_of_credits": "out of credits (402)",
    "down": "down (503 on submit)",
    "stopped": "stopped (connection refused: fails over)",
}
FOREVER = 10_000  # submit faults queued for a persistent mode


def apply_behaviour(double: ProviderDouble, behaviour: str) -> None:
    """Script a provider double to behave as ``behaviour`` for every new task."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; choose one of {list(BEHAVIOURS)}")
    double._submit_faults.clear()  # the sandbox owns its doubles' scripts
    double.submit_latency = 0.0
    double.default_timeline = timed_timeline(4.0)
    if behaviour == "slow":
        double.submit_latency = 1.5
        double.default_timeline = timed_timeline(40.0)
    elif behaviour == "failing":
        double.default_timeline = [
            Step.queued(seconds=0.8),
            Step.running(30, seconds=1.5),
            Step.fail(code="model_crashed", message="The model crashed while generating"),
        ]
    elif behaviour == "out_of_credits":
        double.fail_next_submit(402, times=FOREVER)
    elif behaviour == "down":
        double.fail_next_submit(503, times=FOREVER)


async def set_listening(double: ProviderDouble, listening: bool) -> None:
    """ "stopped": the double stops listening (a connection refused, as a provider that is
    down); any other mode listens again, on the same port (its base URL stays valid)."""
    running = double._runner is not None
    if not listening and running:
        double.port = int(double.root_url.rsplit(":", 1)[1])
        await double.close()
    elif listening and not running:
        await double.start()


class Sandbox:
    """The current world (a reset builds a new one) and what the page needs of it."""

    def __init__(self, build: Callable[[], Awaitable[World]]) -> None:
        self._build = build
        self.world: World | None = None
        self.generation = 0
        self.behaviours: dict[str, str] = {}
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._submitted_modals: set[int] = set()
        self._lock = asyncio.Lock()
        self.on_world: list[Callable[[World], None]] = []

    async def start(self) -> World:
        world = await self._build()
        self._adopt(world)
        return world

    def _adopt(self, world: World) -> None:
        self.world = world
        self.generation += 1
        self._submitted_modals.clear()
        self.behaviours = {}
        for pid, double in world.providers.items():
            apply_behaviour(double, "normal")
            self.behaviours[pid] = "normal"
        for hook in self.on_world:
            hook(world)
        self.ready.set()

    async def reset(self) -> None:
        """Throw the world away (bot, store, doubles) and start a fresh one."""
        async with self._lock:
            old = self.world
            self.ready.clear()
            self.world = None
            if old is not None:
                old.discord._notifier.notify()  # wake pages waiting on the old world
                await old.close()
            self._adopt(await self._build())

    async def close(self) -> None:
        if self.world is not None:
            await self.world.close()
            self.world = None

    async def current(self) -> World:
        await self.ready.wait()
        assert self.world is not None
        return self.world

    # -- the page's view ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        world = self.world
        assert world is not None
        double = world.discord
        state = double._state
        payloads = double._payloads
        guild = state.guilds[world.guild_id]
        names = {uid: name for name, uid in world.users.items()}

        def view(message: Message) -> dict[str, Any]:
            data = payloads.message(message)
            data["reaction_users"] = {
                emoji: [str(u) for u in users] for emoji, users in message.reactions.items()
            }
            if message.ephemeral and message.interaction_id in state.interactions:
                data["visible_to"] = str(state.interactions[message.interaction_id].user_id)
            return data

        channels = []
        messages: dict[str, list[dict[str, Any]]] = {}
        for channel_id in guild.channel_ids:
            channel = state.channels[channel_id]
            if channel.deleted or channel.is_thread:
                continue
            threads = sorted(double.threads(channel.id), key=lambda t: t.id)
            channels.append(
                {
                    "id": str(channel.id),
                    "name": channel.name,
                    "topic": channel.topic,
                    "threads": [
                        {"id": str(t.id), "name": t.name, "archived": t.archived} for t in threads
                    ],
                }
            )
            for ch in (channel, *threads):
                messages[str(ch.id)] = [view(m) for m in double.messages(ch.id)]
        for message in state.messages.values():  # ephemeral answers, for their member only
            if message.ephemeral and not message.deleted and str(message.channel_id) in messages:
                messages[str(message.channel_id)].append(view(message))
        for listed in messages.values():
            listed.sort(key=lambda m: int(m["id"]))

        modals = [
            {"interaction_id": str(ix.id), "user_id": str(ix.user_id), "modal": ix.modal}
            for ix in state.interactions.values()
            if ix.modal is not None and ix.id not in self._submitted_modals
        ]
        mods = {world.mod_role_id: "moderator", world.admin_role_id: "admin"}
        return {
            "type": "snapshot",
            "generation": self.generation,
            "guild": {"id": str(guild.id), "name": guild.name},
            "bot": {"id": str(double.bot_user_id), "name": state.users[state.bot_user_id].username},
            "members": [
                {
                    "id": str(uid),
                    "name": name,
                    "role": next(
                        (mods[r] for r in guild.members[uid].roles if r in mods), "member"
                    ),
                }
                for name, uid in world.users.items()
            ],
            "users": {
                str(uid): {"name": user.global_name or user.username, "bot": user.bot}
                for uid, user in state.users.items()
            }
            | {str(uid): {"name": name, "bot": False} for uid, name in names.items()},
            "roles": {
                str(rid): state.roles[rid].name for rid in guild.role_ids if rid in state.roles
            },
            "channels": channels,
            "messages": messages,
            "commands": double.commands(world.guild_id) + double.commands(None),
            "modals": modals,
            "providers": dict(self.behaviours),
            "behaviours": BEHAVIOURS,
        }

    # -- the visitor's actions --------------------------------------------------------------
    async def act(self, body: dict[str, Any]) -> dict[str, Any]:
        world = await self.current()
        double = world.discord
        action = body.get("action")
        user_id = int(body["user_id"]) if body.get("user_id") else None
        needs_member = (
            "invoke",
            "autocomplete",
            "react",
            "unreact",
            "click",
            "message",
            "message_command",
        )
        if action in needs_member and user_id not in world.users.values():
            raise ValueError("pick one of the sandbox's members first")
        assert user_id is not None or action in ("modal", "provider", "reset")
        channel_id = int(body.get("channel_id") or world.channel_id)
        if action in ("invoke", "autocomplete"):
            body["options"] = snowflake_options(world, str(body["command"]), body.get("options"))
        if action == "invoke":
            attachments = {
                name: decode_file(spec) for name, spec in (body.get("attachments") or {}).items()
            }
            ix = await double.invoke(
                str(body["command"]),
                guild_id=world.guild_id,
                channel_id=channel_id,
                user_id=user_id,  # type: ignore[arg-type]
                options=body.get("options") or {},
                attachments=attachments,
            )
            return {"interaction_id": str(ix.id)}
        if action == "autocomplete":
            choices = await double.autocomplete(
                str(body["command"]),
                focused=str(body["focused"]),
                guild_id=world.guild_id,
                channel_id=channel_id,
                user_id=user_id,  # type: ignore[arg-type]
                options=body.get("options") or {},
            )
            return {"choices": choices}
        if action in ("react", "unreact"):
            react = double.add_reaction if action == "react" else double.remove_reaction
            await react(channel_id, int(body["message_id"]), user_id, str(body["emoji"]))  # type: ignore[arg-type]
            return {}
        if action == "click":
            ix = await double.click(
                int(body["message_id"]),
                str(body["custom_id"]),
                user_id=user_id,  # type: ignore[arg-type]
                values=body.get("values"),
            )
            return {"interaction_id": str(ix.id)}
        if action == "message_command":
            ix = await double.message_command(
                str(body["name"]),
                int(body["message_id"]),
                user_id=user_id,  # type: ignore[arg-type]
            )
            return {"interaction_id": str(ix.id)}
        if action == "modal":
            opened_by = double._state.interactions[int(body["interaction_id"])]
            if body.get("dismiss"):
                self._submitted_modals.add(opened_by.id)
                double._notifier.notify()
                return {}
            if opened_by.id in self._submitted_modals:
                raise ValueError("this modal was already submitted")
            self._submitted_modals.add(opened_by.id)
            ix = await double.submit_modal(opened_by, body.get("values") or {})
            return {"interaction_id": str(ix.id)}
        if action == "message":
            files = [decode_file(spec) for spec in body.get("files") or []]
            message_id = await double.post_user_message(
                channel_id,
                user_id,  # type: ignore[arg-type]
                str(body.get("content") or ""),
                files,
            )
            return {"message_id": str(message_id)}
        if action == "provider":
            pid = str(body["provider"])
            if pid not in world.providers:
                raise ValueError(f"no provider double {pid!r}")
            behaviour = str(body["behaviour"])
            apply_behaviour(world.providers[pid], behaviour)
            await set_listening(world.providers[pid], behaviour != "stopped")
            self.behaviours[pid] = behaviour
            double._notifier.notify()
            return {}
        if action == "reset":
            await self.reset()
            return {}
        raise ValueError(f"unknown action {action!r}")


SNOWFLAKE_OPTIONS = (6, 7, 8, 9)  # user, channel, role, mentionable


def snowflake_options(world: World, path: str, options: Any) -> dict[str, Any]:
    """Ids come from the page as strings (a JS number cannot hold a snowflake): make the
    user, channel, role and mentionable options ints, as the double's invoke() takes them."""
    if not isinstance(options, dict):
        return {}
    name, *subpath = path.split()
    command = world.discord._registry.find(name, world.guild_id)
    if command is None:
        return options
    schema = command.get("options") or []
    for part in subpath:
        schema = next((o.get("options") or [] for o in schema if o["name"] == part), [])
    kinds = {o["name"]: o["type"] for o in schema}
    return {
        key: int(value)
        if kinds.get(key) in SNOWFLAKE_OPTIONS and isinstance(value, str) and value.isdigit()
        else value
        for key, value in options.items()
    }


def decode_file(spec: dict[str, Any]) -> tuple[str, bytes, str | None]:
    """``{name, type, data: base64}`` from the page -> the double's attachment spec."""
    try:
        data = base64.b64decode(str(spec["data"]), validate=True)
    except (binascii.Error, KeyError) as exc:
        raise ValueError("a file was not sent as base64 data") from exc
    name = str(spec.get("name") or "upload.bin").replace("/", "_")[:100] or "upload.bin"
    return name, data, spec.get("type") or None


class WebApp:
    """The aiohttp app: ``/`` and ``/static/…``, ``/ws`` (snapshots), ``POST /api/act``."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._sockets: set[web.WebSocketResponse] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[self._same_origin])
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/act", self._act)
        app.router.add_static("/static/", STATIC)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, port).start()
        host, bound = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{bound}/"
        return self.url

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _same_origin(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Another web site open in the same browser must not drive the sandbox
        # (cross-site POSTs, or a DNS name rebound to 127.0.0.1).
        host = request.host.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            return web.json_response({"error": "the sandbox answers on 127.0.0.1 only"}, status=403)
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/") != f"http://{request.host}":
            return web.json_response({"error": "cross-origin requests are refused"}, status=403)
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(STATIC / "index.html")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data: blob: http://127.0.0.1:*; "
            "media-src 'self' blob: http://127.0.0.1:*; "
            "connect-src 'self' ws://127.0.0.1:* ws://localhost:*; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        return response

    async def _act(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("send a JSON object")
            result = await self.sandbox.act(body)
        except (ValueError, KeyError, TypeError, CommandContractError, TimeoutError) as exc:
            text = str(exc) if not isinstance(exc, KeyError) else f"missing {exc}"
            return web.json_response({"error": text}, status=400)
        return web.json_response({"ok": True, **result})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self._sockets.add(ws)
        reader = asyncio.create_task(self._drain(ws))
        try:
            await self._push(ws, reader)
        finally:
            reader.cancel()
            self._sockets.discard(ws)
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        async for msg in ws:  # the page sends nothing; this notices it went away
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break

    async def _push(self, ws: web.WebSocketResponse, reader: asyncio.Task[None]) -> None:
        """Send a snapshot now and after every change of the Discord double's state."""
        sent = ""
        while not ws.closed and not reader.done():
            world = await self.sandbox.current()
            notifier = world.discord._notifier
            version, generation = notifier.version, self.sandbox.generation
            text = json.dumps(self.sandbox.snapshot(), separators=(",", ":"))
            if text != sent:
                await ws.send_str(text)
                sent = text
            waiter = asyncio.ensure_future(
                world.discord.wait_for(
                    lambda n=notifier, v=version, g=generation: (
                        n.version != v or self.sandbox.generation != g
                    ),
                    timeout=3600,
                )
            )
            done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await waiter
                return
            with contextlib.suppress(TimeoutError):
                waiter.result()
            await asyncio.sleep(PUSH_INTERVAL)  # coalesce a burst of changes
