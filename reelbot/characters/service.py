"""The Characters service: create, train, use, share and delete characters.

Photos are people's likenesses: the bot keeps its own copies (under
``DATA_DIR/characters/<id>/``, see :mod:`reelbot.characters.photos`) only while the
character exists, and only the owner (or, once a moderator shares it, the guild) can
use a character. Cogs call one method here per interaction; the rules (who may train,
share or delete what) and the audit entries they leave are decided here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import discord

from providers.base import ErrorKind, Provider, ProviderError, TrainingRequest
from reelbot import text, vocabulary
from reelbot.characters import panel
from reelbot.characters.model import StoredTraining
from reelbot.characters.names import matching, validate_name
from reelbot.characters.photos import MIN_IMAGES, Photos, shown
from reelbot.config import Config
from reelbot.generations.request import VideoRequest, video_request
from reelbot.generations.service import UserError
from reelbot.permissions import ONLY_MODERATORS
from reelbot.spending import Spending, member_roles_via
from reelbot.store.base import Store
from reelbot.store.models import (
    CharacterRow,
    CharacterUnavailable,
    DuplicateName,
    NewTask,
    SubmissionRefused,
    TaskRow,
)
from reelbot.vocabulary import NO_PINGS

log = logging.getLogger(__name__)

NO_CHARACTER = (None, None, None)  # a request's (character, character_id, character_model_id)


class Characters:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        providers: Mapping[str, Provider],
        client: discord.Client,
        directory: Path,
        wake: Callable[[], None],
    ) -> None:
        self.config = config
        self.store = store
        self.providers = providers
        self.client = client
        self.wake = wake
        self.photos = Photos(store=store, client=client, directory=directory)
        self.spending = Spending(config=config, store=store, roles_of=member_roles_via(client))

    async def audit(
        self, guild_id: int, actor_id: int, action: str, *, target_id: int, details: str
    ) -> None:
        await self.store.audit(
            guild_id, actor_id, action, target_id=target_id, details=details, now=time.time()
        )

    # --- choosing ---------------------------------------------------------------------------
    def training_providers(self) -> list[str]:
        return [pid for pid, p in self.providers.items() if p.capabilities.characters]

    def provider_for_training(self, provider_id: str | None) -> Provider:
        able = self.training_providers()
        if not able:
            raise UserError(
                "None of the configured providers can train characters "
                "(Higgsfield's Soul ID can: the operator sets HIGGSFIELD_API_KEY)."
            )
        pid = provider_id or able[0]
        if pid not in able:
            raise UserError(
                f"`{pid}` cannot train characters. Providers that can: "
                f"{', '.join(f'`{p}`' for p in able)}."
            )
        return self.providers[pid]

    async def find(
        self, guild_id: int, user_id: int, ref: str, *, moderator: bool = False
    ) -> CharacterRow:
        """A character by reference (``#<id>``, what autocomplete sends) or by name,
        visible to this user: their own first, then shared ones (moderators: any)."""
        found = matching(await self.store.guild_characters(guild_id), ref)
        mine = [c for c in found if c.owner_id == user_id]
        visible = mine or [c for c in found if c.shared or moderator]
        if not visible:
            raise UserError(
                f"You have no character called `{shown(ref.strip())}` (see /character list)."
            )
        return visible[0]

    # --- who may use a character (the one place this rule lives) ---------------------------
    @staticmethod
    def may_use(character: CharacterRow, user_id: int) -> bool:
        """Ready, and the user's own or shared with the guild (CharacterRow.usable_by;
        the store checks the same again when it creates the task)."""
        return character.usable_by(user_id)

    async def for_use(
        self, guild_id: int, user_id: int, ref: str, *, provider: str | None = None
    ) -> CharacterRow:
        """The character ``ref`` names, if this user may generate with it now (on
        ``provider``, when one was asked for: a character works only where it trained)."""
        character = await self.find(guild_id, user_id, ref)
        if not self.may_use(character, user_id):
            state = "not ready yet" if character.owner_id == user_id else "not shared"
            raise UserError(f"Character `{character.name}` is {state}.")
        if provider and provider != character.provider:
            raise UserError(
                f"Character `{character.name}` was trained on `{character.provider}` and only "
                f"works there; choose provider `{character.provider}` (or leave it empty)."
            )
        return character

    async def usable(self, guild_id: int, user_id: int, current: str = "") -> list[CharacterRow]:
        """Characters this user may generate with, whose name contains ``current``."""
        needle = current.strip().lower()
        return [
            c
            for c in await self.store.guild_characters(guild_id)
            if self.may_use(c, user_id) and needle in c.name.lower()
        ]

    async def request_for_rerun(self, task: TaskRow) -> VideoRequest:
        """The request of ``task`` to submit again (🔁), checked like a new one.

        Only videos run again. A character the video used is looked up afresh: it must
        still exist, be ready and be usable by the task's requester (whose request and
        quota the re-run is), and its current model id is what gets sent.
        """
        request = video_request(task) if "prompt" in task.request else None
        if request is None:
            what = f"a {task.kind} task"
            if task.kind == "training":
                name = StoredTraining.from_stored(task.request).name
                what = f"the training of character `{name}`"
            raise UserError(f"🔁 only runs a video request again, and this was {what}.")
        if (request.character, request.character_id, request.character_model_id) == NO_CHARACTER:
            return request  # no character: nothing to look up
        name = request.character or "?"
        candidates = await self.store.guild_characters(task.guild_id)
        if request.character_id is not None:
            found = [c for c in candidates if c.id == request.character_id]
        else:  # recorded before tasks kept the id: the model id names the character
            found = [
                c
                for c in candidates
                if c.provider_model_id and c.provider_model_id == request.character_model_id
            ]
        if not found:
            raise UserError(f"character `{name}` no longer exists.")
        character = found[0]
        if not self.may_use(character, task.requester_id):
            why = "is not ready" if character.state != "ready" else "is no longer shared"
            raise UserError(f"character `{character.name}` {why}.")
        if character.provider != task.provider:
            raise UserError(
                f"character `{character.name}` only works on `{character.provider}` now."
            )
        return dataclasses.replace(
            request,
            character=character.name,
            character_id=character.id,
            character_model_id=character.provider_model_id,
        )

    async def visible(self, guild_id: int, user_id: int, *, moderator: bool) -> list[CharacterRow]:
        return [
            c
            for c in await self.store.guild_characters(guild_id)
            if c.owner_id == user_id or c.shared or moderator
        ]

    async def manageable(
        self, guild_id: int, user_id: int, current: str, *, moderator: bool
    ) -> list[CharacterRow]:
        """What train / delete / share autocomplete offer: the user's own characters
        (a moderator: every one) whose name contains ``current``."""
        needle = current.lower()
        return [
            c
            for c in await self.visible(guild_id, user_id, moderator=moderator)
            if (c.owner_id == user_id or moderator) and needle in c.name.lower()
        ]

    async def listing(self, guild_id: int, user_id: int, *, moderator: bool) -> str:
        """/character list: the user's characters and the shared ones (moderators: all)."""
        return panel.listing_text(
            await self.visible(guild_id, user_id, moderator=moderator), user_id
        )

    # --- collecting -------------------------------------------------------------------------
    async def create(
        self, *, guild_id: int, owner_id: int, name: str, provider_id: str | None
    ) -> CharacterRow:
        provider = self.provider_for_training(provider_id)
        try:
            return await self.store.create_character(
                guild_id=guild_id,
                owner_id=owner_id,
                name=validate_name(name),
                provider=provider.id,
                now=time.time(),
            )
        except DuplicateName:
            raise UserError(
                f"You already have a character called `{name}`. Delete it first or pick "
                "another name."
            ) from None

    async def open(
        self,
        channel: discord.TextChannel,
        *,
        guild_id: int,
        owner_id: int,
        name: str,
        provider_id: str | None,
    ) -> CharacterRow:
        """/character create: the character, its thread in ``channel`` and the thread's
        panel. Without a thread nobody could post its photos, so none means no character."""
        character = await self.create(
            guild_id=guild_id, owner_id=owner_id, name=name, provider_id=provider_id
        )
        try:
            thread = await channel.create_thread(
                name=text.clip_thread_name(f"Character: {character.name}", "Character"),
                type=discord.ChannelType.public_thread,
                auto_archive_duration=text.archive_duration(1440),
            )
            posted = await thread.send(panel.panel_text(character), allowed_mentions=NO_PINGS)
        except discord.HTTPException as exc:
            await self.store.delete_character(character.id)
            raise UserError("I can't open a thread here (missing permissions?).") from exc
        await self.store.update_character(
            character.id, thread_id=thread.id, panel_message_id=posted.id
        )
        return replace(character, thread_id=thread.id, panel_message_id=posted.id)

    async def photos_posted(self, message: discord.Message) -> str | None:
        """A message in a thread: if it brings the owner's photos to a character that
        is collecting them (or failed, and may take more), take them; the reply for the
        thread, or None when the message is none of this service's business."""
        if message.author.bot or not isinstance(message.channel, discord.Thread):
            return None
        if not message.attachments:
            return None
        character = await self.store.character_by_thread(message.channel.id)
        if character is None or character.owner_id != message.author.id:
            return None
        if character.state not in ("collecting", "failed"):
            return None
        result = await self.photos.collect(character, message)
        updated = await self.store.get_character(character.id)
        if updated is None:  # deleted while its photos came in: nothing left to count
            return None
        await self.refresh_panel(updated)
        return panel.collected_text(result, updated.image_count)

    # --- training ---------------------------------------------------------------------------
    async def train(
        self, guild_id: int, user_id: int, ref: str, *, is_moderator: bool
    ) -> tuple[CharacterRow, TaskRow]:
        """/character train: the owner's character, moved to training, and its task
        (whose status message the caller posts through Generations.post_status)."""
        character = await self.find(guild_id, user_id, ref)
        if character.owner_id != user_id:
            raise UserError("Only the character's owner can train it.")
        task = await self.start_training(character, is_moderator=is_moderator)
        await self.refresh_panel(await self.store.get_character(character.id))
        return character, task

    async def start_training(self, character: CharacterRow, *, is_moderator: bool) -> TaskRow:
        """Move the character to training and create the task, as one guarded step in the
        store: of two /character train at once, one trains (and pays), the other is told."""
        provider = self.provider_for_training(character.provider)
        # Trainings cost CHARACTER_TRAINING_WEIGHT credits, under the same role limits
        # and server budget as generations (no cooldown, as before).
        policy = await self.spending.policy(
            character.guild_id, character.owner_id, is_moderator=is_moderator, cooldown=False
        )
        try:
            return await self.store.start_training(
                NewTask(
                    provider=provider.id,
                    kind="training",
                    guild_id=character.guild_id,
                    channel_id=character.thread_id or 0,
                    thread_id=character.thread_id,
                    requester_id=character.owner_id,
                    request=StoredTraining(character.name, character.id).to_stored(),
                    poll_interval=self.config.poll_interval,
                    quota_weight=self.config.character_training_weight,
                    character_id=character.id,
                ),
                now=time.time(),
                policy=policy,
                min_images=MIN_IMAGES,
            )
        except CharacterUnavailable as exc:
            raise UserError(_not_trainable(character, exc)) from exc
        except SubmissionRefused as exc:
            raise UserError(str(exc)) from exc

    async def training_request(self, task: TaskRow) -> TrainingRequest:
        """What the provider is sent: the photos' URLs, refreshed where Discord's have
        expired (ProviderError if the character was deleted meanwhile)."""
        training = StoredTraining.from_stored(task.request)
        current = await self.store.get_task(task.id)
        if await self.store.get_character(training.character_id) is None or (
            current is not None and not current.in_flight
        ):
            raise ProviderError(
                ErrorKind.INVALID, "the character was deleted", code="character_deleted"
            )
        return training.for_provider(await self.photos.urls(training.character_id))

    async def training_submitted(self, task: TaskRow, model_id: str) -> None:
        """The provider accepted a training as ``model_id`` (called by the poller once it
        stored the model id, before it records the outcome). Stored at once, even if the
        task was cancelled meanwhile, so a delete or ❌ that reads the task from now on
        finds the model; one that came earlier is seen here, and the model is deleted:
        nothing trains for nobody."""
        training = StoredTraining.from_stored(task.request)
        current = await self.store.get_task(task.id)
        character = await self.store.get_character(training.character_id)
        if current is None or not current.in_flight or character is None:
            log.info("task %s: training %s outlived its character; deleting", task.id, model_id)
            await self._delete_model(task.provider, model_id)

    async def training_cancelled(self, task: TaskRow) -> None:
        """❌ on a training (recorded): free the character, delete the model at the provider."""
        # Free the character now: its final message may take a while to be posted.
        training = StoredTraining.from_stored(task.request)
        await self.store.update_character(training.character_id, state="failed", error="cancelled")
        current = await self.store.get_task(task.id)
        if current is not None and current.provider_task_id:
            await self._delete_model(current.provider, current.provider_task_id)

    async def _delete_model(self, provider_id: str, model_id: str) -> bool:
        provider = self.providers.get(provider_id)
        if provider is None:
            return False
        try:
            return await provider.delete_character(model_id)
        except ProviderError as exc:
            log.warning("provider model %s: delete failed (%r)", model_id, exc)
            return False

    async def finish_training(self, task: TaskRow) -> str:
        """Record the outcome on the character; return the message for the thread."""
        training = StoredTraining.from_stored(task.request)
        character = await self.store.get_character(training.character_id)
        name = training.name
        # A newer training of this character (after a ❌) owns its state now.
        current = character is not None and character.task_id in (None, task.id)
        if character is None or (task.state == "succeeded" and not current):
            if task.provider_task_id and task.state == "succeeded":
                # Trained for a character that is gone: the likeness must not stay there.
                await self._delete_model(task.provider, task.provider_task_id)
            return (
                f"Character `{name}` was deleted before its training finished."
                + vocabulary.footer(task.id)
            )
        if task.state == "succeeded" and current:
            await self.store.update_character(
                character.id, state="ready", provider_model_id=task.provider_task_id
            )
            words = (
                f"<@{task.requester_id}> character **{name}** is ready! 🎉 Use it with "
                f"`/animate character:{name}`."
            )
        elif task.state == "cancelled":
            if current and character.state == "training":
                await self.store.update_character(character.id, state="failed", error="cancelled")
            words = (
                f"<@{task.requester_id}> training **{name}** was cancelled. Your quota was "
                f"given back; run `/character train name:{name}` to start again."
            )
        else:
            reason = task.error_message or task.error_code or "unknown error"
            if task.provider_task_id:  # e.g. timed out: do not leave it at the provider
                await self._delete_model(task.provider, task.provider_task_id)
            if current:
                await self.store.update_character(character.id, state="failed", error=reason)
            words = (
                f"<@{task.requester_id}> training **{name}** failed: "
                f"`{shown(task.error_code or 'unknown')}` {text.clip(reason, 400)}. "
                "Your quota was given back; add or replace photos and run "
                f"`/character train name:{name}` again."
            )
        await self.refresh_panel(await self.store.get_character(character.id))
        return text.clip_message(words, vocabulary.footer(task.id))

    async def refresh_panel(self, character: CharacterRow | None) -> None:
        await panel.refresh(self.client, character)

    # --- sharing ----------------------------------------------------------------------------
    async def share(
        self, guild_id: int, actor_id: int, ref: str, *, is_moderator: bool
    ) -> CharacterRow:
        """/character share: a moderator lets the whole guild use a character (audited)."""
        if not is_moderator:
            raise UserError(ONLY_MODERATORS)
        character = await self.find(guild_id, actor_id, ref, moderator=True)
        await self.store.update_character(character.id, shared=True)
        await self.audit(
            guild_id,
            actor_id,
            "character_share",
            target_id=character.owner_id,
            details=f"character #{character.id}",
        )
        return character

    # --- deleting ---------------------------------------------------------------------------
    async def delete(
        self, guild_id: int, actor_id: int, ref: str, *, is_moderator: bool
    ) -> tuple[CharacterRow, bool]:
        """/character delete by its owner or a moderator (audited when it is not their
        own): the character deleted, and whether the provider's model went too."""
        character = await self.find(guild_id, actor_id, ref, moderator=is_moderator)
        if character.owner_id != actor_id and not is_moderator:
            raise UserError("Only the character's owner (or a moderator) can delete it.")
        removed_remote = await self._remove(character)
        if character.owner_id != actor_id:
            await self.audit(
                guild_id,
                actor_id,
                "character_delete",
                target_id=character.owner_id,
                details=f"character #{character.id}",
            )
        return character, removed_remote

    async def _remove(self, character: CharacterRow) -> bool:
        """Remove the character, its photos and, where the API allows, the provider model:
        the trained one and any still training (whose id only its task knows)."""
        for task in await self.store.training_tasks(character.id):
            if task.in_flight and await self.store.cancel_task(task.id, now=time.time()):
                self.wake()
        # Read after the cancel: a model id recorded from now on is seen by
        # training_submitted, which then finds the task cancelled and deletes it.
        models = [character.provider_model_id] + [
            t.provider_task_id for t in await self.store.training_tasks(character.id)
        ]
        await self.store.delete_character(character.id)
        await self.photos.remove(character.id)
        removed_remote = False
        for model_id in dict.fromkeys(m for m in models if m):
            removed_remote |= await self._delete_model(character.provider, model_id)
        return removed_remote


def _not_trainable(character: CharacterRow, exc: CharacterUnavailable) -> str:
    if exc.state is None:
        return f"Character `{character.name}` no longer exists."
    if exc.state not in ("collecting", "failed"):
        return f"Character `{character.name}` is already {exc.state}."
    return (
        f"`{character.name}` has {exc.image_count} photo(s); training needs at least "
        f"{MIN_IMAGES}. Post more in <#{character.thread_id}>."
    )
