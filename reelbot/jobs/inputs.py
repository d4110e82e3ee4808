"""First-frame images kept by the bot, so a 🔁 days later never needs an expired URL.

The bytes live in ``DATA_DIR/inputs/<sha256>.<ext>`` (content-addressed: a re-run
shares the file). A task's request stores only the metadata below.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from providers.base import InputImage

log = logging.getLogger(__name__)

ALLOWED_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# A URL must outlive the provider's fetch of it; below this margin we get a fresh one.
URL_MARGIN = 600.0

UrlRefresher = Callable[[dict[str, Any]], Awaitable[str | None]]


def discord_url_expiry(url: str) -> float | None:
    """Discord CDN URLs carry their expiry as hex unix seconds in ``ex``."""
    values = parse_qs(urlsplit(url).query).get("ex")
    if not values:
        return None
    try:
        return float(int(values[0], 16))
    except ValueError:
        return None


class InputStore:
    def __init__(self, directory: Path, refresher: UrlRefresher | None = None) -> None:
        self.directory = directory
        self.refresher = refresher

    def _path(self, sha256: str, content_type: str) -> Path:
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[content_type]
        return self.directory / f"{sha256}.{ext}"

    @staticmethod
    def describe(data: bytes, content_type: str, *, url: str | None) -> dict[str, Any]:
        """The metadata a task's request stores for these bytes (nothing is written)."""
        sha256 = hashlib.sha256(data).hexdigest()
        meta: dict[str, Any] = {"sha256": sha256, "content_type": content_type, "size": len(data)}
        if url:
            meta["url"] = url
            meta["url_expires_at"] = discord_url_expiry(url)
        return meta

    async def keep(self, data: bytes, meta: dict[str, Any]) -> None:
        """Write the bytes ``describe`` described (once: the name is their hash)."""
        await asyncio.to_thread(_write_once, self._path(meta["sha256"], meta["content_type"]), data)

    async def save(self, data: bytes, content_type: str, *, url: str | None) -> dict[str, Any]:
        """Keep the bytes; return the metadata to store in the task's request."""
        meta = self.describe(data, content_type, url=url)
        await self.keep(data, meta)
        return meta

    async def touch(self, meta: dict[str, Any]) -> bool:
        """Mark a kept image as just used (a re-run); False when it is no longer kept."""
        path = self._path(meta["sha256"], meta["content_type"])
        try:
            await asyncio.to_thread(os.utime, path)
        except FileNotFoundError:
            return False
        return True

    async def sweep(self, in_use: set[str], *, now: float, grace: float) -> int:
        """Remove the images whose hash is not ``in_use`` and that nobody wrote or used
        within ``grace`` seconds, and temp files left by a crash; the count removed."""
        return await asyncio.to_thread(_sweep, self.directory, in_use, now - grace)

    async def input_image(self, meta: dict[str, Any], *, refresh: bool = False) -> InputImage:
        """The kept image with a URL that works now (None: providers use the data URL).

        ``refresh`` never reuses the stored URL: a re-run's URL may have been revoked
        even before its ``ex`` time.
        """
        path = self._path(meta["sha256"], meta["content_type"])
        data = await asyncio.to_thread(path.read_bytes)
        url = await self._refreshed(meta) if refresh else await self._fresh_url(meta)
        return InputImage(url=url, data=data, content_type=meta["content_type"])

    async def _fresh_url(self, meta: dict[str, Any]) -> str | None:
        url: str | None = meta.get("url")
        expires = meta.get("url_expires_at")
        if url and (expires is None or expires - time.time() > URL_MARGIN):
            return url
        return await self._refreshed(meta)

    async def _refreshed(self, meta: dict[str, Any]) -> str | None:
        if self.refresher is None:
            return None
        try:
            return await self.refresher(meta)
        except Exception:
            log.warning("could not refresh the input image URL", exc_info=True)
            return None


def _write_once(path: Path, data: bytes) -> None:
    """Write ``path`` unless it exists. Each writer has its own temp file (several
    threads may save the same image at once) and renames it into place atomically: a
    crash never leaves a half-written image under its name, and the last rename of
    identical bytes wins harmlessly."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sweep(directory: Path, in_use: set[str], cutoff: float) -> int:
    removed = 0
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for path in entries:
        name = path.name
        # A temp file is a write that never finished; an image, one no recent task uses.
        unfinished = name.startswith(".") and name.endswith(".tmp")
        stale = unfinished or path.stem not in in_use
        try:
            if stale and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("removed %d first-frame image(s) no recent task uses", removed)
    return removed
