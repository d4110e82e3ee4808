"""The bot: the Discord client, on the services :func:`reelbot.wiring.wire` builds.

It owns no resource: the entry point (``bot.py``, the test harness) opens the HTTP
sessions and the store, hands them over, and closes them after :meth:`Reelbot.close`
returns. ``setup_hook`` loads the cogs, syncs commands, starts the worker and the
servers; ``close`` stops the worker first (in-flight store writes finish), then
Discord, then the servers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from providers.base import Provider
from reelbot.callbacks import CallbackServer
from reelbot.characters.service import Characters
from reelbot.config import DEFAULT_API_BASE, Config
from reelbot.failover.book import HealthBook
from reelbot.generations.service import Generations, UserError
from reelbot.jobs.delivery import Delivery
from reelbot.jobs.poller import Poller
from reelbot.ops.discordpy import silence_voice_warnings, throttle_ratelimit_sweep
from reelbot.ops.resources import Resources
from reelbot.ops.roles import ALL_IN_ONE, Role
from reelbot.store import Store
from reelbot.text import clip, clip_message
from reelbot.wiring import Services, prepare, wire

log = logging.getLogger(__name__)

COGS = (
    "cogs.animate",
    "cogs.actions",
    "cogs.quota",
    "cogs.jobs",
    "cogs.characters",
    "cogs.settings",
    "cogs.providers",
)


class Reelbot(commands.AutoShardedBot):
    def __init__(
        self, config: Config, resources: Resources, *, role: Role = ALL_IN_ONE, **options: Any
    ) -> None:
        intents = discord.Intents.default()
        # /character collects reference photos posted in a thread: reading attachments
        # of members' messages needs the privileged Message Content intent.
        intents.message_content = True
        options.setdefault("chunk_guilds_at_startup", False)
        silence_voice_warnings()
        if role.shard_ids is not None:
            options.update(shard_ids=list(role.shard_ids), shard_count=role.shard_count)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.config = config
        throttle_ratelimit_sweep()
        self.role = role
        self.services: Services = wire(config, role, resources, client=self)

    # What the cogs use, read-only: the services are connected once, in wire().
    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def providers(self) -> dict[str, Provider]:
        return self.services.providers

    @property
    def health_book(self) -> HealthBook:
        return self.services.health_book

    @property
    def delivery(self) -> Delivery:
        return self.services.delivery

    @property
    def poller(self) -> Poller:
        return self.services.poller

    @property
    def characters(self) -> Characters:
        return self.services.characters

    @property
    def generations(self) -> Generations:
        return self.services.generations

    @property
    def callbacks(self) -> CallbackServer | None:
        return self.services.callbacks

    async def setup_hook(self) -> None:
        config, role, services = self.config, self.role, self.services
        if config.discord_api_base != DEFAULT_API_BASE:
            # A plain gateway default would go to discord.gg; ask the API instead.
            gateway = await self.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway[1])
        await prepare(services, role)
        if role.gateway:
            self.tree.error(self.on_app_command_error)
            self.tree.interaction_check = _guild_only  # type: ignore[method-assign]
            for cog in COGS:
                await self.load_extension(cog)
            if role.syncs_commands:
                await self.sync_commands()
        if role.worker:
            await services.worker.start()
        if services.callbacks is not None:
            await services.callbacks.start()
        if services.health is not None:
            await services.health.start()
        log.info("running as %s", role.name)

    async def sync_commands(self) -> None:
        if self.config.guild_ids:
            for gid in self.config.guild_ids:
                guild = discord.Object(gid)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), gid)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (%s) to %d guild(s)",
            self.user,
            getattr(self.user, "id", "?"),
            len(self.guilds),
        )

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserError):
            text = str(original)
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = "This command only works in a server channel, not in DMs."
        elif isinstance(error, app_commands.TransformerError):
            text = f"`{clip(str(error.value), 100)}` is not a valid value for that option."
        elif isinstance(error, app_commands.CheckFailure):
            text = "You are not allowed to use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command /%s failed for user %s in guild %s",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=original,
            )
            text = "Something went wrong on my side. It has been logged; please try again."
        await self._reply_ephemeral(interaction, text)

    @staticmethod
    async def _reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
        try:
            # Refusals quote what members typed: keep them within Discord's limit.
            content = clip_message(text)
            if interaction.response.is_done():
                await interaction.edit_original_response(content=content)
            else:
                await interaction.response.send_message(content, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not send an error reply to interaction %s", interaction.id)

    async def close(self) -> None:
        """Stop taking work and let in-flight writes finish, then leave Discord and stop
        the servers. The store and the sessions stay open: the entry that opened them
        closes them once this returns."""
        await self.services.worker.stop()
        await super().close()
        if self.callbacks is not None:
            await self.callbacks.close()
        if self.services.health is not None:
            await self.services.health.close()
        log.info("stopped cleanly at %s", time.strftime("%H:%M:%S"))


async def _guild_only(interaction: discord.Interaction) -> bool:
    """Every command works in a server only. ``guild_only`` merely asks Discord to hide
    them in DMs; a stale client or a user install can still send one, so refuse it here
    (NoPrivateMessage becomes an ephemeral reply) before any command code runs."""
    if interaction.guild_id is not None:
        return True
    if interaction.type is discord.InteractionType.autocomplete:
        return False  # nothing to offer, nothing to say
    raise app_commands.NoPrivateMessage()
