"""/quota: daily generation limits, shown to everyone and set by moderators."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from reelbot.permissions import interaction_is_moderator
from reelbot.service import UserError

if TYPE_CHECKING:
    from reelbot.app import Reelbot

MAX_LIMIT = 10_000


def _limit_text(limit: int) -> str:
    return "unlimited" if limit == 0 else f"{limit} per day"


@app_commands.guild_only()
class Quota(commands.GroupCog, group_name="quota", group_description="Daily generation limits"):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot
        super().__init__()

    def _require_moderator(self, interaction: discord.Interaction) -> None:
        if not interaction_is_moderator(interaction, self.bot.config.moderator_role_ids):
            raise UserError("Only moderators (Manage Server, or a moderator role) can do that.")

    async def _audit(
        self, interaction: discord.Interaction, action: str, target: int | None, details: str
    ) -> None:
        assert interaction.guild_id is not None
        await self.bot.store.audit(
            interaction.guild_id,
            interaction.user.id,
            action,
            target_id=target,
            details=details,
            now=time.time(),
        )

    @app_commands.command(name="show", description="Today's usage and limit")
    @app_commands.describe(user="Whose quota to show (moderators only for others)")
    async def show(
        self, interaction: discord.Interaction, user: discord.Member | None = None
    ) -> None:
        assert interaction.guild_id is not None
        target = user or interaction.user
        if target.id != interaction.user.id:
            self._require_moderator(interaction)
        store, now = self.bot.store, time.time()
        status = await store.quota_status(
            interaction.guild_id, target.id, now=now, default_limit=self.bot.config.daily_quota
        )
        usage = await store.usage_summary(interaction.guild_id, target.id)
        whose = "You have" if target.id == interaction.user.id else f"{target.mention} has"
        limit = "no daily limit" if status.limit == 0 else f"a limit of {status.limit}"
        lines = [
            f"{whose} used **{status.used}** generation(s) today, with {limit} "
            f"({status.source} setting). Resets <t:{int(status.resets_at)}:R>.",
            f"All time: {usage.tasks} task(s)"
            + (f", {usage.credits:g} provider credits" if usage.credits else "")
            + ".",
        ]
        if usage.by_provider and usage.credits:
            lines.append(
                "Credits by provider: "
                + ", ".join(f"{p} {c:g}" for p, c in sorted(usage.by_provider.items()) if c)
            )
        await interaction.response.send_message(
            "\n".join(lines), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="set", description="Moderators: a member's daily limit")
    @app_commands.describe(user="The member", limit="Generations per UTC day (0 = unlimited)")
    async def set_(
        self,
        interaction: discord.Interaction,
        user: discord.Member,
        limit: app_commands.Range[int, 0, MAX_LIMIT],
    ) -> None:
        self._require_moderator(interaction)
        assert interaction.guild_id is not None
        await self.bot.store.set_user_limit(interaction.guild_id, user.id, limit)
        await self._audit(interaction, "quota_set", user.id, f"limit={limit}")
        await interaction.response.send_message(
            f"{user.mention} can now make {_limit_text(limit)}.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="default", description="Moderators: the server's default limit")
    @app_commands.describe(limit="Generations per member per UTC day (0 = unlimited)")
    async def default(
        self, interaction: discord.Interaction, limit: app_commands.Range[int, 0, MAX_LIMIT]
    ) -> None:
        self._require_moderator(interaction)
        assert interaction.guild_id is not None
        await self.bot.store.set_guild_default(interaction.guild_id, limit)
        await self._audit(interaction, "quota_default", None, f"limit={limit}")
        await interaction.response.send_message(
            f"Members without their own limit can now make {_limit_text(limit)}.",
            ephemeral=True,
        )

    @app_commands.command(name="reset", description="Moderators: clear a member's usage today")
    @app_commands.describe(user="The member")
    async def reset(self, interaction: discord.Interaction, user: discord.Member) -> None:
        self._require_moderator(interaction)
        assert interaction.guild_id is not None
        before = await self.bot.store.reset_usage(interaction.guild_id, user.id, now=time.time())
        await self._audit(interaction, "quota_reset", user.id, f"was={before}")
        await interaction.response.send_message(
            f"Cleared {user.mention}'s usage today (was {before}).",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Quota(bot))
