"""A character's photos: taking them in from the thread, keeping the bot's copies, and
handing the provider URLs that still work.

Members post photos (PNG, JPEG or WebP, up to 20 MiB each) or a zip of them. Every
file is sniffed, not trusted by name; a zip's directory is checked before anything is
inflated (entries, total unpacked size), then one entry at a time is inflated, never
more than a photo's worth. Photos from a zip are re-posted so each has a Discord URL a
provider can fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import shutil
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import discord

from reelbot import text
from reelbot.jobs.downloads import sniff_content_type
from reelbot.jobs.inputs import ALLOWED_IMAGE_TYPES, MAX_IMAGE_BYTES, discord_url_expiry
from reelbot.store.base import Store
from reelbot.store.models import CharacterImage, CharacterRow
from reelbot.vocabulary import NO_PINGS

log = logging.getLogger(__name__)

MIN_IMAGES, MAX_IMAGES = 20, 50
MAX_ZIP_BYTES = 200 * 1024 * 1024
# What a zip may unpack to in all, from its own directory (before anything is inflated):
# 50 good phone photos are well under this; a zip bomb is refused unopened.
MAX_ZIP_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_ZIP_ENTRIES = 500  # files and folders listed in one zip
SNIFF_BYTES = 16  # enough to tell PNG, JPEG and WebP apart (sniff_content_type)
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
DISCORD_FILES_PER_MESSAGE = 10
SHOWN_NAME = 100  # a file name quoted in a reply (zip entry names can be 65535 bytes)
URL_MARGIN = 600  # seconds: a Discord URL expiring sooner is fetched afresh for the provider


@dataclass(slots=True)
class CollectResult:
    added: int = 0
    duplicates: int = 0
    full: int = 0
    problems: list[str] = field(default_factory=list)


def shown(name: str) -> str:
    """A member's file (or zip entry) name as quoted in a reply: one line, clipped."""
    return text.clip(" ".join(name.split()), SHOWN_NAME)


def attachment_id_from_url(url: str) -> int | None:
    """Discord attachment URLs end in ``/<attachment id>/<filename>``."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    return int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else None


class Photos:
    """One bot's intake of character photos, and its copies under ``directory``."""

    def __init__(self, *, store: Store, client: discord.Client, directory: Path) -> None:
        self.store = store
        self.client = client
        self.directory = directory
        # Characters with a zip being unpacked right now: one zip at a time each. A
        # character's thread is in one guild, whose events reach one gateway process.
        self._unpacking: set[int] = set()

    # --- intake -----------------------------------------------------------------------------
    async def collect(self, character: CharacterRow, message: discord.Message) -> CollectResult:
        """Take the owner's photos (or a zip of them) from one message in the thread."""
        result = CollectResult()
        for attachment in message.attachments:
            name = attachment.filename
            if name.lower().endswith(".zip"):
                await self._collect_zip(character, attachment, message.channel, result)
                continue
            if attachment.size > MAX_IMAGE_BYTES:
                result.problems.append(f"`{shown(name)}` is larger than 20 MiB")
                continue
            declared = (attachment.content_type or "").split(";")[0]
            if declared and declared not in ALLOWED_IMAGE_TYPES:
                result.problems.append(f"`{shown(name)}` is not a PNG, JPEG or WebP image")
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
        name = shown(attachment.filename)
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
                label = f"`{shown(info.filename)}` (in the zip)"
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
                    NotImplementedError,  # zipfile: a compression method it cannot read
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
            result.problems.append(f"`{shown(name)}` is not a PNG, JPEG or WebP image")
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

    async def remove(self, character_id: int) -> None:
        """Delete the bot's copies of a character's photos (the store's rows go with it)."""
        await asyncio.to_thread(shutil.rmtree, self.directory / str(character_id), True)

    # --- for the provider -------------------------------------------------------------------
    async def urls(self, character_id: int) -> list[str]:
        """The photos' URLs for the provider, refreshed where Discord's have expired."""
        return [
            await self._fresh_url(image)
            for image in await self.store.character_images(character_id)
        ]

    async def _fresh_url(self, image: CharacterImage) -> str:
        expires = discord_url_expiry(image.url)
        if expires is None or expires - time.time() > URL_MARGIN:
            return image.url
        channel = self.client.get_partial_messageable(image.channel_id)
        message = await channel.fetch_message(image.message_id)
        wanted = attachment_id_from_url(image.url)
        for attachment in message.attachments:
            if attachment.id == wanted:
                return attachment.url
        return image.url


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
