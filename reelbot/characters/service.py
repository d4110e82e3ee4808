"""Characters: collect 20–50 photos of one person, train once, reuse in /animate.

Photos are people's likenesses: the bot keeps its own copies (under
``DATA_DIR/characters/<id>/``) only while the character exists, and only the owner
(or, once a moderator shares it, the guild) can use a character.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
import shutil
import struct
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import discord

from providers.base import ErrorKind, Provider, ProviderError, TaskStatus, TrainingRequest
from reelbot import text, vocabulary
from reelbot.config import Config
from reelbot.generations.service import UserError
from reelbot.jobs.downloads import sniff_content_type
from reelbot.jobs.inputs import ALLOWED_IMAGE_TYPES, MAX_IMAGE_BYTES, discord_url_expiry
from reelbot.jobs.kinds import Attempt, JobKind
from reelbot.jobs.lease import Lease
from reelbot.spending import Spending, member_roles_via
from reelbot.store.base import Store
from reelbot.store.models import (
    CharacterImage,
    CharacterRow,
    CharacterUnavailable,
    DuplicateName,
    NewTask,
    SubmissionRefused,
    TaskRow,
)
from reelbot.vocabulary import NO_PINGS

log = logging.getLogger(__name__)

MIN_IMAGES, MAX_IMAGES = 20, 50
MAX_ZIP_BYTES = 200 * 1024 * 1024
# What a zip may unpack to in all, from its own directory (before anything is inflated):
# 50 good phone photos are well under this; a zip bomb is refused unopened.
MAX_ZIP_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_ZIP_ENTRIES = 500  # files and folders listed in one zip
SNIFF_BYTES = 16  # enough to tell PNG, JPEG and WebP apart (sniff_content_type)
NAME_PATTERN = re.compile(r"^[\w][\w .'-]{0,31}$")
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
DISCORD_FILES_PER_MESSAGE = 10
SHOWN_NAME = 100  # a file name quoted in a reply (zip entry names can be 65535 bytes)


@dataclass(slots=True)
class CollectResult:
    added: int = 0
    duplicates: int = 0
    full: int = 0
    problems: list[str] = field(default_factory=list)


def validate_name(name: str) -> str:
    name = " ".join(name.split())
    if not NAME_PATTERN.match(name):
        raise UserError(
            "A character name is 1–32 letters, digits, spaces, `.`, `'` or `-`, "
            "starting with a letter or digit."
        )
    return name


def panel_text(character: CharacterRow) -> str:
    count = character.image_count
    lines = [f"📸 **Character `{character.name}`** — by <@{character.owner_id}>"]
    if character.state == "collecting":
        need = max(0, MIN_IMAGES - count)
        lines += [
            f"Photos collected: **{count}** (need {MIN_IMAGES}–{MAX_IMAGES}).",
            "Post clear photos of **one person** here (PNG, JPEG or WebP up to 20 MiB each, "
            "several per message is fine, or a .zip).",
            (
                f"{need} more to go."
                if need
                else f"Ready to train: run `/character train name:{character.name}`."
            ),
        ]
    elif character.state == "training":
        lines.append(f"Training on {character.provider} with {count} photos…")
    elif character.state == "ready":
        lines.append(f"✅ Ready. Use it with `/animate character:{character.name}`.")
    else:
        lines.append(f"❌ Training failed: {text.clip(character.error or 'unknown error', 400)}")
    return "\n".join(lines)


def character_ref(character: CharacterRow) -> str:
    """What autocomplete sends for a character: ``#<id>``.

    Names start with a letter or digit (NAME_PATTERN), never ``#``, so a reference is
    never mistaken for a name and a name (even "7") never for an id.
    """
    return f"#{character.id}"


def _matching(candidates: list[CharacterRow], ref: str) -> list[CharacterRow]:
    wanted = ref.strip()
    if wanted.startswith("#") and wanted[1:].isdigit():
        return [c for c in candidates if c.id == int(wanted[1:])]
    return [c for c in candidates if c.name.lower() == wanted.lower()]


def attachment_id_from_url(url: str) -> int | None:
    """Discord attachment URLs end in ``/<attachment id>/<filename>``."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    return int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else None


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
        self.directory = directory
        self.wake = wake
        self.spending = Spending(config=config, store=store, roles_of=member_roles_via(client))
        # Characters with a zip being unpacked right now: one zip at a time each. A
        # character's thread is in one guild, whose events reach one gateway process.
        self._unpacking: set[int] = set()

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
        found = _matching(await self.store.guild_characters(guild_id), ref)
        mine = [c for c in found if c.owner_id == user_id]
        visible = mine or [c for c in found if c.shared or moderator]
        if not visible:
            raise UserError(
                f"You have no character called `{_shown(ref.strip())}` (see /character list)."
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

    async def request_for_rerun(self, task: TaskRow) -> dict[str, Any]:
        """The request of ``task`` to submit again (🔁), checked like a new one.

        Only videos run again. A character the video used is looked up afresh: it must
        still exist, be ready and be usable by the task's requester (whose request and
        quota the re-run is), and its current model id is what gets sent.
        """
        if task.kind != "video" or "prompt" not in task.request:
            name = task.request.get("name")
            what = f"the training of character `{name}`" if name else f"a {task.kind} task"
            raise UserError(f"🔁 only runs a video request again, and this was {what}.")
        request = dict(task.request)
        if not any(k in request for k in ("character", "character_id", "character_model_id")):
            return request
        name = request.get("character") or "?"
        candidates = await self.store.guild_characters(task.guild_id)
        if "character_id" in request:
            found = [c for c in candidates if c.id == request["character_id"]]
        else:  # recorded before tasks kept the id: the model id names the character
            found = [
                c
                for c in candidates
                if c.provider_model_id and c.provider_model_id == request.get("character_model_id")
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
        request.update(
            character=character.name,
            character_id=character.id,
            character_model_id=character.provider_model_id,
        )
        return request

    async def visible(self, guild_id: int, user_id: int, *, moderator: bool) -> list[CharacterRow]:
        return [
            c
            for c in await self.store.guild_characters(guild_id)
            if c.owner_id == user_id or c.shared or moderator
        ]

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

    async def collect(self, character: CharacterRow, message: discord.Message) -> CollectResult:
        """Take the owner's photos (or a zip of them) from one message in the thread."""
        result = CollectResult()
        for attachment in message.attachments:
            name = attachment.filename
            if name.lower().endswith(".zip"):
                await self._collect_zip(character, attachment, message.channel, result)
                continue
            if attachment.size > MAX_IMAGE_BYTES:
                result.problems.append(f"`{_shown(name)}` is larger than 20 MiB")
                continue
            declared = (attachment.content_type or "").split(";")[0]
            if declared and declared not in ALLOWED_IMAGE_TYPES:
                result.problems.append(f"`{_shown(name)}` is not a PNG, JPEG or WebP image")
                continue
            data = await attachment.read()
            await self._add(
                character, data, name, message.channel.id, message.id, attachment.url, result
            )
        return result

    async def _collect_zip(
        self,
        character: CharacterRow,
        attachment: discord.Attachment,
        thread: discord.abc.Messageable,
        result: CollectResult,
    ) -> None:
        name = _shown(attachment.filename)
        if attachment.size > MAX_ZIP_BYTES:
            result.problems.append(f"`{name}` is larger than 200 MiB")
            return
        if character.id in self._unpacking:  # checked and taken with no await between
            result.problems.append(
                f"`{name}`: I am still unpacking another zip for this character; post it "
                "again once I have replied to that one"
            )
            return
        self._unpacking.add(character.id)
        try:
            data = await attachment.read()
            await self._unpack(character, name, data, thread, result)
        finally:
            self._unpacking.discard(character.id)

    async def _unpack(
        self,
        character: CharacterRow,
        zip_name: str,
        data: bytes,
        thread: discord.abc.Messageable,
        result: CollectResult,
    ) -> None:
        """Check the zip's directory, then inflate one entry at a time (never more than a
        photo's worth at once), re-posting photos in batches; stop once the character
        has its 50."""
        entries = _zip_entry_count(data)
        if entries is not None and entries > MAX_ZIP_ENTRIES:
            result.problems.append(
                f"`{zip_name}` lists {entries} files; a zip may hold at most {MAX_ZIP_ENTRIES}"
            )
            return
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error):
            result.problems.append(f"`{zip_name}` is not a valid zip file")
            return
        with archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if len(infos) > MAX_ZIP_ENTRIES:
                result.problems.append(
                    f"`{zip_name}` lists {len(infos)} files; a zip may hold at most "
                    f"{MAX_ZIP_ENTRIES}"
                )
                return
            unpacked = sum(info.file_size for info in infos)
            if unpacked > MAX_ZIP_UNPACKED_BYTES:
                result.problems.append(
                    f"`{zip_name}` unpacks to {unpacked / 1048576:.0f} MiB; a zip may unpack "
                    f"to at most {MAX_ZIP_UNPACKED_BYTES // 1048576} MiB"
                )
                return
            known = {image.sha256 for image in await self.store.character_images(character.id)}
            room = MAX_IMAGES - len(known)
            budget = _upload_budget(thread)
            batch: list[tuple[str, bytes, str]] = []
            batch_bytes = 0
            for index, info in enumerate(infos):
                if room <= 0:
                    result.full += len(infos) - index  # never inflated
                    break
                label = f"`{_shown(info.filename)}` (in the zip)"
                if info.file_size > MAX_IMAGE_BYTES:
                    result.problems.append(f"{label} is larger than 20 MiB")
                    continue
                try:
                    content = await asyncio.to_thread(_read_entry, archive, info)
                except _TooLarge:
                    result.problems.append(f"{label} is larger than 20 MiB")
                    continue
                except (
                    zipfile.BadZipFile,
                    NotImplementedError,
                    RuntimeError,
                    EOFError,
                    OSError,
                    ValueError,
                    zlib.error,
                ):
                    result.problems.append(f"{label} could not be unpacked")
                    continue
                if content is None:
                    result.problems.append(f"{label} is not a PNG, JPEG or WebP image")
                    continue
                sha256 = hashlib.sha256(content).hexdigest()
                if sha256 in known:
                    result.duplicates += 1
                    continue
                known.add(sha256)
                room -= 1
                if batch and (
                    len(batch) >= DISCORD_FILES_PER_MESSAGE or batch_bytes + len(content) > budget
                ):
                    await self._post_unpacked(character, thread, batch, result)
                    batch, batch_bytes = [], 0
                batch.append((info.filename, content, sniff_content_type(content) or ""))
                batch_bytes += len(content)
            if batch:
                await self._post_unpacked(character, thread, batch, result)

    async def _post_unpacked(
        self,
        character: CharacterRow,
        thread: discord.abc.Messageable,
        batch: list[tuple[str, bytes, str]],
        result: CollectResult,
    ) -> None:
        """Re-post photos from a zip so each has a Discord URL, then record them."""
        files = [
            discord.File(io.BytesIO(data), filename=text.clip_filename(name.rsplit("/", 1)[-1]))
            for name, data, _ in batch
        ]
        try:
            posted = await thread.send(
                f"Unpacked {len(batch)} photo(s) from your zip.",
                files=files,
                allowed_mentions=NO_PINGS,
            )
        except discord.HTTPException as exc:
            log.info("character %s: could not re-post unpacked photos (%s)", character.id, exc)
            result.problems.append(f"{len(batch)} photo(s) from the zip could not be re-posted")
            return
        for (name, data, _), attachment in zip(batch, posted.attachments, strict=False):
            await self._add(
                character, data, name, posted.channel.id, posted.id, attachment.url, result
            )

    async def _add(
        self,
        character: CharacterRow,
        data: bytes,
        name: str,
        channel_id: int,
        message_id: int,
        url: str,
        result: CollectResult,
    ) -> None:
        content_type = sniff_content_type(data)
        if content_type not in ALLOWED_IMAGE_TYPES:
            result.problems.append(f"`{_shown(name)}` is not a PNG, JPEG or WebP image")
            return
        sha256 = hashlib.sha256(data).hexdigest()
        image = CharacterImage(sha256, content_type, len(data), channel_id, message_id, url)
        outcome = await self.store.add_character_image(
            character.id, image, now=time.time(), limit=MAX_IMAGES
        )
        if outcome == "added":
            path = self._image_path(character.id, image)
            await asyncio.to_thread(_write, path, data)
            result.added += 1
        elif outcome == "duplicate":
            result.duplicates += 1
        else:
            result.full += 1

    def _image_path(self, character_id: int, image: CharacterImage) -> Path:
        return (
            self.directory / str(character_id) / f"{image.sha256}.{EXTENSIONS[image.content_type]}"
        )

    # --- training ---------------------------------------------------------------------------
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
                    request={"name": character.name, "character_id": character.id},
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
        """The photos' URLs for the provider, refreshed where Discord's have expired."""
        character_id = task.request["character_id"]
        current = await self.store.get_task(task.id)
        if await self.store.get_character(character_id) is None or (
            current is not None and not current.in_flight
        ):
            raise ProviderError(
                ErrorKind.INVALID, "the character was deleted", code="character_deleted"
            )
        images = await self.store.character_images(character_id)
        urls = [await self._fresh_url(image) for image in images]
        return TrainingRequest(name=task.request["name"], image_urls=urls)

    async def training_submitted(self, task: TaskRow, model_id: str) -> None:
        """The provider accepted a training as ``model_id`` (called by the poller once it
        stored the model id, before it records the outcome). Stored at once, even if the
        task was cancelled meanwhile, so a delete or ❌ that reads the task from now on
        finds the model; one that came earlier is seen here, and the model is deleted:
        nothing trains for nobody."""
        current = await self.store.get_task(task.id)
        character = await self.store.get_character(task.request["character_id"])
        if current is None or not current.in_flight or character is None:
            log.info("task %s: training %s outlived its character; deleting", task.id, model_id)
            await self._delete_model(task.provider, model_id)

    async def cancel_training(self, task: TaskRow) -> bool:
        """❌ on a training: stop tracking it and delete the model at the provider."""
        if not await self.store.cancel_task(task.id, now=time.time()):
            return False
        self.wake()
        # Free the character now: its final message may take a while to be posted.
        await self.store.update_character(
            task.request["character_id"], state="failed", error="cancelled"
        )
        current = await self.store.get_task(task.id)
        if current is not None and current.provider_task_id:
            await self._delete_model(current.provider, current.provider_task_id)
        return True

    async def _delete_model(self, provider_id: str, model_id: str) -> bool:
        provider = self.providers.get(provider_id)
        if provider is None:
            return False
        try:
            return await provider.delete_character(model_id)
        except ProviderError as exc:
            log.warning("provider model %s: delete failed (%r)", model_id, exc)
            return False

    async def _fresh_url(self, image: CharacterImage) -> str:
        expires = discord_url_expiry(image.url)
        if expires is None or expires - time.time() > 600:
            return image.url
        channel = self.client.get_partial_messageable(image.channel_id)
        message = await channel.fetch_message(image.message_id)
        wanted = attachment_id_from_url(image.url)
        for attachment in message.attachments:
            if attachment.id == wanted:
                return attachment.url
        return image.url

    async def finish_training(self, task: TaskRow) -> str:
        """Record the outcome on the character; return the message for the thread."""
        character = await self.store.get_character(task.request["character_id"])
        name = task.request["name"]
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
                f"`{_shown(task.error_code or 'unknown')}` {text.clip(reason, 400)}. "
                "Your quota was given back; add or replace photos and run "
                f"`/character train name:{name}` again."
            )
        await self.refresh_panel(await self.store.get_character(character.id))
        return text.clip_message(words, vocabulary.footer(task.id))

    async def refresh_panel(self, character: CharacterRow | None) -> None:
        if character is None or not character.thread_id or not character.panel_message_id:
            return
        channel = self.client.get_partial_messageable(
            character.thread_id, guild_id=character.guild_id
        )
        try:
            await channel.get_partial_message(character.panel_message_id).edit(
                content=panel_text(character), allowed_mentions=NO_PINGS
            )
        except discord.HTTPException:
            log.info("character %s: panel message not editable", character.id)

    # --- deleting ---------------------------------------------------------------------------
    async def delete(self, character: CharacterRow) -> bool:
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
        await asyncio.to_thread(shutil.rmtree, self.directory / str(character.id), True)
        removed_remote = False
        for model_id in dict.fromkeys(m for m in models if m):
            removed_remote |= await self._delete_model(character.provider, model_id)
        return removed_remote


