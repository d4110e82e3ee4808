"""``DiscordDouble``: the test-facing facade over the fake Discord server.

Start it, point discord.py at it (``discord.http.Route.BASE = double.api_base``;
``AutoShardedBot`` then finds the gateway through ``GET /gateway/bot``), set up
guilds, and drive users' actions from the same event loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .cdn import Cdn
from .commands import CommandRegistry
from .faults import Fault, FaultInjector
from .gateway import Gateway, GatewaySession
from .interactions import InteractionService
from .messaging import MessageBody, UploadedFile
from .model import Channel, Interaction, Message, State, User
from .notify import ChangeNotifier
from .operations import Operations
from .payloads import Payloads
from .rest import RestRoutes
from .server import API_PREFIX, FormRefusal, LoggedRequest, Middleware, build_app
from .snowflake import SnowflakeFactory
from .webhooks import WebhookRoutes

log = logging.getLogger(__name__)

T = TypeVar("T")


def find_component(components: Sequence[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    """The interactive component with ``custom_id`` anywhere in a message's components
    (action rows, Components V2 containers, sections' accessories)."""
    for component in components:
        if component.get("custom_id") == custom_id and component.get("type") != 1:
            return component
        nested = list(component.get("components") or [])
        if isinstance(component.get("accessory"), dict):
            nested.append(component["accessory"])
        found = find_component(nested, custom_id)
        if found is not None:
            return found
    return None


# Called with every DiscordDouble built (tests check each one's refusals at teardown).
_created_hooks: list[Callable[[DiscordDouble], None]] = []
AttachmentSpec = tuple[str, bytes, str | None]  # (filename, data, content_type)


class DiscordDouble:
    """A local Discord (REST + gateway + CDN) for the unmodified discord.py client."""

    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 - a fake token for a fake server
        shard_count: int = 1,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_name: str = "Reelbot",
    ) -> None:
        self.token = token
        self.shard_count = shard_count
        self._host, self._port = host, port
        self._notifier = ChangeNotifier()
        snowflakes = SnowflakeFactory()
        bot_id = snowflakes.next()
        # On Discord a bot's user id equals its application id.
        self._state = State(
            bot_user_id=bot_id,
            application_id=bot_id,
            snowflakes=snowflakes,
            notifier=self._notifier,
        )
        self._state.users[bot_id] = User(bot_id, bot_name, bot=True, global_name=bot_name)
        self._cdn = Cdn(self._state)
        self._payloads = Payloads(self._state, self._cdn)
        self._requests: list[LoggedRequest] = []
        self._gateway = Gateway(self._state, self._payloads, self._notifier, token, self._record)
        self._ops = Operations(self._state, self._gateway, self._payloads, self._cdn)
        self._registry = CommandRegistry(snowflakes, self._state.application_id)
        self._interactions = InteractionService(self._ops, self._registry)
        self._faults = FaultInjector()
        self._refusals: list[FormRefusal] = []
        self._limit_refusals_expected = False
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        for hook in list(_created_hooks):
            hook(self)

    @staticmethod
    @contextlib.contextmanager
    def on_created(hook: Callable[[DiscordDouble], None]) -> Iterator[None]:
        """Call ``hook`` with every double built inside the ``with`` block."""
        _created_hooks.append(hook)
        try:
            yield
        finally:
            _created_hooks.remove(hook)

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> DiscordDouble:
        app = build_app(Middleware(self.token, self._faults, self._record, self._refused))
        RestRoutes(self._ops, self._registry, self._gateway, self.shard_count).add_routes(
            app, API_PREFIX
        )
        WebhookRoutes(self._interactions, self._payloads).add_routes(app, API_PREFIX)
        self._cdn.add_routes(app)
        app.router.add_get("/gateway", self._gateway.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self._cdn.base_url = self.base_url
        self._gateway.url = f"ws://{host}:{port}/gateway"
        log.info("Discord double listening on %s", self.base_url)
        return self

    async def close(self) -> None:
        await self._gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordDouble:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- identity and settings ---------------------------------------------------------
    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self._gateway.url

    @property
    def bot_user_id(self) -> int:
        return self._state.bot_user_id

    @property
    def application_id(self) -> int:
        return self._state.application_id

    @property
    def interaction_deadline(self) -> float:
        """Seconds from invoke within which the first response must arrive (404/10062 after)."""
        return self._state.settings.interaction_deadline

    @interaction_deadline.setter
    def interaction_deadline(self, seconds: float) -> None:
        self._state.settings.interaction_deadline = seconds

    @property
    def interaction_token_ttl(self) -> float:
        """Seconds from invoke during which token routes work (401/50027 after)."""
        return self._state.settings.interaction_token_ttl

    @interaction_token_ttl.setter
    def interaction_token_ttl(self, seconds: float) -> None:
        self._state.settings.interaction_token_ttl = seconds

    @property
    def privileged_intents_enabled(self) -> bool:
        """False simulates an operator who did not enable privileged intents (close 4014)."""
        return self._gateway.privileged_intents_enabled

    @privileged_intents_enabled.setter
    def privileged_intents_enabled(self, enabled: bool) -> None:
        self._gateway.privileged_intents_enabled = enabled

    @property
    def heartbeat_interval_ms(self) -> int:
        return self._gateway.heartbeat_interval_ms

    @heartbeat_interval_ms.setter
    def heartbeat_interval_ms(self, value: int) -> None:
        self._gateway.heartbeat_interval_ms = value

    @property
    def identified_intents(self) -> int | None:
        """Intents of the latest IDENTIFY (None before any)."""
        return self._gateway.identified_intents

    @property
    def sessions(self) -> list[GatewaySession]:
        return list(self._gateway.sessions.values())

    # -- guild setup ---------------------------------------------------------------------
    def add_guild(
        self,
        name: str,
        premium_tier: int = 0,
        *,
        owner_id: int | None = None,
        shard_id: int | None = None,
    ) -> int:
        """Create a guild (with @everyone, the bot's role, an owner and the bot as members).

        ``shard_id`` picks an id that ``(id >> 22) % shard_count`` maps to that shard.
        GUILD_CREATE goes to a connected bot at once.
        """
        shard = None if shard_id is None else (shard_id, self.shard_count)
        return self._ops.add_guild(
            name, premium_tier=premium_tier, owner_id=owner_id, shard=shard
        ).id

    def add_channel(self, guild_id: int, name: str, *, topic: str | None = None) -> int:
        return self._ops.add_channel(self._state.guilds[guild_id], name, topic=topic).id

    def add_role(self, guild_id: int, name: str, permissions: int = 0) -> int:
        return self._ops.add_role(self._state.guilds[guild_id], name, permissions).id

    def add_member(
        self,
        guild_id: int,
        name: str,
        roles: Sequence[int] | None = None,
        permissions: int | None = None,
        *,
        user_id: int | None = None,
        bot: bool = False,
    ) -> int:
        """Add a member; ``user_id`` re-uses an existing user (e.g. one in another guild).

        ``permissions`` overrides the role-computed guild permissions sent in
        interactions (``member.permissions``).
        """
        user = (
            self._state.users[user_id] if user_id is not None else self._ops.add_user(name, bot=bot)
        )
        guild = self._state.guilds[guild_id]
        self._ops.add_member(guild, user, roles=list(roles or []), permissions=permissions)
        return user.id

    def set_upload_limit(
        self, guild_id: int, limit: int | None = None, *, premium_tier: int | None = None
    ) -> None:
        """Set the per-file limit REST enforces in this guild (413, code 40005 above it).

        ``limit=None`` goes back to the tier default (0/1: 10 MiB, 2: 50 MiB,
        3: 100 MiB). ``premium_tier`` also changes the tier and sends
        GUILD_UPDATE, since discord.py's ``Guild.filesize_limit`` is derived
        from the tier, not from this override.
        """
        guild = self._state.guilds[guild_id]
        guild.upload_limit_override = limit
        if premium_tier is not None:
            self._ops.set_premium_tier(guild, premium_tier)
        self._notifier.notify()

    def delete_channel(self, channel_id: int) -> None:
        """Delete a channel or thread; REST on it then answers 404 code 10003."""
        self._ops.delete_channel(self._state.channels[channel_id])

    def forget_nonces(self) -> None:
        """As if Discord's nonce window had passed: a repeated nonce posts a new message."""
        self._state.nonces.clear()

    def expire_attachment_urls(self) -> None:
        """Every CDN URL issued so far now 404s; payloads built later carry fresh URLs."""
        self._cdn.expire_all()
        self._notifier.notify()

    # -- commands -------------------------------------------------------------------------
    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """Commands as recorded from the bot's sync (global, or for one guild)."""
        return self._registry.in_scope(guild_id)

    # -- users' actions --------------------------------------------------------------------
    async def wait_for_gateway(
        self,
        guild_id: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the test-facing API
    ) -> GatewaySession:
        """Wait until a connected session owns ``guild_id``'s shard (any session if None)."""
        return await self.wait_for(
            lambda: self._gateway.live_session_for(guild_id),
            timeout=timeout,
            description=f"a gateway session owning guild {guild_id} (is the bot connected?)",
        )

    async def invoke(
        self,
        command: str,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        options: Mapping[str, Any] | None = None,
        attachments: Mapping[str, AttachmentSpec] | None = None,
        locale: str = "en-US",
        connect_timeout: float = 5.0,
    ) -> Interaction:
        """Send a slash command (``"animate"`` or ``"quota set"``) to the bot.

        Options are typed and checked against the schema the bot synced;
        ``attachments`` maps attachment options to ``(filename, bytes, content_type)``.
        Returns once INTERACTION_CREATE was written to the bot's socket.
        """
        await self.wait_for_gateway(guild_id, timeout=connect_timeout)
        interaction = self._interactions.create(
            command,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            options=options or {},
            attachments=attachments or {},
            locale=locale,
        )
        self._gateway.dispatch("INTERACTION_CREATE", interaction.payload, guild_id=guild_id)
        await self._gateway.flush()
        return interaction

    async def autocomplete(
        self,
        command: str,
        *,
        focused: str,
        guild_id: int,
        channel_id: int,
        user_id: int,
        options: Mapping[str, Any] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the test-facing API
    ) -> list[dict[str, Any]]:
        """Send an autocomplete (type 4) interaction; return the bot's choices."""
        await self.wait_for_gateway(guild_id, timeout=timeout)
        interaction = self._interactions.create(
            command,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            options=options or {},
            attachments={},
            focused=focused,
        )
        self._gateway.dispatch("INTERACTION_CREATE", interaction.payload, guild_id=guild_id)
        await self._gateway.flush()
        await interaction.wait_for_response(timeout=timeout)
        return list(interaction.autocomplete_choices or [])

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int,
        values: Sequence[str] | None = None,
        connect_timeout: float = 5.0,
    ) -> Interaction:
        """A member clicks a button (or picks ``values`` in a select) on a message.

        Sends MESSAGE_COMPONENT (type 3) with the message as Discord does; refuses a
        ``custom_id`` the message does not carry (Discord shows no such component).
        """
        message = self._state.messages[message_id]
        component = find_component(message.components, custom_id)
        if component is None:
            raise ValueError(f"message {message_id} has no component {custom_id!r}")
        channel = self._state.channels[message.channel_id]
        await self.wait_for_gateway(channel.guild_id, timeout=connect_timeout)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = list(values)
        interaction = self._interactions.create_from_message(
            3,
            message,
            guild_id=channel.guild_id,
            channel_id=channel.id,
            user_id=user_id,
            data=data,
        )
        self._gateway.dispatch("INTERACTION_CREATE", interaction.payload, guild_id=channel.guild_id)
        await self._gateway.flush()
        return interaction

    async def submit_modal(
        self,
        opened_by: Interaction,
        values: Mapping[str, str],
        *,
        connect_timeout: float = 5.0,
    ) -> Interaction:
        """The member who got ``opened_by``'s modal submits it (MODAL_SUBMIT, type 5).

        ``values`` maps the modal's text inputs' custom ids to what was typed.
        """
        modal = opened_by.modal
        if modal is None:
            raise ValueError(f"interaction {opened_by.id} was not answered with a modal")
        rows = []
        for row in modal.get("components") or []:
            # Action rows of text inputs, or Components V2 labels wrapping one.
            inner = row.get("components") or ([row["component"]] if "component" in row else [])
            fields = [
                {
                    "type": c.get("type", 4),
                    "custom_id": c["custom_id"],
                    "value": values.get(c["custom_id"], ""),
                }
                for c in inner
                if "custom_id" in c
            ]
            rows.append({"type": row.get("type", 1), "components": fields})
        assert opened_by.guild_id is not None
        await self.wait_for_gateway(opened_by.guild_id, timeout=connect_timeout)
        source = (
            None
            if opened_by.source_message_id is None
            else self._state.messages[opened_by.source_message_id]
        )
        interaction = self._interactions.create_from_message(
            5,
            source,
            guild_id=opened_by.guild_id,
            channel_id=opened_by.channel_id,
            user_id=opened_by.user_id,
            data={"custom_id": modal.get("custom_id", ""), "components": rows},
        )
        self._gateway.dispatch(
            "INTERACTION_CREATE", interaction.payload, guild_id=opened_by.guild_id
        )
        await self._gateway.flush()
        return interaction

    async def message_command(
        self,
        name: str,
        message_id: int,
        *,
        user_id: int,
        connect_timeout: float = 5.0,
    ) -> Interaction:
        """A member picks the message context-menu command ``name`` (Apps → name) on a
        message: APPLICATION_COMMAND (type 2) with ``data.type`` 3, ``target_id`` and
        ``resolved.messages``, as Discord sends it."""
        message = self._state.messages[message_id]
        channel = self._state.channels[message.channel_id]
        await self.wait_for_gateway(channel.guild_id, timeout=connect_timeout)
        interaction = self._interactions.create_message_command(
            name, message, guild_id=channel.guild_id, user_id=user_id
        )
        self._gateway.dispatch("INTERACTION_CREATE", interaction.payload, guild_id=channel.guild_id)
        await self._gateway.flush()
        return interaction

    async def redeliver(self, interaction: Interaction) -> None:
        """Send ``interaction``'s INTERACTION_CREATE again, same id and token: Discord
        can deliver an event twice (a resumed session replays it). Only the first
        response is accepted (a second is 400 / 40060)."""
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        self._gateway.dispatch("INTERACTION_CREATE", interaction.payload, guild_id=guild_id)
        await self._gateway.flush()

    async def post_user_message(
        self,
        channel_id: int,
        user_id: int,
        content: str = "",
        attachments: Sequence[AttachmentSpec] = (),
    ) -> int:
        """A member posts in a channel or thread (MESSAGE_CREATE); returns the message id."""
        channel = self._ops.channel(channel_id)
        if user_id not in self._state.guilds[channel.guild_id].members:
            raise ValueError(f"user {user_id} is not a member of guild {channel.guild_id}")
        files = [
            UploadedFile(i, name, data, ctype) for i, (name, data, ctype) in enumerate(attachments)
        ]
        payload = {
            "content": content,
            "attachments": [{"id": i, "filename": f.filename} for i, f in enumerate(files)],
        }
        message = self._ops.create_message(
            channel,
            user_id,
            MessageBody(payload, files),
            upload_limit=self._ops.upload_limit(channel),
        )
        await self._gateway.flush()
        return message.id

    async def add_reaction(
        self, channel_id: int, message_id: int, user_id: int, emoji: str
    ) -> None:
        """A member reacts (MESSAGE_REACTION_ADD with guild_id and member)."""
        channel = self._ops.channel(channel_id)
        self._ops.add_reaction(self._ops.message(channel, message_id), user_id, emoji)
        await self._gateway.flush()

    async def remove_reaction(
        self, channel_id: int, message_id: int, user_id: int, emoji: str
    ) -> None:
        channel = self._ops.channel(channel_id)
        self._ops.remove_reaction(self._ops.message(channel, message_id), user_id, emoji)
        await self._gateway.flush()

    async def disconnect_gateway(self, code: int = 4000, *, invalidate: bool = False) -> None:
        """Drop every gateway socket; discord.py then RESUMEs (events in between are replayed)."""
        await self._gateway.disconnect(code, invalidate=invalidate)

    # -- state views ------------------------------------------------------------------------
    def messages(self, channel_id: int) -> list[Message]:
        """Live (not deleted, not ephemeral) messages of a channel or thread, oldest first."""
        channel = self._state.channels[channel_id]
        return [self._state.messages[i] for i in channel.message_ids]

    def message(self, message_id: int) -> Message:
        return self._state.messages[message_id]

    def channel(self, channel_id: int) -> Channel:
        return self._state.channels[channel_id]

    def threads(self, parent_channel_id: int) -> list[Channel]:
        return [
            c
            for c in self._state.channels.values()
            if c.parent_id == parent_channel_id and c.is_thread and not c.deleted
        ]

    @property
    def interactions(self) -> list[Interaction]:
        return list(self._state.interactions.values())

    @property
    def request_log(self) -> list[LoggedRequest]:
        """``(method, path, status)`` per request; API paths are relative to /api/v10."""
        return list(self._requests)

    # -- waiting and faults ---------------------------------------------------------------------
    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the test-facing API
        description: str | None = None,
    ) -> T:
        """Return ``predicate()``'s first truthy value; re-checked on every state change."""
        return await self._notifier.wait_for(
            predicate, timeout=timeout, description=description, context=self._summary
        )

    def fail_next(
        self,
        method: str = "POST",
        path_regex: str = r".*",
        status: int = 429,
        times: int = 1,
        retry_after: float = 0.2,
        *,
        is_global: bool = False,
        code: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """Fail the next ``times`` API requests whose path (relative to /api/v10) matches.

        429 comes with ``Via``, ``X-RateLimit-*`` and a JSON body, so discord.py
        waits ``retry_after`` and retries; 500/502 are retried by discord.py,
        503 is not; 403 is code 50013, 404 is code 10003 unless ``code`` is given.
        """
        return self._faults.add(
            method=method,
            path_regex=path_regex,
            status=status,
            times=times,
            retry_after=retry_after,
            is_global=is_global,
            code=code,
            message=message,
        )

    # -- limit refusals -------------------------------------------------------------------------
    @property
    def form_refusals(self) -> list[FormRefusal]:
        """Every request the double itself answered 400/50035 (injected faults excluded)."""
        return list(self._refusals)

    @property
    def limit_refusals(self) -> list[FormRefusal]:
        """The form refusals that were for one of Discord's limits (DISCORD.md §6)."""
        return [r for r in self._refusals if r.for_limit]

    def expect_limit_refusals(self) -> None:
        """Declare that this test makes the bot (or itself) exceed a limit on purpose."""
        self._limit_refusals_expected = True

    def unexpected_limit_refusals(self) -> list[FormRefusal]:
        return [] if self._limit_refusals_expected else self.limit_refusals

    def assert_no_limit_refusals(self) -> None:
        """Fail if a request was refused for a limit and the test did not expect one."""
        unexpected = self.unexpected_limit_refusals()
        if unexpected:
            lines = "\n".join(f"  {r.describe()}" for r in unexpected)
            raise AssertionError(
                f"Discord would have refused {len(unexpected)} request(s) for a limit "
                f"(call expect_limit_refusals() if the test means it):\n{lines}"
            )

    # -- internals ------------------------------------------------------------------------------
    def _refused(self, refusal: FormRefusal) -> None:
        log.warning("Discord double refused: %s", refusal.describe())
        self._refusals.append(refusal)
        self._notifier.notify()

    def _record(self, method: str, path: str, status: int) -> None:
        self._requests.append(LoggedRequest(method, path, status))
        self._notifier.notify()

    def _summary(self) -> str:
        recent = "\n".join(f"  {m} {p} -> {s}" for m, p, s in self._requests[-10:]) or "  (none)"
        sessions = (
            ", ".join(
                f"shard {s.shard_id}/{s.shard_count} {'up' if s.connected else 'down'}"
                for s in self._gateway.sessions.values()
            )
            or "none"
        )
        return f"gateway sessions: {sessions}\nlast requests:\n{recent}"
