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
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import discord

from providers.base import Provider, ProviderError, TrainingRequest
from reelbot import text
from reelbot.config import Config
from reelbot.delivery import NO_PINGS
from reelbot.downloads import sniff_content_type
from reelbot.inputs import ALLOWED_IMAGE_TYPES, MAX_IMAGE_BYTES, discord_url_expiry
from reelbot.service import UserError
from reelbot.store.base import Store
from reelbot.store.models import (
    CharacterImage,
    CharacterRow,
    DuplicateName,
    NewTask,
    QuotaPolicy,
    SubmissionRefused,
    TaskRow,
)

log = logging.getLogger(__name__)

MIN_IMAGES, MAX_IMAGES = 20, 50
MAX_ZIP_BYTES = 200 * 1024 * 1024
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
    # Photos unpacked from a zip: they need a Discord copy (a URL providers can fetch).
    unpacked: list[tuple[str, bytes, str]] = field(default_factory=list)


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
        self,
        guild_id: int,
        user_id: int,
        name_or_id: str,
        *,
        moderator: bool = False,
        usable: bool = False,
    ) -> CharacterRow:
        """A character by id (what autocomplete sends) or name, visible to this user."""
        candidates = await self.store.guild_characters(guild_id)
        wanted = name_or_id.strip()
        found = [c for c in candidates if str(c.id) == wanted.lstrip("#")] or [
            c for c in candidates if c.name.lower() == wanted.lower()
        ]
        mine = [c for c in found if c.owner_id == user_id]
        visible = mine or [c for c in found if c.shared or moderator]
        if not visible:
            raise UserError(
                f"You have no character called `{_shown(wanted)}` (see /character list)."
            )
        character = visible[0]
        if usable and not character.usable_by(user_id):
            state = "not ready yet" if character.owner_id == user_id else "not shared"
            raise UserError(f"Character `{character.name}` is {state}.")
        return character

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
                await self._collect_zip(character, attachment, result)
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
        self, character: CharacterRow, attachment: discord.Attachment, result: CollectResult
    ) -> None:
        if attachment.size > MAX_ZIP_BYTES:
            result.problems.append(f"`{_shown(attachment.filename)}` is larger than 200 MiB")
            return
        data = await attachment.read()
        try:
            entries = await asyncio.to_thread(_read_zip, data)
        except zipfile.BadZipFile:
            result.problems.append(f"`{_shown(attachment.filename)}` is not a valid zip file")
            return
        for name, content in entries:
            if content is None:
                result.problems.append(f"`{_shown(name)}` (in the zip) is larger than 20 MiB")
            elif sniff_content_type(content) not in ALLOWED_IMAGE_TYPES:
                result.problems.append(
                    f"`{_shown(name)}` (in the zip) is not a PNG, JPEG or WebP image"
                )
            else:
                result.unpacked.append((name, content, sniff_content_type(content) or ""))

    async def add_unpacked(
        self, character: CharacterRow, thread: discord.abc.Messageable, result: CollectResult
    ) -> None:
        """Re-post photos from a zip so each has a Discord URL, then record them."""
        batch = result.unpacked
        result.unpacked = []
        for start in range(0, len(batch), DISCORD_FILES_PER_MESSAGE):
            chunk = batch[start : start + DISCORD_FILES_PER_MESSAGE]
            files = [
                discord.File(
                    io.BytesIO(data), filename=text.clip_filename(name.rsplit("/", 1)[-1])
                )
                for name, data, _ in chunk
            ]
            posted = await thread.send(
                f"Unpacked {len(chunk)} photo(s) from your zip.",
                files=files,
                allowed_mentions=NO_PINGS,
            )
            for (name, data, _), attachment in zip(chunk, posted.attachments, strict=False):
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
        if character.state not in ("collecting", "failed"):
            raise UserError(f"Character `{character.name}` is already {character.state}.")
        if character.image_count < MIN_IMAGES:
            raise UserError(
                f"`{character.name}` has {character.image_count} photo(s); training needs at "
                f"least {MIN_IMAGES}. Post more in <#{character.thread_id}>."
            )
        provider = self.provider_for_training(character.provider)
        policy = QuotaPolicy(
            default_limit=self.config.daily_quota,
            max_in_flight=0 if is_moderator else self.config.max_user_in_flight,
        )
        try:
            task = await self.store.create_task(
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
            )
        except SubmissionRefused as exc:
            raise UserError(str(exc)) from exc
        await self.store.update_character(
            character.id, state="training", task_id=task.id, error=None
        )
        return task

    async def training_request(self, task: TaskRow) -> TrainingRequest:
        """The photos' URLs for the provider, refreshed where Discord's have expired."""
        character_id = task.request["character_id"]
        images = await self.store.character_images(character_id)
        urls = [await self._fresh_url(image) for image in images]
        return TrainingRequest(name=task.request["name"], image_urls=urls)

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
        if character is None:
            return (
                f"Character `{name}` was deleted before its training finished.\n-# Task #{task.id}"
            )
        if task.state == "succeeded":
            await self.store.update_character(
                character.id, state="ready", provider_model_id=task.provider_task_id
            )
            words = (
                f"<@{task.requester_id}> character **{name}** is ready! 🎉 Use it with "
                f"`/animate character:{name}`."
            )
        else:
            reason = task.error_message or task.error_code or "unknown error"
            await self.store.update_character(character.id, state="failed", error=reason)
            words = (
                f"<@{task.requester_id}> training **{name}** failed: "
                f"`{_shown(task.error_code or 'unknown')}` {text.clip(reason, 400)}. "
                "Your quota was given back; add or replace photos and run "
                f"`/character train name:{name}` again."
            )
        await self.refresh_panel(await self.store.get_character(character.id))
        return text.clip_message(words, f"\n-# Task #{task.id}")

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
        """Remove the character, its photos and, where the API allows, the provider model."""
        removed_remote = False
        provider = self.providers.get(character.provider)
        if provider is not None and character.provider_model_id:
            try:
                removed_remote = await provider.delete_character(character.provider_model_id)
            except ProviderError as exc:
                log.warning("character %s: provider delete failed (%r)", character.id, exc)
        if character.task_id is not None and character.state == "training":
            await self.store.cancel_task(character.task_id, now=time.time())
            self.wake()
        await self.store.delete_character(character.id)
        await asyncio.to_thread(shutil.rmtree, self.directory / str(character.id), True)
        return removed_remote


def _shown(name: str) -> str:
    """A member's file (or zip entry) name as quoted in a reply: one line, clipped."""
    return text.clip(" ".join(name.split()), SHOWN_NAME)


def _read_zip(data: bytes) -> list[tuple[str, bytes | None]]:
    """Entries of a zip; None for one too large to take (never inflated: zip bombs)."""
    entries: list[tuple[str, bytes | None]] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist()[: MAX_IMAGES * 2]:
            if info.is_dir():
                continue
            too_big = info.file_size > MAX_IMAGE_BYTES
            entries.append((info.filename, None if too_big else archive.read(info)))
    return entries


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
