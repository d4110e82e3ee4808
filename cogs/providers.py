"""/providers: every configured provider's health (SPEC §3, §4 "Failover")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from reelbot import messages
from reelbot.text import clip_message

if TYPE_CHECKING:
    from reelbot.app import Reelbot

ICONS = {"up": "🟢", "degraded": "🟡", "down": "🔴"}
ERROR_LIMIT = 120  # characters of a provider's last error shown


def provider_line(row: Mapping[str, Any]) -> str:
    pid = row["provider"]
    parts = [f"{ICONS.get(row['state'], '⚪')} **{pid}** — {row['text']}"]
    rate = row.get("success_rate")
    if rate is not None:
        parts.append(f"{round(rate * 100)}% of the last {row['samples']} calls went well")
    else:
        parts.append("too few recent calls for a success rate")
    typical = row.get("typical_seconds")
    if typical is not None:
        parts.append(f"a video usually takes about {messages.format_duration(typical)}")
    else:
        parts.append("no typical time yet")
    line = " · ".join(parts)
    if row.get("out_of_credits"):
        line += (
            f"\n  ⚠️ {pid} is out of credits: moderators, ask the operator to top up "
            f"the {pid} account."
        )
    elif row["state"] != "up" and row.get("last_error"):
        line += f"\n  last error: `{messages.preview(row['last_error'], ERROR_LIMIT)}`"
    return line


def providers_text(rows: Sequence[Mapping[str, Any]], failover: Sequence[str]) -> str:
    if not rows:
        return "No video provider is configured on this bot yet."
    lines = ["**Video providers**", *(provider_line(r) for r in rows)]
    if failover:
        lines.append(
            "-# A request that names no provider goes, when its provider is down, to the "
            f"first of {', '.join(failover)} that is up."
        )
    else:
        lines.append("-# Failover is off: a request waits for its own provider.")
    return "\n".join(lines)


class Providers(commands.Cog):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot

    @app_commands.command(
        name="providers", description="Which video providers are up, and how they are doing"
    )
    @app_commands.guild_only()
    async def providers(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        rows = await self.bot.health_book.rows()
        await interaction.edit_original_response(
            content=clip_message(providers_text(rows, self.bot.config.failover_providers)),
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Providers(bot))
