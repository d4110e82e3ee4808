"""/quota: credits per day, shown to everyone and set by moderators. Thin: parse,
call one Spending method (reelbot/spending.py), reply."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.choices import choices
from cogs.replies import moderators_guild, reply
from reelbot.permissions import interaction_is_moderator
from reelbot.spending import Spending

if TYPE_CHECKING:
    from reelbot.app import Reelbot

MAX_LIMIT = 1_000_000
MAX_PRICE = 10_000


@app_commands.guild_only()
class Quota(commands.GroupCog, group_name="quota", group_description="Daily credit limits"):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot
        self.spending: Spending = bot.generations.spending
        super().__init__()

    def _is_moderator(self, interaction: discord.Interaction) -> bool:
        return interaction_is_moderator(interaction, self.bot.config.moderator_role_ids)

    def _moderator(self, interaction: discord.Interaction) -> int:
        return moderators_guild(interaction, self.bot.config.moderator_role_ids)

    @app_commands.command(name="show", description="Credits used today, your limit, the budget")
    @app_commands.describe(user="Whose usage to show (moderators only for others)")
    async def show(
        self, interaction: discord.Interaction, user: discord.Member | None = None
    ) -> None:
        assert interaction.guild_id is not None
        target = user or interaction.user
        own = target.id == interaction.user.id
        if not own:
            self._moderator(interaction)
        guild = interaction.guild

        def role_name(role_id: int) -> str | None:
            role = guild.get_role(role_id) if guild is not None else None
            return role.name if role is not None else None

        await reply(
            interaction,
            self.spending.show(
                interaction.guild_id,
                target.id,
                own=own,
                target_roles=[r.id for r in getattr(target, "roles", ())],
                role_name=role_name,
                is_moderator=self._is_moderator(interaction),
            ),
        )

    @app_commands.command(name="set", description="Moderators: a member's daily credit limit")
    @app_commands.describe(user="The member", limit="Credits per UTC day (0 = unlimited)")
    async def set_(
        self,
        interaction: discord.Interaction,
        user: discord.Member,
        limit: app_commands.Range[int, 0, MAX_LIMIT],
    ) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.spending.set_user(guild, interaction.user.id, user.id, limit))

    @app_commands.command(name="default", description="Moderators: the server's default limit")
    @app_commands.describe(limit="Credits per member per UTC day (0 = unlimited)")
    async def default(
        self, interaction: discord.Interaction, limit: app_commands.Range[int, 0, MAX_LIMIT]
    ) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.spending.set_default(guild, interaction.user.id, limit))

    @app_commands.command(name="role", description="Moderators: daily credit limit for a role")
    @app_commands.describe(
        role="Members with this role", limit="Credits per UTC day (0 = unlimited; empty = remove)"
    )
    async def role(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        limit: app_commands.Range[int, 0, MAX_LIMIT] | None = None,
    ) -> None:
        guild = self._moderator(interaction)
        await reply(
            interaction,
            self.spending.set_role(guild, interaction.user.id, role.id, role.name, limit),
        )

    @app_commands.command(name="server", description="Moderators: the server's daily budget")
    @app_commands.describe(limit="Credits everyone together may spend per UTC day (0 = unlimited)")
    async def server(
        self, interaction: discord.Interaction, limit: app_commands.Range[int, 0, MAX_LIMIT]
    ) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.spending.set_server(guild, interaction.user.id, limit))

    @app_commands.command(name="cost", description="Moderators: credits one generation costs")
    @app_commands.describe(provider="The provider", credits="Credits per generation")
    async def cost(
        self,
        interaction: discord.Interaction,
        provider: app_commands.Range[str, 1, 32],
        credits: app_commands.Range[int, 0, MAX_PRICE],
    ) -> None:
        guild = self._moderator(interaction)
        await reply(
            interaction,
            self.spending.set_cost(
                guild, interaction.user.id, provider, credits, offered=self.bot.providers
            ),
        )

    @cost.autocomplete("provider")
    async def provider_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        pairs = ((p, p) for p in self.bot.providers if current.lower() in p.lower())
        return choices(pairs)

    @app_commands.command(name="reset", description="Moderators: clear a member's usage today")
    @app_commands.describe(user="The member")
    async def reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        guild = self._moderator(interaction)
        await reply(interaction, self.spending.reset(guild, interaction.user.id, user.id))


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Quota(bot))