def _shown(name: str) -> str:
    """A member's file (or zip entry) name as quoted in a reply: one line, clipped."""
    return text.clip(" ".join(name.split()), SHOWN_NAME)


def _not_trainable(character: CharacterRow, exc: CharacterUnavailable) -> str:
    if exc.state is None:
        return f"Character `{character.name}` no longer exists."
    if exc.state not in ("collecting", "failed"):
        return f"Character `{character.name}` is already {exc.state}."
    return (
        f"`{character.name}` has {exc.image_count} photo(s); training needs at least "
        f"{MIN_IMAGES}. Post more in <#{character.thread_id}>."
    )


class _TooLarge(Exception):
    pass


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """One entry, inflated only as far as needed: its first bytes tell whether it is a
    photo at all (None if not), and a photo is read to at most 20 MiB, whatever its
    header claims."""
    with archive.open(info) as entry:
        head = entry.read(SNIFF_BYTES)
        if sniff_content_type(head) not in ALLOWED_IMAGE_TYPES:
            return None
        rest = entry.read(MAX_IMAGE_BYTES + 1 - len(head))
    if len(head) + len(rest) > MAX_IMAGE_BYTES:
        raise _TooLarge
    return head + rest


def _zip_entry_count(data: bytes) -> int | None:
    """Entries a zip's end-of-directory record declares, read before ``ZipFile`` parses
    (and builds an object for) every one of them; None when there is no such record."""
    tail = data[-(65535 + 22) :]
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    total, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if total == 0xFFFF or directory_size == 0xFFFFFFFF:
        return MAX_ZIP_ENTRIES + 1  # ZIP64: the real numbers are elsewhere; far too many
    if directory_size > MAX_ZIP_ENTRIES * 1024:
        # ZipFile walks the directory by its size, not by the declared count.
        return max(int(total), MAX_ZIP_ENTRIES + 1)
    return int(total)


