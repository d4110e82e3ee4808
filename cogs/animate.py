"""/animate, and the 🔁 (run again) and ❌ (cancel) reactions on its messages."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs.choices import choices
from providers.base import Provider
from reelbot import messages, text
from reelbot.characters.names import character_ref
from reelbot.generations import posting
from reelbot.generations.request import VideoRequest
from reelbot.generations.service import AnimateRequest, UserError
from reelbot.motions import MotionCache
from reelbot.permissions import interaction_is_moderator, member_is_moderator
from reelbot.store.models import TaskRow
from reelbot.vocabulary import CANCEL_EMOJI, NO_PINGS, RETRY_EMOJI

if TYPE_CHECKING:
    from reelbot.app import Reelbot

log = logging.getLogger(__name__)

REACTION_DEDUP_WINDOW = 30.0  # seconds: a duplicated gateway event or a double click
# max_length of the string options: Discord accepts up to 6000 characters for a
# string option that declares none (SPEC §3: prompts are 1 to 2000).
PROMPT_MAX = 2000
NAME_MAX = 100  # model, character and motion names / ids
Prompt = app_commands.Range[str, 1, PROMPT_MAX]
Name = app_commands.Range[str, 1, NAME_MAX]
Choice = app_commands.Range[str, 1, 32]  # provider ids, aspect ratios, resolutions


class Animate(commands.Cog):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot
        self.generations = bot.generations
        self.motions = MotionCache()
        # Only configured providers are offered: the choices are known at start-up, not
        # when the class is defined, so the command is built with this instance.
        self.command = animate_command(self, list(bot.providers))

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.command)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.command.name)
        self.motions.close()

    async def animate(
        self,
        interaction: discord.Interaction,
        request: AnimateRequest,
        image: discord.Attachment | None,
    ) -> None:
        """/animate: acknowledge first (everything after may take longer than Discord's
        3 s), then start."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.start(interaction, request, image)

    async def start(
        self,
        interaction: discord.Interaction,
        request: AnimateRequest,
        image: discord.Attachment | None,
    ) -> TaskRow:
        """A new request, from /animate or the Animate context menu (already deferred):
        checked, recorded, posted in a new thread, then answered "On it"."""
        assert interaction.guild_id is not None and interaction.channel is not None
        chosen = None
        if request.character:
            chosen = await self.bot.characters.for_use(
                interaction.guild_id,
                interaction.user.id,
                request.character,
                provider=request.provider,
            )
            request = dataclasses.replace(request, provider=chosen.provider, character=chosen.name)
        provider_obj, stored = await self.generations.prepare(
            interaction.guild_id, request, character=chosen
        )
        upload = await self.generations.read_image(image) if image is not None else None
        channel = interaction.channel
        is_thread = isinstance(channel, discord.Thread)
        task = await self.generations.create(
            provider=provider_obj,
            request=stored,
            guild_id=interaction.guild_id,
            channel_id=channel.parent_id if is_thread and channel.parent_id else channel.id,
            requester_id=interaction.user.id,
            is_moderator=interaction_is_moderator(interaction, self.bot.config.moderator_role_ids),
            thread_id=channel.id if is_thread else None,
            image=upload,
            role_ids=[r.id for r in getattr(interaction.user, "roles", ())],
        )
        try:
            where = await posting.open_thread(
                channel,
                task_id=task.id,
                prompt=stored.prompt,
                author_name=interaction.user.display_name,
            )
            task = await self.generations.post_status(
                where, task, thread_id=where.id if isinstance(where, discord.Thread) else None
            )
        except discord.HTTPException as exc:
            log.warning("task %s: cannot post in channel %s (%s)", task.id, channel.id, exc.status)
            await self.generations.abandon(task, f"cannot post here ({exc.status})")
            if exc.status == 403:
                reason = (
                    "I can't post in this channel: I am missing a permission here "
                    "(Send Messages, Attach Files)."
                )
            else:
                reason = f"Discord did not take my message ({exc.status}); try again shortly."
            raise UserError(f"{reason} Your quota was not used.") from exc
        await interaction.edit_original_response(
            content=f"✅ On it! Follow your video in <#{task.reply_channel_id}> (task #{task.id})."
        )
        return task

    # --- autocomplete -------------------------------------------------------------------------
    def _chosen_provider(self, interaction: discord.Interaction) -> Provider | None:
        chosen = getattr(interaction.namespace, "provider", None)
        try:
            return self.generations.provider_for(chosen)
        except UserError:
            return None

    async def model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        provider = self._chosen_provider(interaction)
        if provider is None:
            return []
        needle = current.lower()
        # The provider choices are fixed when commands are synced; the models it lists
        # say when that provider is down right now (SPEC §4 "Failover").
        down = await self.bot.health_book.down(provider.id)
        mark = f"{provider.id} is down · " if down is not None else ""
        return choices((f"{mark}{m}", m) for m in provider.models() if needle in m.lower())

    async def motion_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        provider = self._chosen_provider(interaction)
        if provider is None or "motion" not in provider.capabilities.options:
            return []
        motions = await self.motions.lookup(provider, current)
        return choices((m.name, m.id) for m in motions)

    async def character_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        assert interaction.guild_id is not None
        usable = await self.bot.characters.usable(
            interaction.guild_id, interaction.user.id, current
        )
        return choices(
            (
                c.name if c.owner_id == interaction.user.id else f"{c.name} (shared)",
                character_ref(c),
            )
            for c in usable
        )

    # --- reactions ----------------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if payload.guild_id is None or self.bot.user is None:
            return
        if payload.user_id == self.bot.user.id:
            return
        emoji = str(payload.emoji)
        if emoji not in (RETRY_EMOJI, CANCEL_EMOJI):
            return
        task = await self.generations.task_by_message(payload.message_id)
        if task is None:
            return
        allowed = payload.user_id == task.requester_id or member_is_moderator(
            payload.member, self.bot.config.moderator_role_ids
        )
        if not allowed:
            await self._remove_reaction(payload)
            return
        if not await self.generations.first_time(
            payload.message_id, payload.user_id, emoji, window=REACTION_DEDUP_WINDOW
        ):
            return  # the same reaction, seen again: act once
        if emoji == RETRY_EMOJI and payload.message_id == task.result_message_id:
            await self._run_again(task, payload)
        elif emoji == CANCEL_EMOJI and payload.message_id == task.status_message_id:
            await self._cancel(task, payload)

    async def _remove_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        channel = self.bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
        try:
            await channel.get_partial_message(payload.message_id).remove_reaction(
                payload.emoji, discord.Object(payload.user_id)
            )
        except discord.HTTPException:
            log.debug("could not remove a stranger's reaction (missing Manage Messages?)")

    async def _say(self, channel_id: int, guild_id: int, words: str, ping: int) -> None:
        channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
        try:
            await channel.send(
                text.clip_message(words),
                allowed_mentions=discord.AllowedMentions(
                    users=[discord.Object(ping)], roles=False, everyone=False
                ),
            )
        except discord.HTTPException:
            log.warning("could not post a notice in %s", channel_id)

    async def _run_again(self, task: TaskRow, payload: discord.RawReactionActionEvent) -> None:
        member = payload.member
        try:
            await self.run_again(
                task,
                actor_id=payload.user_id,
                actor_is_moderator=member_is_moderator(member, self.bot.config.moderator_role_ids),
                actor_role_ids=[r.id for r in member.roles] if member is not None else None,
            )
        except UserError as exc:
            await self._remove_reaction(payload)  # nothing ran: the 🔁 does not stay lit
            await self._say(
                task.reply_channel_id,
                task.guild_id,
                f"<@{payload.user_id}> I can't run task #{task.id} again: {exc}",
                payload.user_id,
            )

    async def rerun_request(self, task: TaskRow) -> VideoRequest:
        """The request of ``task`` to run again, or UserError saying why it cannot be:
        only a video, its provider still configured, a character it used still usable
        by the requester (looked up afresh)."""
        looked_up = await self.bot.characters.request_for_rerun(task)
        return self.generations.rerun_request(task, looked_up)

    async def run_again(
        self,
        task: TaskRow,
        *,
        actor_id: int,
        actor_is_moderator: bool,
        actor_role_ids: Sequence[int] | None,
        request: VideoRequest | None = None,
    ) -> TaskRow | None:
        """🔁, Run again, Vary and Remix: ``request`` (default: the same one) as a new
        task of the same requester in the same thread, checked like a new request
        (quota, cooldown, in-flight cap, server settings, banned words). A moderator's
        re-run counts against the requester. None when the status could not be posted.
        """
        gens = self.generations
        if request is None:
            request = await self.rerun_request(task)
        provider = gens.provider_for(task.provider)
        new_task = await gens.create(
            provider=provider,
            request=request,
            guild_id=task.guild_id,
            channel_id=task.channel_id,
            requester_id=task.requester_id,
            is_moderator=actor_is_moderator,
            thread_id=task.thread_id,
            retry_of=task.id,
            # The requester's roles (their limit is charged); looked up when
            # a moderator re-runs someone else's request.
            role_ids=actor_role_ids if actor_id == task.requester_id else None,
        )
        where = self.bot.get_partial_messageable(task.reply_channel_id, guild_id=task.guild_id)
        try:
            posted = await gens.post_status(where, new_task, thread_id=task.thread_id)
        except discord.HTTPException as exc:
            await gens.abandon(new_task, f"cannot post the status message ({exc.status})")
            return None
        log.info("task %s: run again as task %s by %s", task.id, new_task.id, actor_id)
        return posted

    async def _cancel(self, task: TaskRow, payload: discord.RawReactionActionEvent) -> None:
        await self.cancel(task, actor_id=payload.user_id)

    async def cancel(self, task: TaskRow, *, actor_id: int) -> bool:
        """❌ and Cancel: stop an in-flight task (a moderator's cancel is audited).
        False when it was no longer in flight."""
        if not task.in_flight:
            return False
        if not await self.generations.cancel(task):
            return False
        if actor_id != task.requester_id:
            await self.generations.audit(task, actor_id, "cancel", f"task #{task.id}")
        log.info("task %s cancelled by %s", task.id, actor_id)
        return True


