"""/character: create (collect photos in a thread), train, list, share, delete.
Thin: parse, call one Characters method (reelbot/characters/service.py), reply."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.choices import choices
from reelbot.characters.names import character_ref
from reelbot.characters.photos import MAX_IMAGES, MIN_IMAGES
from reelbot.generations.service import UserError
from reelbot.permissions import interaction_is_moderator
from reelbot.vocabulary import NO_PINGS

if TYPE_CHECKING:
    from reelbot.app import Reelbot

log = logging.getLogger(__name__)

# max_length of the string options (without one Discord accepts 6000 characters).
NewName = app_commands.Range[str, 1, 32]  # reelbot.characters.names.validate_name allows 32
Name = app_commands.Range[str, 1, 100]  # a name, or the id autocomplete sends
ProviderId = app_commands.Range[str, 1, 32]


@app_commands.guild_only()
class Characters(
    commands.GroupCog, group_name="character", group_description="Consistent people in videos"
):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot
        self.characters = bot.characters
        super().__init__()

    def _moderator(self, interaction: discord.Interaction) -> bool:
        return interaction_is_moderator(interaction, self.bot.config.moderator_role_ids)

    # --- create -------------------------------------------------------------------------------
    @app_commands.command(name="create", description="Start a character: post 20–50 photos")
    @app_commands.describe(name="A short name, e.g. Ava", provider="Who trains it")
    async def create(
        self, interaction: discord.Interaction, name: NewName, provider: ProviderId | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        channel = interaction.channel
        assert interaction.guild_id is not None
        if not isinstance(channel, discord.TextChannel):
            raise UserError("Run /character create in a text channel (not inside a thread).")
        character = await self.characters.open(
            channel,
            guild_id=interaction.guild_id,
            owner_id=interaction.user.id,
            name=name,
            provider_id=provider,
        )
        await interaction.edit_original_response(
            content=f"📸 Post {MIN_IMAGES}–{MAX_IMAGES} photos of the person in "
            f"<#{character.thread_id}>, then run `/character train name:{character.name}`."
        )

    @create.autocomplete("provider")
    async def provider_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return choices((p, p) for p in self.characters.training_providers() if current in p)

    # --- collecting photos ----------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        reply = await self.characters.photos_posted(message)
        if reply is None:
            return
        try:
            await message.reply(reply, mention_author=False, allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            log.info("thread %s: could not reply to posted photos", message.channel.id)

    # --- train --------------------------------------------------------------------------------
    @app_commands.command(name="train", description="Train a character from its photos")
    @app_commands.describe(name="Your character")
    async def train(self, interaction: discord.Interaction, name: Name) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        character, task = await self.characters.train(
            interaction.guild_id,
            interaction.user.id,
            name,
            is_moderator=self._moderator(interaction),
        )
        # The status message is posted by Generations, the one writer of a new task's row.
        thread = self.bot.get_partial_messageable(
            character.thread_id or interaction.channel_id, guild_id=interaction.guild_id
        )
        await self.bot.generations.post_status(thread, task, thread_id=character.thread_id)
        await interaction.edit_original_response(
            content=f"⏳ Training `{character.name}` — progress in <#{character.thread_id}> "
            f"(task #{task.id})."
        )

    # --- list / share / delete --------------------------------------------------------------------
    @app_commands.command(name="list", description="Your characters and the server's shared ones")
    async def list_(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        listing = await self.characters.listing(
            interaction.guild_id, interaction.user.id, moderator=self._moderator(interaction)
        )
        await interaction.response.send_message(listing, ephemeral=True, allowed_mentions=NO_PINGS)

    @app_commands.command(name="share", description="Moderators: let the whole server use it")
    @app_commands.describe(name="The character")
    async def share(self, interaction: discord.Interaction, name: Name) -> None:
        assert interaction.guild_id is not None
        character = await self.characters.share(
            interaction.guild_id,
            interaction.user.id,
            name,
            is_moderator=self._moderator(interaction),
        )
        await interaction.response.send_message(
            f"Everyone here can now use **{character.name}** in /animate.", ephemeral=True
        )

    @app_commands.command(name="delete", description="Delete a character and its photos")
    @app_commands.describe(name="Your character")
    async def delete(self, interaction: discord.Interaction, name: Name) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        character, remote = await self.characters.delete(
            interaction.guild_id,
            interaction.user.id,
            name,
            is_moderator=self._moderator(interaction),
        )
        where = " and the provider's model" if remote else ""
        await interaction.edit_original_response(
            content=f"Deleted **{character.name}**: its stored photos{where} are gone."
        )

    @train.autocomplete("name")
    @delete.autocomplete("name")
    @share.autocomplete("name")
    async def owned_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        assert interaction.guild_id is not None
        found = await self.characters.manageable(
            interaction.guild_id,
            interaction.user.id,
            current,
            moderator=self._moderator(interaction),
        )
        return choices((f"{c.name} ({c.state})", character_ref(c)) for c in found)


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Characters(bot))
