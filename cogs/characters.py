"""/character: create (collect photos in a thread), train, list, share, delete."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.choices import choices
from reelbot import text
from reelbot.characters.service import MAX_IMAGES, MIN_IMAGES, character_ref, panel_text
from reelbot.generations.service import UserError
from reelbot.permissions import interaction_is_moderator
from reelbot.vocabulary import NO_PINGS

if TYPE_CHECKING:
    from reelbot.app import Reelbot

log = logging.getLogger(__name__)

STATE_ICONS = {"collecting": "📸", "training": "⏳", "ready": "✅", "failed": "❌"}
# max_length of the string options (without one Discord accepts 6000 characters).
NewName = app_commands.Range[str, 1, 32]  # reelbot.characters.service.validate_name allows 32
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

    async def _own_or_visible(
        self, interaction: discord.Interaction, current: str, *, moderator_sees_all: bool
    ) -> list[app_commands.Choice[str]]:
        assert interaction.guild_id is not None
        moderator = moderator_sees_all and self._moderator(interaction)
        found = await self.characters.visible(
            interaction.guild_id, interaction.user.id, moderator=moderator
        )
        mine_only = [c for c in found if c.owner_id == interaction.user.id or moderator]
        return choices(
            (f"{c.name} ({c.state})", character_ref(c))
            for c in mine_only
            if current.lower() in c.name.lower()
        )

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
        character = await self.characters.create(
            guild_id=interaction.guild_id,
            owner_id=interaction.user.id,
            name=name,
            provider_id=provider,
        )
        try:
            thread = await channel.create_thread(
                name=text.clip_thread_name(f"Character: {character.name}", "Character"),
                type=discord.ChannelType.public_thread,
                auto_archive_duration=text.archive_duration(1440),
            )
            panel = await thread.send(panel_text(character), allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            await self.bot.store.delete_character(character.id)
            raise UserError("I can't open a thread here (missing permissions?).") from exc
        await self.bot.store.update_character(
            character.id, thread_id=thread.id, panel_message_id=panel.id
        )
        await interaction.edit_original_response(
            content=f"📸 Post {MIN_IMAGES}–{MAX_IMAGES} photos of the person in <#{thread.id}>, "
            f"then run `/character train name:{character.name}`."
        )

    @create.autocomplete("provider")
    async def provider_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return choices((p, p) for p in self.characters.training_providers() if current in p)

    # --- collecting photos ----------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or not isinstance(message.channel, discord.Thread):
            return
        if not message.attachments:
            return
        character = await self.bot.store.character_by_thread(message.channel.id)
        if character is None or character.owner_id != message.author.id:
            return
        if character.state not in ("collecting", "failed"):
            return
        result = await self.characters.collect(character, message)
        updated = await self.bot.store.get_character(character.id)
        assert updated is not None
        await self.characters.refresh_panel(updated)
        parts = [f"Got {result.added} new photo(s) — {updated.image_count} in total."]
        if result.duplicates:
            parts.append(f"{result.duplicates} duplicate(s) skipped.")
        if result.full:
            parts.append(f"{result.full} over the {MAX_IMAGES}-photo limit skipped.")
        if result.problems:
            parts.append("Not used: " + "; ".join(result.problems[:10]) + ".")
        try:
            await message.reply(
                text.clip_message(" ".join(parts)), mention_author=False, allowed_mentions=NO_PINGS
            )
        except discord.HTTPException:
            log.info("character %s: could not reply in the thread", character.id)

    # --- train --------------------------------------------------------------------------------
    @app_commands.command(name="train", description="Train a character from its photos")
    @app_commands.describe(name="Your character")
    async def train(self, interaction: discord.Interaction, name: Name) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        character = await self.characters.find(interaction.guild_id, interaction.user.id, name)
        if character.owner_id != interaction.user.id:
            raise UserError("Only the character's owner can train it.")
        task = await self.characters.start_training(
            character, is_moderator=self._moderator(interaction)
        )
        thread = self.bot.get_partial_messageable(
            character.thread_id or interaction.channel_id, guild_id=interaction.guild_id
        )
        await self.bot.generations.post_status(thread, task, thread_id=character.thread_id)
        await self.characters.refresh_panel(await self.bot.store.get_character(character.id))
        await interaction.edit_original_response(
            content=f"⏳ Training `{character.name}` — progress in <#{character.thread_id}> "
            f"(task #{task.id})."
        )

    # --- list / share / delete --------------------------------------------------------------------
    @app_commands.command(name="list", description="Your characters and the server's shared ones")
    async def list_(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        moderator = self._moderator(interaction)
        found = await self.characters.visible(
            interaction.guild_id, interaction.user.id, moderator=moderator
        )
        if not found:
            listing = "No characters yet. Start one with `/character create`."
        else:
            lines = []
            for c in found:
                shared = " · shared" if c.shared else ""
                owner = "" if c.owner_id == interaction.user.id else f" · by <@{c.owner_id}>"
                lines.append(
                    f"{STATE_ICONS.get(c.state, '')} **{c.name}** ({c.state}, "
                    f"{c.image_count} photos, {c.provider}{shared}){owner}"
                )
            listing = "\n".join(lines)
        await interaction.response.send_message(
            text.clip_message(listing), ephemeral=True, allowed_mentions=NO_PINGS
        )

    @app_commands.command(name="share", description="Moderators: let the whole server use it")
    @app_commands.describe(name="The character")
    async def share(self, interaction: discord.Interaction, name: Name) -> None:
        assert interaction.guild_id is not None
        if not self._moderator(interaction):
            raise UserError("Only moderators (Manage Server, or a moderator role) can do that.")
        character = await self.characters.find(
            interaction.guild_id, interaction.user.id, name, moderator=True
        )
        await self.bot.store.update_character(character.id, shared=True)
        await self.bot.store.audit(
            interaction.guild_id,
            interaction.user.id,
            "character_share",
            target_id=character.owner_id,
            details=f"character #{character.id}",
            now=time.time(),
        )
        await interaction.response.send_message(
            f"Everyone here can now use **{character.name}** in /animate.", ephemeral=True
        )

    @app_commands.command(name="delete", description="Delete a character and its photos")
    @app_commands.describe(name="Your character")
    async def delete(self, interaction: discord.Interaction, name: Name) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.guild_id is not None
        moderator = self._moderator(interaction)
        character = await self.characters.find(
            interaction.guild_id, interaction.user.id, name, moderator=moderator
        )
        if character.owner_id != interaction.user.id and not moderator:
            raise UserError("Only the character's owner (or a moderator) can delete it.")
        remote = await self.characters.delete(character)
        if character.owner_id != interaction.user.id:
            await self.bot.store.audit(
                interaction.guild_id,
                interaction.user.id,
                "character_delete",
                target_id=character.owner_id,
                details=f"character #{character.id}",
                now=time.time(),
            )
        where = " and the provider's model" if remote else ""
        await interaction.edit_original_response(
            content=f"Deleted **{character.name}**: its stored photos{where} are gone."
        )

    @train.autocomplete("name")
    @delete.autocomplete("name")
    async def owned_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._own_or_visible(interaction, current, moderator_sees_all=True)

    @share.autocomplete("name")
    async def share_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self._own_or_visible(interaction, current, moderator_sees_all=True)


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Characters(bot))
