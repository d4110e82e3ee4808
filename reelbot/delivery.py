"""Posting to Discord with the bot token: status edits and final messages, exactly once.

Interaction tokens die after 15 minutes and videos take longer, so everything here
goes through channel routes (``PartialMessageable``), which also work in a worker
process without a gateway connection.

Exactly-once: the final message carries a nonce derived from the task id with
``enforce_nonce`` (Discord returns the existing message for a repeated nonce), and
a retried delivery first looks for an earlier copy in the thread; the store's
delivered marker is set only after Discord accepted the message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord

from providers.base import Output, Provider, ProviderError
from reelbot import messages
from reelbot.downloads import DownloadedFile, DownloadError, decode_inline, download_to_temp
from reelbot.store.base import Store
from reelbot.store.models import TaskRow

log = logging.getLogger(__name__)

RETRY_EMOJI = "🔁"
CANCEL_EMOJI = "❌"
STATUS_EDIT_INTERVAL = 5.0  # seconds between non-final status edits of one message
MAX_DELIVERY_ATTEMPTS = 12
HISTORY_SCAN = 50
NO_PINGS = discord.AllowedMentions.none()
STATUS_TITLES = ("**Prompt:**", "**Character training**")  # see messages.status_text


def task_nonce(task_id: int) -> str:
    return f"reelbot-{task_id}"  # Discord nonces are at most 25 characters


def task_footer(task_id: int) -> str:
    return f"Task #{task_id}"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_download_bytes: int
    allow_local_urls: bool
    temp_dir: Path | None = None


class Delivery:
    def __init__(
        self,
        *,
        client: discord.Client,
        store: Store,
        providers: dict[str, Provider],
        session: aiohttp.ClientSession,
        settings: DeliverySettings,
    ) -> None:
        self.client = client
        self.store = store
        self.providers = providers
        self.session = session
        self.settings = settings
        # Final words for task kinds other than videos (e.g. "training" → characters).
        self.finishers: dict[str, Callable[[TaskRow], Awaitable[str]]] = {}

    # --- status message -------------------------------------------------------------------
    async def update_status(self, task: TaskRow, *, force: bool = False) -> None:
        """Edit the status message if its text changed, at most every few seconds."""
        if task.status_message_id is None:
            return
        text = messages.status_text(task)
        if text == task.status_text:
            return
        now = time.time()
        final = task.state in ("succeeded", "failed", "cancelled")
        if (
            not (force or final)
            and task.status_edited_at
            and now - task.status_edited_at < STATUS_EDIT_INTERVAL
        ):
            return
        channel = self.client.get_partial_messageable(task.reply_channel_id, guild_id=task.guild_id)
        try:
            await channel.get_partial_message(task.status_message_id).edit(
                content=text, allowed_mentions=NO_PINGS
            )
        except discord.NotFound:
            log.info("task %s: status message is gone; not editing it again", task.id)
            await self.store.update_task(task.id, status_message_id=None)
            return
        except discord.HTTPException as exc:
            log.warning("task %s: status edit failed (%s)", task.id, exc.status)
            return
        await self.store.update_task(task.id, status_text=text, status_edited_at=now)

    # --- final message ----------------------------------------------------------------------
    async def deliver(self, task: TaskRow) -> dict[str, Any]:
        """Post the final message of a finished task; return the fields to record."""
        if task.delivered:
            return {"next_action_at": None}
        if task.state in ("failed", "cancelled"):
            await self.store.refund(task.id)
            task = await self.store.get_task(task.id) or task
        attempt = task.delivery_attempts + 1
        await self.store.update_task(task.id, delivery_attempts=attempt)
        try:
            existing = await self._find_earlier_copy(task) if attempt > 1 else None
            if existing is not None:
                message = existing
            elif task.kind in self.finishers:
                message = await self._post_text(task, await self.finishers[task.kind](task))
            elif task.state == "succeeded":
                message = await self._post_video(task)
            elif task.state == "cancelled":
                message = await self._post_text(task, messages.cancelled_text(task, None))
            else:
                message = await self._post_text(task, messages.failure_text(task))
        except _RetryLater as exc:
            if attempt >= MAX_DELIVERY_ATTEMPTS:
                log.error(
                    "task %s: giving up delivery after %d attempts: %s", task.id, attempt, exc
                )
                return {"next_action_at": None}
            delay = min(30.0 * 2 ** (attempt - 1), 3600.0)
            log.warning("task %s: delivery failed (%s); retrying in %.0fs", task.id, exc, delay)
            return {"next_action_at": time.time() + delay}
        except _Nowhere as exc:
            log.error("task %s: cannot deliver, %s; giving up (see /jobs)", task.id, exc)
            return {"next_action_at": None}
        except _PermanentOutputError as exc:
            # The provider made the video but we cannot fetch it: tell the requester.
            await self.store.update_task(
                task.id, state="failed", error_code="download_failed", error_message=str(exc)
            )
            await self.store.refund(task.id)
            failed = await self.store.get_task(task.id)
            assert failed is not None
            return await self.deliver(failed)

        await self.store.mark_delivered(task.id, message.id, now=time.time())
        log.info("task %s delivered as message %s", task.id, message.id)
        if task.kind == "video":  # 🔁 runs videos again; a training is not re-run that way
            with contextlib.suppress(discord.HTTPException):
                await message.add_reaction(RETRY_EMOJI)
        final = await self.store.get_task(task.id)
        if final is not None:
            await self.update_status(final, force=True)
        return {"next_action_at": None}

    async def _find_earlier_copy(self, task: TaskRow) -> discord.Message | None:
        """A previous attempt may have posted before the process died: find it."""
        channel = self.client.get_partial_messageable(task.reply_channel_id, guild_id=task.guild_id)
        me = self.client.user
        footer = task_footer(task.id)
        try:
            async for message in channel.history(limit=HISTORY_SCAN):
                # The status message carries the same footer: it is not a delivery.
                if (
                    me
                    and message.author.id == me.id
                    and message.id != task.status_message_id
                    and message.content.endswith(footer)
                    and not message.content.startswith(STATUS_TITLES)
                ):
                    log.info("task %s: found an earlier delivery %s", task.id, message.id)
                    return message
        except discord.HTTPException:
            return None
        return None

    async def _post_text(self, task: TaskRow, content: str) -> discord.Message:
        return await self._send(task, content=content, files=[])

    async def _post_video(self, task: TaskRow) -> discord.Message:
        limit = self._upload_limit(task.guild_id)
        provider = self.providers.get(task.provider)
        files: list[DownloadedFile] = []
        links: list[tuple[str, str, float | None]] = []
        try:
            for raw in task.outputs:
                output = await self._resolved(provider, Output(**raw))
                try:
                    fetched = await self._fetch(output)
                except _OverDownloadCap:  # too big to fetch, so too big to upload: link it
                    links.append((output.kind, output.url or "", output.expires_at))
                    continue
                if fetched.size <= limit:
                    files.append(fetched)
                    continue
                fetched.remove()
                if output.url:
                    links.append((output.kind, output.url, output.expires_at))
            if not files and not links:
                raise _PermanentOutputError("the provider returned no downloadable output")
            attachments = [(f.path, _filename(task, i, f)) for i, f in enumerate(files)]
            content = messages.success_text(task, links)
            try:
                return await self._send(task, content=content, files=attachments)
            except _TooLarge:
                links = [
                    (o["kind"], o["url"], o.get("expires_at")) for o in task.outputs if o.get("url")
                ]
                if not links:
                    raise _PermanentOutputError(
                        "the video is larger than this server's upload limit and the provider "
                        "gave no link to it"
                    ) from None
                return await self._send(task, content=messages.success_text(task, links), files=[])
        finally:
            for f in files:
                f.remove()

    async def _resolved(self, provider: Provider | None, output: Output) -> Output:
        if output.file_id and not output.url and provider is not None:
            try:
                return await provider.resolve_output(output)
            except ProviderError as exc:
                if exc.retryable:
                    raise _RetryLater(f"resolving output: {exc.message}") from exc
                raise _PermanentOutputError(exc.message) from exc
        return output

    async def _fetch(self, output: Output) -> DownloadedFile:
        try:
            if output.data_base64:
                return decode_inline(
                    output.data_base64,
                    max_bytes=self.settings.max_download_bytes,
                    directory=self.settings.temp_dir,
                )
            if not output.url:
                raise _PermanentOutputError("an output has neither a URL nor data")
            return await download_to_temp(
                self.session,
                output.url,
                max_bytes=self.settings.max_download_bytes,
                allow_local=self.settings.allow_local_urls,
                directory=self.settings.temp_dir,
            )
        except DownloadError as exc:
            if exc.too_large and output.url:
                raise _OverDownloadCap() from exc
            if exc.permanent:
                raise _PermanentOutputError(str(exc)) from exc
            raise _RetryLater(str(exc)) from exc

    def _upload_limit(self, guild_id: int) -> int:
        guild = self.client.get_guild(guild_id)
        return (
            guild.filesize_limit
            if guild is not None
            else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
        )

    async def _send(
        self, task: TaskRow, *, content: str, files: list[tuple[Path, str]]
    ) -> discord.Message:
        """Send in the thread; fall back to the parent channel if the thread is gone or
        closed to the bot. ``files`` are (path, filename) pairs."""
        mentions = discord.AllowedMentions(
            users=[discord.Object(task.requester_id)], roles=False, everyone=False
        )
        targets = [task.reply_channel_id]
        if task.thread_id and task.channel_id != task.thread_id:
            targets.append(task.channel_id)
        last_error: discord.HTTPException | None = None
        missing = 0
        for index, channel_id in enumerate(targets):
            channel = self.client.get_partial_messageable(channel_id, guild_id=task.guild_id)
            note = ""
            if index > 0 and last_error is not None:
                why = "is gone" if last_error.status == 404 else "does not let me post"
                note = f"-# (the request's thread {why}, so the result is here)\n"
            try:
                # discord.py closes the files after a send, even a failed one: open anew.
                attachments = [discord.File(path, filename=name) for path, name in files]
                return await channel.send(
                    content=note + content,
                    files=attachments,
                    allowed_mentions=mentions,
                    nonce=task_nonce(task.id),
                )
            except discord.HTTPException as exc:
                if exc.status == 413 or exc.code == 40005:
                    raise _TooLarge() from exc
                if exc.status in (403, 404):
                    log.warning(
                        "task %s: cannot post in %s (%s); trying fallback",
                        task.id,
                        channel_id,
                        exc.status,
                    )
                    last_error = exc
                    missing += exc.status == 404
                    continue
                raise _RetryLater(f"Discord answered {exc.status}") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _RetryLater(f"Discord unreachable ({type(exc).__name__})") from exc
        if missing == len(targets):
            raise _Nowhere("the thread and the channel of the request are gone")
        # Missing permissions can be fixed by a moderator: keep the result and retry.
        raise _RetryLater(f"no channel accepted the message ({last_error})")


def _filename(task: TaskRow, index: int, f: DownloadedFile) -> str:
    return f"reelbot-{task.id}-{index + 1}{f.path.suffix}"


class _RetryLater(Exception):
    pass


class _PermanentOutputError(Exception):
    pass


class _TooLarge(Exception):
    pass


class _OverDownloadCap(Exception):
    pass


class _Nowhere(Exception):
    pass
