"""The action bar (SPEC §3 "Buttons"): Cancel, Run again, Vary, Remix, Delete, and the
message context menu "Animate".

Stateless across restarts: a button's ``custom_id`` (reelbot/buttons.py) and a
modal's carry the task (or the message) they act on; every click is checked
against the store. The rules are the same as the reactions' (cogs/animate.py):
requester or moderator; a re-run is a new request through ``Generations.create``
(quota, cooldown, in-flight cap, server settings, banned words); one press is one
task, even when Discord delivers the interaction twice (the store's dedup table,
keyed by the interaction id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from reelbot import buttons, text, vocabulary
from reelbot.buttons import ANIMATE_MODAL, HANDLER_COG, REMIX_MODAL, Action
from reelbot.generations.request import VideoRequest
from reelbot.generations.service import MAX_PROMPT, AnimateRequest, UserError, remix
from reelbot.jobs.inputs import ALLOWED_IMAGE_TYPES
from reelbot.permissions import interaction_is_moderator
from reelbot.store.models import TaskRow
from reelbot.vocabulary import NO_PINGS

if TYPE_CHECKING:
    from cogs.animate import Animate
    from reelbot.app import Reelbot

log = logging.getLogger(__name__)

# A repeated INTERACTION_CREATE (same id) within this long is the same press. Longer
# than any redelivery can come: an interaction must be answered within 3 s and its
# token dies after 15 minutes.
INTERACTION_DEDUP_WINDOW = 900.0
DEDUP_KEY = "interaction"
MODAL_TITLE = 45  # Discord's modal title limit
PLACEHOLDER = 100  # text input placeholder limit
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
ALREADY_ANSWERED = 40060  # Discord: "Interaction has already been acknowledged"
GENERIC_FAILURE = "Something went wrong on my side. It has been logged; please try again."


def image_attachment(message: discord.Message) -> discord.Attachment | None:
    """The first PNG, JPEG or WebP attachment of ``message`` (what /animate image: takes)."""
    for attachment in message.attachments:
        declared = (attachment.content_type or "").split(";")[0].strip().lower()
        if declared in ALLOWED_IMAGE_TYPES or (
            not declared and attachment.filename.lower().endswith(IMAGE_EXTENSIONS)
        ):
            return attachment
    return None


def modal_values(components: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """custom_id -> value of a modal submit's text inputs, in action rows (type 1)
    or labels (type 18), as Discord sends them."""
    values: dict[str, str] = {}
    for row in components:
        inner = list(row.get("components") or [])
        if "component" in row:
            inner.append(row["component"])
        if "custom_id" in row and "value" in row:
            inner.append(row)
        for item in inner:
            if "custom_id" in item and isinstance(item.get("value"), str):
                values[item["custom_id"]] = item["value"]
    return values


class RemixModal(discord.ui.Modal):
    """The prompt (and negative prompt where the provider takes one), filled in."""

    def __init__(self, task_id: int, request: VideoRequest, *, negative: bool) -> None:
        super().__init__(
            title=text.clip(f"Remix task #{task_id}", MODAL_TITLE),
            custom_id=buttons.remix_modal_id(task_id),
            timeout=None,
        )
        self.add_item(
            discord.ui.TextInput(
                label="Prompt",
                custom_id="prompt",
                style=discord.TextStyle.paragraph,
                default=text.clip(request.prompt, MAX_PROMPT),
                min_length=1,
                max_length=MAX_PROMPT,
            )
        )
        if negative:
            self.add_item(
                discord.ui.TextInput(
                    label="Negative prompt (what to avoid)",
                    custom_id="negative_prompt",
                    style=discord.TextStyle.paragraph,
                    default=text.clip(request.negative_prompt or "", MAX_PROMPT) or None,
                    required=False,
                    max_length=MAX_PROMPT,
                )
            )


class AnimateModal(discord.ui.Modal):
    """Context menu "Animate": the prompt, and optionally provider and duration."""

    def __init__(self, channel_id: int, message_id: int, providers: Iterable[str]) -> None:
        super().__init__(
            title="Animate this image",
            custom_id=buttons.animate_modal_id(channel_id, message_id),
            timeout=None,
        )
        self.add_item(
            discord.ui.TextInput(
                label="Prompt",
                custom_id="prompt",
                style=discord.TextStyle.paragraph,
                placeholder="What should happen in the video",
                min_length=1,
                max_length=MAX_PROMPT,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label="Provider (optional)",
                custom_id="provider",
                placeholder=text.clip(", ".join(providers), PLACEHOLDER) or None,
                required=False,
                max_length=32,
            )
        )
        self.add_item(
            discord.ui.TextInput(
                label="Duration in seconds (optional)",
                custom_id="duration",
                placeholder="e.g. 5",
                required=False,
                max_length=3,
            )
        )


class ActionBar(commands.Cog, name=HANDLER_COG):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Animate", callback=self.animate_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        # Every button of every message, whenever it was sent, comes back here.
        self.bot.add_dynamic_items(buttons.TaskButton)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(buttons.TaskButton)

    @property
    def animate(self) -> Animate:
        cog = self.bot.get_cog("Animate")
        assert cog is not None, "cogs.animate must be loaded with the action bar"
        return cog  # type: ignore[return-value]

    # --- checks -------------------------------------------------------------------------
    def _is_moderator(self, interaction: discord.Interaction) -> bool:
        return interaction_is_moderator(interaction, self.bot.config.moderator_role_ids)

    async def _task_for(self, task_id: int, interaction: discord.Interaction) -> TaskRow:
        """The task, if it is this server's and the clicker may act on it."""
        return await self.bot.generations.task_to_act_on(
            task_id,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            is_moderator=self._is_moderator(interaction),
        )

    async def _first_press(self, interaction: discord.Interaction) -> bool:
        """False for a repeated delivery of an interaction already acted on."""
        return await self.bot.generations.first_time(
            interaction.id, interaction.user.id, DEDUP_KEY, window=INTERACTION_DEDUP_WINDOW
        )

    @staticmethod
    async def _answer(interaction: discord.Interaction, words: str) -> None:
        """Ephemeral, whether or not the interaction was deferred."""
        content = text.clip_message(words)
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=content, allowed_mentions=NO_PINGS)
            else:
                await interaction.response.send_message(
                    content, ephemeral=True, allowed_mentions=NO_PINGS
                )
        except discord.HTTPException as exc:
            log.info("could not answer interaction %s (%s)", interaction.id, exc.status)

    # --- buttons ------------------------------------------------------------------------
    async def pressed(self, action: Action, task_id: int, interaction: discord.Interaction) -> None:
        """A button of the action bar (reelbot/buttons.py TaskButton)."""
        try:
            task = await self._task_for(task_id, interaction)
            if action == "remix":
                await self._open_remix(task, interaction)
                return
            if not await self._first_press(interaction):
                log.info("interaction %s delivered again; acted on once", interaction.id)
                return
            await interaction.response.defer(ephemeral=True, thinking=True)
            if action in ("again", "vary"):
                await self._run_again(task, interaction, vary=action == "vary")
            elif action == "delete":
                await self._delete(task, interaction)
            elif action == "cancel":
                await self._cancel(task, interaction)
        except UserError as exc:
            await self._answer(interaction, str(exc))
        except discord.HTTPException as exc:
            if exc.code == ALREADY_ANSWERED:  # a redelivered click (Remix opens no dedup)
                log.info("interaction %s was already answered", interaction.id)
                return
            log.exception("%s on task %s by %s failed", action, task_id, interaction.user.id)
            await self._answer(interaction, GENERIC_FAILURE)
        except Exception:
            log.exception("%s on task %s by %s failed", action, task_id, interaction.user.id)
            await self._answer(interaction, GENERIC_FAILURE)

    async def _run_again(
        self, task: TaskRow, interaction: discord.Interaction, *, vary: bool
    ) -> None:
        try:
            request = await self.animate.rerun_request(task)
            if vary:
                request = self.bot.generations.varied(task, request)
            new_task = await self._rerun(task, interaction, request)
        except UserError as exc:
            raise UserError(f"I can't run task #{task.id} again: {exc}") from exc
        if new_task is None:
            raise UserError("Discord did not take the status message; try again shortly.")
        seed = f" with seed `{VideoRequest.of(new_task).seed}`" if vary else ""
        await self._answer(interaction, f"✅ Running it again{seed} as task #{new_task.id}.")

    async def _rerun(
        self, task: TaskRow, interaction: discord.Interaction, request: VideoRequest
    ) -> TaskRow | None:
        return await self.animate.run_again(
            task,
            actor_id=interaction.user.id,
            actor_is_moderator=self._is_moderator(interaction),
            actor_role_ids=[r.id for r in getattr(interaction.user, "roles", ())],
            request=request,
        )

    async def _delete(self, task: TaskRow, interaction: discord.Interaction) -> None:
        message = interaction.message
        me = self.bot.user
        # The recorded final message, or (pressed before the poller recorded it) the
        # bot's message with this task's final footer.
        final = message is not None and (
            message.id == task.result_message_id
            or (
                task.result_message_id is None
                and me is not None
                and message.author.id == me.id
                and vocabulary.is_final_text(message.content, task.id)
            )
        )
        if message is None or not final:
            raise UserError("Delete removes a task's final message, and this is not it.")
        try:
            await message.delete()
        except discord.NotFound:
            pass  # already gone: the outcome asked for
        except discord.HTTPException as exc:
            raise UserError(f"Discord did not let me delete it ({exc.status}).") from exc
        await self.bot.generations.audit(
            task, interaction.user.id, "delete_result", f"task #{task.id}, message {message.id}"
        )
        log.info(
            "task %s: final message %s deleted by %s", task.id, message.id, interaction.user.id
        )
        await self._answer(interaction, f"🗑️ Deleted the result of task #{task.id}.")

    async def _cancel(self, task: TaskRow, interaction: discord.Interaction) -> None:
        if await self.animate.cancel(task, actor_id=interaction.user.id):
            await self._answer(interaction, f"🚫 Cancelling task #{task.id}.")
        else:
            await self._answer(interaction, f"Task #{task.id} is no longer running.")

    # --- Remix --------------------------------------------------------------------------
    async def _open_remix(self, task: TaskRow, interaction: discord.Interaction) -> None:
        try:
            request = await self.animate.rerun_request(task)
        except UserError as exc:
            raise UserError(f"I can't remix task #{task.id}: {exc}") from exc
        provider = self.bot.generations.providers[task.provider]
        negative = "negative_prompt" in provider.capabilities.options
        modal = RemixModal(task.id, request, negative=negative)
        await _send_stateless_modal(interaction, modal)

    async def _remix_submitted(self, task_id: int, interaction: discord.Interaction) -> None:
        values = modal_values(_data(interaction).get("components") or [])
        task = await self._task_for(task_id, interaction)
        if not await self._first_press(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            request = remix(
                await self.animate.rerun_request(task),
                values.get("prompt", ""),
                values.get("negative_prompt"),
            )
            new_task = await self._rerun(task, interaction, request)
        except UserError as exc:
            raise UserError(f"I can't remix task #{task.id}: {exc}") from exc
        if new_task is None:
            raise UserError("Discord did not take the status message; try again shortly.")
        await self._answer(interaction, f"✅ Remixing task #{task.id} as task #{new_task.id}.")

    # --- context menu "Animate" ---------------------------------------------------------
    async def animate_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        """Apps → Animate on a message: its image becomes the first frame."""
        if image_attachment(message) is None:
            await interaction.response.send_message(
                "That message has no image I can animate. Use **Animate** on a message with "
                "a PNG, JPEG or WebP image attached, or use `/animate` with the `image` option.",
                ephemeral=True,
            )
            return
        modal = AnimateModal(message.channel.id, message.id, self.bot.providers)
        await _send_stateless_modal(interaction, modal)

    async def _animate_submitted(
        self, channel_id: int, message_id: int, interaction: discord.Interaction
    ) -> None:
        values = modal_values(_data(interaction).get("components") or [])
        if not await self._first_press(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        duration_text = values.get("duration", "").strip()
        if duration_text and not duration_text.isdigit():
            raise UserError(
                f"`{text.clip(duration_text, 10)}` is not a duration: give whole seconds."
            )
        provider = values.get("provider", "").strip() or None
        try:
            # Fetched now, so the attachment URL is fresh; the bot then keeps the image.
            channel = self.bot.get_partial_messageable(channel_id, guild_id=interaction.guild_id)
            message = await channel.fetch_message(message_id)
        except discord.NotFound as exc:
            raise UserError("That message is gone, so I cannot use its image.") from exc
        except discord.HTTPException as exc:
            raise UserError(f"I could not read that message ({exc.status}); try again.") from exc
        image = image_attachment(message)
        if image is None:
            raise UserError("That message no longer has an image I can animate.")
        request = AnimateRequest(
            prompt=values.get("prompt", ""),
            provider=provider.lower() if provider else None,
            duration=int(duration_text) if duration_text else None,
            has_image=True,
        )
        await self.animate.start(interaction, request, image)

    # --- modal submits --------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Modal submits, read from their custom_id (no modal is kept in memory, so a
        modal opened before a restart still works after it)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        custom_id = str(_data(interaction).get("custom_id", ""))
        try:
            if match := REMIX_MODAL.fullmatch(custom_id):
                await self._remix_submitted(int(match["task_id"]), interaction)
            elif match := ANIMATE_MODAL.fullmatch(custom_id):
                await self._animate_submitted(
                    int(match["channel_id"]), int(match["message_id"]), interaction
                )
        except UserError as exc:
            await self._answer(interaction, str(exc))
        except Exception:
            log.exception("modal %s by %s failed", custom_id, interaction.user.id)
            await self._answer(interaction, GENERIC_FAILURE)


async def _send_stateless_modal(interaction: discord.Interaction, modal: discord.ui.Modal) -> None:
    """Open ``modal`` without discord.py keeping it: its submit is read on_interaction
    from the custom_id, by whichever process (and after whichever restart) gets it."""
    modal.stop()  # a finished modal is not stored by send_modal
    await interaction.response.send_modal(modal)


def _data(interaction: discord.Interaction) -> dict[str, Any]:
    """The interaction's raw ``data`` (a union of typed dicts) as a plain mapping."""
    return cast(dict[str, Any], interaction.data or {})


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(ActionBar(bot))
