"""/settings: where /animate works, what it refuses, this server's defaults, and the
audit log. Thin: parse, call one ServerSettings method (reelbot/settings.py), reply."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.choices import choices
from cogs.replies import moderators_guild, reply
from reelbot.settings import ServerSettings

if TYPE_CHECKING:
    from reelbot.app import Reelbot

Words = app_commands.Range[str, 1, 1000]
Name = app_commands.Range[str, 1, 100]


@app_commands.guild_only()
class Settings(commands.GroupCog, group_name="settings", group_description="Server settings"):
    banned = app_commands.Group(
        name="banned-words", description="Moderators: words and phrases /animate refuses"
    )

    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot
        self.settings: ServerSettings = bot.generations.settings
        super().__init__()

    def _moderator(self, interaction: discord.Interaction) -> int:
        return moderators_guild(interaction, self.bot.config.moderator_role_ids)

    @app_commands.command(name="show", description="This server's settings")
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await reply(interaction, self.settings.show(interaction.guild_id))

    @app_commands.command(name="channel", description="Moderators: allow /animate in a channel")
    @app_commands.describe(
        channel="The channel (its threads included)",
        allowed="True: /animate works there; False: no longer (the last one lifts the limit)",
    )
    async def channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel, allowed: bool
    ) -> None:
        guild = self._moderator(interaction)
        await reply(
            interaction,
            self.settings.set_channel(guild, interaction.user.id, channel.id, allowed),
        )

    @banned.command(name="add", description="Moderators: ban words or phrases")
    @app_commands.describe(words="Comma-separated words or phrases")
    async def banned_add(self, interaction: discord.Interaction, words: Words) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.settings.add_words(guild, interaction.user.id, words))

    @banned.command(name="remove", description="Moderators: allow banned words again")
    @app_commands.describe(words="Comma-separated words or phrases")
    async def banned_remove(self, interaction: discord.Interaction, words: Words) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.settings.remove_words(guild, interaction.user.id, words))

    @banned.command(name="list", description="Moderators: the banned words and phrases")
    async def banned_list(self, interaction: discord.Interaction) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.settings.list_words(guild))

    @app_commands.command(name="defaults", description="Moderators: default provider and model")
    @app_commands.describe(
        provider="Provider for /animate without one (leave empty: the bot's default)",
        model="That provider's model (leave empty: its default)",
    )
    async def defaults(
        self,
        interaction: discord.Interaction,
        provider: Name | None = None,
        model: Name | None = None,
    ) -> None:
        guild = self._moderator(interaction)
        await reply(
            interaction, self.settings.set_defaults(guild, interaction.user.id, provider, model)
        )

    @defaults.autocomplete("provider")
    async def provider_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        pairs = ((p, p) for p in self.bot.providers if current.lower() in p.lower())
        return choices(pairs)

    @defaults.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        provider = self.bot.providers.get(getattr(interaction.namespace, "provider", "") or "")
        if provider is None:
            return []
        pairs = ((m, m) for m in provider.models() if current.lower() in m.lower())
        return choices(pairs)

    @app_commands.command(name="audit", description="Moderators: recent moderator actions")
    @app_commands.describe(page="Page (10 entries each, newest first)")
    async def audit(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 1000] = 1
    ) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.settings.audit_text(guild, page))


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Settings(bot))