def _upload_budget(channel: discord.abc.Messageable) -> int:
    """Bytes one re-post of unpacked photos may carry (the guild's upload limit)."""
    guild = getattr(channel, "guild", None)
    limit = getattr(guild, "filesize_limit", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else 25 * 1024 * 1024


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class TrainingKind(JobKind):
    """The character-training job kind, owned by :class:`Characters`."""

    name = "training"

    def __init__(self, characters: Characters) -> None:
        self.characters = characters

    async def send(self, lease: Lease, provider: Provider, *, now: float, attempt: Attempt) -> str:
        task = lease.task
        training = await self.characters.training_request(task)
        await lease.checkpoint(submitted_at=now)
        attempt.sent = True
        model_id = await provider.train_character(training)
        # Recorded at once, even if the task was cancelled meanwhile, so a delete or
        # ❌ that reads the task from now on finds the model (see training_submitted).
        await lease.checkpoint(provider_task_id=model_id)
        try:
            await self.characters.training_submitted(task, model_id)
        except Exception:  # the model id is returned and recorded regardless
            log.warning("task %s: training_submitted hook failed", task.id, exc_info=True)
        return model_id

    async def status(self, provider: Provider, provider_task_id: str) -> TaskStatus:
        return await provider.character_status(provider_task_id)

    async def final_words(self, task: TaskRow) -> str | None:
        return await self.characters.finish_training(task)

    def about(self, task: TaskRow) -> str:
        return str(task.request.get("name", ""))
