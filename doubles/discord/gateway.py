"""The gateway websocket: HELLO/IDENTIFY/RESUME, heartbeats, and event dispatch.

Frames go out as TEXT (discord.py parses text frames as plain JSON whatever
``compress`` it asked for). Each connection has one writer task fed by a
queue, so events keep their order and can be queued from sync code. Sessions
outlive their socket until the client closes cleanly, so RESUME can replay
what was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .model import State
from .notify import ChangeNotifier
from .payloads import Payloads

log = logging.getLogger(__name__)

# Opcodes
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Intents
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
KNOWN_INTENTS = (1 << 26) - 1

_GUILD_EVENT_INTENTS = {
    "GUILD_CREATE": GUILDS,
    "GUILD_UPDATE": GUILDS,
    "GUILD_ROLE_CREATE": GUILDS,
    "CHANNEL_CREATE": GUILDS,
    "CHANNEL_DELETE": GUILDS,
    "THREAD_CREATE": GUILDS,
    "THREAD_DELETE": GUILDS,
    "GUILD_MEMBER_ADD": GUILD_MEMBERS,
    "MESSAGE_CREATE": GUILD_MESSAGES,
    "MESSAGE_UPDATE": GUILD_MESSAGES,
    "MESSAGE_DELETE": GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": GUILD_MESSAGE_REACTIONS,
}
_DM_EVENT_INTENTS = {
    "MESSAGE_CREATE": DIRECT_MESSAGES,
    "MESSAGE_UPDATE": DIRECT_MESSAGES,
    "MESSAGE_DELETE": DIRECT_MESSAGES,
    "MESSAGE_REACTION_ADD": DIRECT_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": DIRECT_MESSAGE_REACTIONS,
}
_CONTENT_FIELDS = {"content": "", "embeds": [], "attachments": [], "components": []}

EventData = dict[str, Any] | Callable[["GatewaySession"], dict[str, Any]]


def required_intent(event: str, guild_id: int | None) -> int:
    table = _GUILD_EVENT_INTENTS if guild_id is not None else _DM_EVENT_INTENTS
    return table.get(event, 0)


class Connection:
    """One websocket; a single writer task sends queued frames in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: GatewaySession | None = None
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[bool]]] = asyncio.Queue()
        self.last_sent: asyncio.Future[bool] | None = None
        self._writer = asyncio.create_task(self._write_loop(), name="discord-double-ws-writer")

    def send(self, payload: dict[str, Any]) -> asyncio.Future[bool]:
        """Queue a frame; the future resolves True once it was written."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.ws.closed:
            future.set_result(False)
        else:
            self._queue.put_nowait((json.dumps(payload), future))
            self.last_sent = future
        return future

    async def _write_loop(self) -> None:
        while True:
            text, future = await self._queue.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("gateway frame not sent, socket closing: %s", exc)
                future.set_result(False)
            else:
                future.set_result(True)

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    async def shutdown(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_result(False)


@dataclass
class GatewaySession:
    """An identified gateway session (one shard of one bot process)."""

    session_id: str
    shard_id: int
    shard_count: int
    sharded: bool  # False when IDENTIFY had no "shard": the session gets every guild
    intents: int
    seq: int = 0
    connection: Connection | None = field(default=None, repr=False)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000), repr=False)
    resumes: int = 0

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.ws.closed

    def owns(self, guild_id: int | None) -> bool:
        if not self.sharded:
            return True
        shard = 0 if guild_id is None else (guild_id >> 22) % self.shard_count
        return shard == self.shard_id

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)

    def event_names(self) -> list[str]:
        return [frame["t"] for frame in self.events]

    def guild_ids(self) -> list[int]:
        """Guilds this session received a GUILD_CREATE for."""
        return [int(f["d"]["id"]) for f in self.events if f["t"] == "GUILD_CREATE"]


class Gateway:
    def __init__(
        self,
        state: State,
        payloads: Payloads,
        notifier: ChangeNotifier,
        token: str,
        record_request: Callable[[str, str, int], None],
    ) -> None:
        self._state = state
        self._payloads = payloads
        self._notifier = notifier
        self._token = token
        self._record_request = record_request
        self.url = ""  # ws://host:port/gateway, set on start
        self.heartbeat_interval_ms = 41250
        self.privileged_intents_enabled = True
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[Connection] = set()
        self.identified_intents: int | None = None

    # -- websocket lifecycle -----------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._record_request("GET", "/gateway", 101)
        connection = Connection(ws)
        self.connections.add(connection)
        connection.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    frame = json.loads(message.data)
                except ValueError:
                    await connection.close(4002, "Decode error")
                    break
                await self._on_frame(connection, frame)
        finally:
            self._detach(connection, ws.close_code)
            await connection.shutdown()
        return ws

    def _detach(self, connection: Connection, close_code: int | None) -> None:
        self.connections.discard(connection)
        session = connection.session
        if session is not None and session.connection is connection:
            session.connection = None
            # A clean client close (1000/1001) ends the session, as on Discord;
            # anything else leaves it resumable.
            if close_code in (1000, 1001):
                self.sessions.pop(session.session_id, None)
        self._notifier.notify()

    async def _on_frame(self, connection: Connection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            connection.send({"op": HEARTBEAT_ACK})
        elif op == IDENTIFY:
            await self._identify(connection, data or {})
        elif op == RESUME:
            await self._resume(connection, data or {})
        elif connection.session is None:
            await connection.close(4003, "Not authenticated.")
        elif op == REQUEST_GUILD_MEMBERS:
            self._send_member_chunks(connection.session, data or {})
        elif op in (PRESENCE_UPDATE, VOICE_STATE_UPDATE):
            pass  # accepted and ignored
        else:
            await connection.close(4001, "Unknown opcode.")

    async def _identify(self, connection: Connection, data: dict[str, Any]) -> None:
        if connection.session is not None:
            await connection.close(4005, "Already authenticated.")
            return
        if data.get("token") != self._token:
            await connection.close(4004, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents & ~KNOWN_INTENTS:
            await connection.close(4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS and not self.privileged_intents_enabled:
            await connection.close(4014, "Disallowed intent(s).")
            return
        shard = data.get("shard")
        if shard is not None and not (
            isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]
        ):
            await connection.close(4010, "Invalid shard.")
            return
        shard_id, shard_count = shard or (0, 1)
        # A new identify for a shard replaces dead sessions of that shard.
        for old in list(self.sessions.values()):
            if not old.connected and (old.shard_id, old.shard_count) == (shard_id, shard_count):
                del self.sessions[old.session_id]
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            shard_id=shard_id,
            shard_count=shard_count,
            sharded=shard is not None,
            intents=intents,
            connection=connection,
        )
        connection.session = session
        self.sessions[session.session_id] = session
        self.identified_intents = intents
        log.debug("gateway IDENTIFY shard=%s intents=%s", shard, intents)
        owned = [g for g in self._state.guilds.values() if session.owns(g.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": self._payloads.current_user(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in owned],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(self._state.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "_trace": ["discord-double"],
        }
        if shard is not None:
            ready["shard"] = [shard_id, shard_count]
        self._send_event(session, "READY", ready)
        for guild in owned:
            self._send_event(
                session,
                "GUILD_CREATE",
                self._payloads.guild_create(guild, all_members=session.has(GUILD_MEMBERS)),
            )
        self._notifier.notify()

    async def _resume(self, connection: Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self._token:
            await connection.close(4004, "Authentication failed.")
            return
        session = self.sessions.get(str(data.get("session_id")))
        if session is None:
            connection.send({"op": INVALID_SESSION, "d": False})
            return
        if session.connection is not None and session.connection is not connection:
            old = session.connection
            session.connection = None
            await old.close(4009, "Session replaced.")
        session.connection = connection
        connection.session = session
        session.resumes += 1
        last_seq = int(data.get("seq") or 0)
        for frame in list(session.events):
            if frame["s"] > last_seq:
                connection.send(frame)
        self._send_event(session, "RESUMED", {"_trace": ["discord-double"]})
        self._notifier.notify()

    def _send_member_chunks(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild_ids = data.get("guild_id")
        for raw_id in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            guild = self._state.guilds.get(int(raw_id or 0))
            if guild is None:
                continue
            wanted = {int(u) for u in data.get("user_ids") or []}
            query = (data.get("query") or "").lower()
            members = [
                m
                for m in guild.members.values()
                if (not wanted or m.user_id in wanted)
                and self._state.users[m.user_id].username.lower().startswith(query)
            ]
            chunk = {
                "guild_id": str(guild.id),
                "members": [self._payloads.member(m) for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if data.get("nonce") is not None:
                chunk["nonce"] = data["nonce"]
            self._send_event(session, "GUILD_MEMBERS_CHUNK", chunk)

    # -- dispatch ---------------------------------------------------------
    def _send_event(
        self, session: GatewaySession, event: str, data: dict[str, Any]
    ) -> asyncio.Future[bool]:
        session.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.connected:
            assert session.connection is not None
            return session.connection.send(frame)
        # Kept in session.events: a RESUME replays it.
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        future.set_result(False)
        return future

    def dispatch(
        self,
        event: str,
        data: EventData,
        *,
        guild_id: int | None,
        private_content: bool = False,
    ) -> list[asyncio.Future[bool]]:
        """Send an event to every session owning ``guild_id``'s shard.

        Sessions without the event's intent are skipped. ``private_content``
        marks message payloads whose content Discord hides from apps without
        the MESSAGE_CONTENT intent.
        """
        intent = required_intent(event, guild_id)
        futures = []
        for session in list(self.sessions.values()):
            if not session.owns(guild_id) or (intent and not session.has(intent)):
                continue
            body = data(session) if callable(data) else data
            if private_content and not session.has(MESSAGE_CONTENT):
                body = {**body, **_CONTENT_FIELDS}
                body.pop("poll", None)
            futures.append(self._send_event(session, event, body))
        return futures

    async def flush(self) -> None:
        """Wait until every frame queued so far was written (or its socket died)."""
        pending = [c.last_sent for c in self.connections if c.last_sent is not None]
        if pending:
            await asyncio.gather(*pending)

    def live_session_for(self, guild_id: int | None) -> GatewaySession | None:
        return next((s for s in self.sessions.values() if s.connected and s.owns(guild_id)), None)

    async def disconnect(self, code: int = 4000, *, invalidate: bool = False) -> None:
        """Close every socket; sessions stay resumable unless ``invalidate``.

        Sessions are detached right away (not when each handler unwinds), so
        events dispatched from now on are buffered for RESUME.
        """
        for connection in list(self.connections):
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
            await connection.close(code, "Disconnected by the test double.")
        if invalidate:
            self.sessions.clear()
        self._notifier.notify()

    async def close(self) -> None:
        for connection in list(self.connections):
            await connection.close(1001, "Server shutting down.")
            await connection.shutdown()
        self.connections.clear()
        self.sessions.clear()
