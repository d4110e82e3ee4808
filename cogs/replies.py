"""What the moderator cogs (/quota, /settings) share: the moderator gate and the reply."""

from __future__ import annotations

from collections.abc import Awaitable

import discord

from reelbot import text
from reelbot.generations.validation import UserError
from reelbot.permissions import ONLY_MODERATORS, interaction_is_moderator
from reelbot.settings import SettingsError
from reelbot.vocabulary import NO_PINGS


def moderators_guild(interaction: discord.Interaction, moderator_role_ids: frozenset[int]) -> int:
    """The guild a moderator acts on; UserError (an ephemeral refusal) for anyone else."""
    if not interaction_is_moderator(interaction, moderator_role_ids):
        raise UserError(ONLY_MODERATORS)
    assert interaction.guild_id is not None
    return interaction.guild_id


async def reply(interaction: discord.Interaction, answer: Awaitable[str]) -> None:
    """The service's answer, ephemeral; its refusal (SettingsError) as a UserError."""
    try:
        words = await answer
    except SettingsError as exc:
        raise UserError(str(exc)) from exc
    await interaction.response.send_message(
        text.clip_message(words), ephemeral=True, allowed_mentions=NO_PINGS
    )
