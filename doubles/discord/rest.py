"""Bot-token REST routes under /api/v10: login, command sync, channels,
messages, threads, reactions and look-ups."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from .commands import CommandRegistry
from .errors import (
    DiscordHTTPError,
    cannot_edit_others_message,
    invalid_form_body,
    json_response,
    unknown_application_command,
    unknown_member,
    unknown_user,
)
from .gateway import Gateway
from .messaging import read_body
from .model import Channel, Message, State
from .operations import Operations

log = logging.getLogger(__name__)

NO_CONTENT = 204


def _int(request: web.Request, key: str) -> int:
    return int(request.match_info[key])


def missing_access() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50001, "Missing Access")


def unknown_application() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10002, "Unknown Application")


class RestRoutes:
    def __init__(
        self, ops: Operations, registry: CommandRegistry, gateway: Gateway, shard_count: int
    ) -> None:
        self._ops = ops
        self._registry = registry
        self._gateway = gateway
        self.shard_count = shard_count

    @property
    def _state(self) -> State:
        return self._ops.state

    # -- login ------------------------------------------------------------------
    async def me(self, request: web.Request) -> web.Response:
        return json_response(self._ops.payloads.current_user())

    async def user(self, request: web.Request) -> web.Response:
        user_id = _int(request, "user_id")
        if user_id not in self._state.users:
            raise unknown_user()
        return json_response(self._ops.payloads.user(user_id))

    async def application(self, request: web.Request) -> web.Response:
        state = self._state
        bot = state.users[state.bot_user_id]
        owner = next((u for u in state.users.values() if not u.bot), bot)
        return json_response(
            {
                "id": str(state.application_id),
                "name": bot.username,
                "description": "Discord double",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self._ops.payloads.user(owner),
                "verify_key": "0" * 64,
                "flags": 0,
                "team": None,
                "summary": "",
                "bot": self._ops.payloads.user(bot),
            }
        )

    async def gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self._gateway.url})

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self._gateway.url,
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    # -- application commands ---------------------------------------------------------
    def _command_scope(self, request: web.Request) -> int | None:
        if _int(request, "application_id") != self._state.application_id:
            raise unknown_application()
        if "guild_id" not in request.match_info:
            return None
        guild_id = _int(request, "guild_id")
        if guild_id not in self._state.guilds:
            raise missing_access()
        return guild_id

    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self._registry.in_scope(self._command_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        body = (await read_body(request)).payload
        commands = body.get("_list")
        if not isinstance(commands, list):
            raise invalid_form_body(
                {"_errors": [{"code": "LIST_TYPE_CONVERT", "message": "Expected a list"}]}
            )
        stored = self._registry.replace(scope, commands)
        self._state.notifier.notify()
        return json_response(stored)

    async def post_command(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        stored = self._registry.upsert(scope, (await read_body(request)).payload)
        self._state.notifier.notify()
        return json_response(stored, status=201)

    async def get_command(self, request: web.Request) -> web.Response:
        command = self._registry.get(self._command_scope(request), request.match_info["command_id"])
        if command is None:
            raise unknown_application_command()
        return json_response(command)

    async def delete_command(self, request: web.Request) -> web.Response:
        if not self._registry.delete(
            self._command_scope(request), request.match_info["command_id"]
        ):
            raise unknown_application_command()
        self._state.notifier.notify()
        return web.Response(status=NO_CONTENT)

    # -- channels and messages ------------------------------------------------------
    def _channel(self, request: web.Request) -> Channel:
        return self._ops.channel(_int(request, "channel_id"))

    def _message(self, request: web.Request) -> tuple[Channel, Message]:
        channel = self._channel(request)
        return channel, self._ops.message(channel, _int(request, "message_id"))

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._ops.payloads.channel(self._channel(request)))

    async def create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        body = await read_body(request)
        message = self._ops.create_message(
            channel, self._state.bot_user_id, body, upload_limit=self._ops.upload_limit(channel)
        )
        return json_response(self._ops.payloads.message(message))

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        query = request.query
        limit = int(query.get("limit", 50))
        if not 1 <= limit <= 100:
            raise invalid_form_body(
                {
                    "limit": {
                        "_errors": [
                            {"code": "NUMBER_TYPE_MAX", "message": "Must be between 1 and 100."}
                        ]
                    }
                }
            )
        ids = list(channel.message_ids)  # oldest first
        if "before" in query:
            ids = [i for i in ids if i < int(query["before"])][-limit:]
        elif "after" in query:
            ids = [i for i in ids if i > int(query["after"])][:limit]
        elif "around" in query:
            around = int(query["around"])
            older = [i for i in ids if i < around][-(limit // 2) :] if limit > 1 else []
            newer = [i for i in ids if i >= around][: limit - len(older)]
            ids = older + newer
        else:
            ids = ids[-limit:]
        messages = [self._state.messages[i] for i in reversed(ids)]  # newest first, like Discord
        return json_response([self._ops.payloads.message(m) for m in messages])

    async def get_message(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        return json_response(self._ops.payloads.message(message))

    async def edit_message(self, request: web.Request) -> web.Response:
        channel, message = self._message(request)
        body = await read_body(request)
        if message.author_id != self._state.bot_user_id:
            raise cannot_edit_others_message()
        edited = self._ops.edit_message(message, body, upload_limit=self._ops.upload_limit(channel))
        return json_response(self._ops.payloads.message(edited))

    async def delete_message(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        self._ops.delete_message(message)
        return web.Response(status=NO_CONTENT)

    async def typing(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=NO_CONTENT)

    # -- threads --------------------------------------------------------------------
    async def thread_from_message(self, request: web.Request) -> web.Response:
        channel, message = self._message(request)
        payload = (await read_body(request)).payload
        thread = self._ops.start_thread(
            channel,
            payload.get("name"),
            self._state.bot_user_id,
            starter=message,
            auto_archive_duration=int(payload.get("auto_archive_duration") or 1440),
        )
        return json_response(self._ops.payloads.thread(thread), status=201)

    async def thread_without_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        payload = (await read_body(request)).payload
        thread = self._ops.start_thread(
            channel,
            payload.get("name"),
            self._state.bot_user_id,
            thread_type=int(payload.get("type") or 12),  # API default: private thread
            auto_archive_duration=int(payload.get("auto_archive_duration") or 1440),
        )
        return json_response(self._ops.payloads.thread(thread), status=201)

    # -- reactions --------------------------------------------------------------------
    async def add_own_reaction(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        # match_info is already percent-decoded ("%F0%9F%94%81" -> "🔁").
        self._ops.add_reaction(message, self._state.bot_user_id, request.match_info["emoji"])
        return web.Response(status=NO_CONTENT)

    async def remove_own_reaction(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        self._ops.remove_reaction(message, self._state.bot_user_id, request.match_info["emoji"])
        return web.Response(status=NO_CONTENT)

    async def remove_user_reaction(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        self._ops.remove_reaction(message, _int(request, "user_id"), request.match_info["emoji"])
        return web.Response(status=NO_CONTENT)

    async def list_reactions(self, request: web.Request) -> web.Response:
        _, message = self._message(request)
        users = sorted(message.reactions.get(request.match_info["emoji"], set()))
        after = int(request.query.get("after", 0))
        limit = int(request.query.get("limit", 25))
        chosen = [u for u in users if u > after][:limit]
        return json_response([self._ops.payloads.user(u) for u in chosen])

    # -- guild look-ups -----------------------------------------------------------------
    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._ops.guild(_int(request, "guild_id"))
        data: dict[str, Any] = self._ops.payloads.guild(guild)
        if request.query.get("with_counts") in ("true", "1"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def guild_channels(self, request: web.Request) -> web.Response:
        guild = self._ops.guild(_int(request, "guild_id"))
        channels = [self._state.channels[c] for c in guild.channel_ids]
        return json_response(
            [self._ops.payloads.channel(c) for c in channels if not c.deleted and not c.is_thread]
        )

    async def guild_roles(self, request: web.Request) -> web.Response:
        guild = self._ops.guild(_int(request, "guild_id"))
        return json_response(
            [self._ops.payloads.role(self._state.roles[r]) for r in guild.role_ids]
        )

    async def guild_member(self, request: web.Request) -> web.Response:
        guild = self._ops.guild(_int(request, "guild_id"))
        member = guild.members.get(_int(request, "user_id"))
        if member is None:
            raise unknown_member()
        return json_response(self._ops.payloads.member(member))

    # -- wiring ---------------------------------------------------------------------------
    def add_routes(self, app: web.Application, prefix: str) -> None:
        r = app.router
        app_cmds = prefix + r"/applications/{application_id:\d+}"
        guild_cmds = app_cmds + r"/guilds/{guild_id:\d+}/commands"
        channel = prefix + r"/channels/{channel_id:\d+}"
        message = channel + r"/messages/{message_id:\d+}"
        reaction = message + "/reactions/{emoji}"
        guild = prefix + r"/guilds/{guild_id:\d+}"
        routes: list[tuple[str, str, Any]] = [
            ("GET", prefix + "/users/@me", self.me),
            ("GET", prefix + r"/users/{user_id:\d+}", self.user),
            ("GET", prefix + "/oauth2/applications/@me", self.application),
            ("GET", prefix + "/applications/@me", self.application),
            ("GET", prefix + "/gateway", self.gateway),
            ("GET", prefix + "/gateway/bot", self.gateway_bot),
            ("GET", app_cmds + "/commands", self.list_commands),
            ("PUT", app_cmds + "/commands", self.put_commands),
            ("POST", app_cmds + "/commands", self.post_command),
            ("GET", app_cmds + r"/commands/{command_id:\d+}", self.get_command),
            ("DELETE", app_cmds + r"/commands/{command_id:\d+}", self.delete_command),
            ("GET", guild_cmds, self.list_commands),
            ("PUT", guild_cmds, self.put_commands),
            ("POST", guild_cmds, self.post_command),
            ("GET", guild_cmds + r"/{command_id:\d+}", self.get_command),
            ("DELETE", guild_cmds + r"/{command_id:\d+}", self.delete_command),
            ("GET", channel, self.get_channel),
            ("POST", channel + "/typing", self.typing),
            ("POST", channel + "/messages", self.create_message),
            ("GET", channel + "/messages", self.list_messages),
            ("GET", message, self.get_message),
            ("PATCH", message, self.edit_message),
            ("DELETE", message, self.delete_message),
            ("POST", message + "/threads", self.thread_from_message),
            ("POST", channel + "/threads", self.thread_without_message),
            ("PUT", reaction + "/@me", self.add_own_reaction),
            ("DELETE", reaction + "/@me", self.remove_own_reaction),
            ("DELETE", reaction + r"/{user_id:\d+}", self.remove_user_reaction),
            ("GET", reaction, self.list_reactions),
            ("GET", guild, self.get_guild),
            ("GET", guild + "/channels", self.guild_channels),
            ("GET", guild + "/roles", self.guild_roles),
            ("GET", guild + r"/members/{user_id:\d+}", self.guild_member),
        ]
        for method, path, handler in routes:
            r.add_route(method, path, handler)