def animate_command(
    cog: Animate, provider_ids: Sequence[str]
) -> app_commands.Command[Any, ..., None]:
    """/animate for ``cog``, offering ``provider_ids`` as the provider's choices."""

    @app_commands.command(name="animate", description="Turn a prompt (and an image) into a video")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What should happen in the video (1–2000 characters)",
        image="First frame: PNG, JPEG or WebP up to 20 MiB (image-to-video)",
        provider="Which video service to use",
        model="The provider's model",
        duration="Length in seconds",
        aspect_ratio="Frame shape",
        resolution="Output resolution",
        seed="Seed for reproducible results",
        negative_prompt="What to avoid (providers that accept it)",
        character="One of your trained characters (see /character)",
        motion="Motion template (Higgsfield)",
    )
    @app_commands.choices(
        provider=[app_commands.Choice(name=pid, value=pid) for pid in provider_ids],
        aspect_ratio=[app_commands.Choice(name=v, value=v) for v in ("16:9", "9:16", "1:1")],
        resolution=[app_commands.Choice(name=v, value=v) for v in ("480p", "720p", "1080p")],
    )
    async def animate(
        interaction: discord.Interaction,
        prompt: Prompt,
        image: discord.Attachment | None = None,
        provider: Choice | None = None,
        model: Name | None = None,
        duration: int | None = None,
        aspect_ratio: Choice | None = None,
        resolution: Choice | None = None,
        seed: int | None = None,
        negative_prompt: Prompt | None = None,
        character: Name | None = None,
        motion: Name | None = None,
    ) -> None:
        request = AnimateRequest(
            prompt=prompt,
            provider=provider,
            model=model,
            duration=duration,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            seed=seed,
            negative_prompt=negative_prompt,
            motion=motion,
            character=character,
            has_image=image is not None,
        )
        await cog.animate(interaction, request, image)

    animate.autocomplete("model")(cog.model_autocomplete)
    animate.autocomplete("motion")(cog.motion_autocomplete)
    animate.autocomplete("character")(cog.character_autocomplete)
    return animate


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Animate(bot))


__all__ = ["NO_PINGS", "Animate", "messages"]
