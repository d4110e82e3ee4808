"""Posting to Discord with the bot token: status edits and final messages, exactly once.

Interaction tokens die after 15 minutes and videos take longer, so everything here
goes through channel routes (``PartialMessageable``), which also work in a worker
process without a gateway connection.

Exactly-once: the final message carries a nonce derived from the task id with
``enforce_nonce`` (Discord returns the existing message for a repeated nonce, but only
for a few minutes). Before each send the store records which channel the message is
going to and when; a later attempt first looks for an earlier copy there, around that
time, and posts nothing while it cannot look. The store's delivered marker is set only
after Discord accepted the message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import discord

from providers.base import Output, Provider, ProviderError
from reelbot import buttons, messages, text, vocabulary
from reelbot.jobs.downloads import DownloadedFile, DownloadError, decode_inline, download_to_temp
from reelbot.jobs.kinds import JobKind
from reelbot.jobs.lease import Lease, applied
from reelbot.store.base import Store
from reelbot.store.models import TaskChange, TaskRow
from reelbot.vocabulary import CANCEL_EMOJI, NO_PINGS, RETRY_EMOJI  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

STATUS_EDIT_INTERVAL = 5.0  # seconds between non-final status edits of one message
MAX_DELIVERY_ATTEMPTS = 12
# How long after a send started its message can have been created: discord.py retries a
# rate-limited or failed upload on its own for a while before giving up.
SEND_WINDOW = 15 * 60.0
CLOCK_SKEW = 60.0  # our clock against Discord's snowflake timestamps
MAX_SETTLED = 100_000  # Delivery._settled: one entry per task in flight
task_nonce = vocabulary.nonce


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
        kinds: Mapping[str, JobKind],
    ) -> None:
        self.client = client
        self.store = store
        self.providers = providers
        self.session = session
        self.settings = settings
        # PUBLIC_BASE_URL set: (task id, long url, expiry) -> a short redirect link.
        self.shorten: Callable[[int, str, float | None], Awaitable[str]] | None = None
        # What each kind of task shows and says at the end (its owner registers it).
        self.kinds = kinds
        # "usually ready in about N min" for a task in flight (wiring.py: eta_of).
        self.eta: Callable[[TaskRow], str | None] = lambda _task: None
        # Whether a final message gets Vary (wiring.py: Generations.can_vary).
        self.can_vary: Callable[[TaskRow], Awaitable[bool]] = self._takes_a_seed
        # Recent completion times per provider and model, fed as videos are delivered.
        self.eta_book = buttons.EtaBook()
        # Per task in flight: what its status message shows, as of the task fields
        # the text is made of (_shown_key). Most polls change none of them ("still
        # running, 50 %"), and rendering the text again to find it unchanged was a
        # measurable part of every poll's CPU.
        self._settled: dict[int, tuple[object, ...]] = {}

    # --- status message -------------------------------------------------------------------
    async def update_status(self, task: TaskRow, *, force: bool = False) -> TaskChange:
        """Edit the status message if its text changed, at most every few seconds; the
        fields to record (the poller writes them)."""
        if task.status_message_id is None:
            return {}
        final = task.state in ("succeeded", "failed", "cancelled")
        key = _shown_key(task)
        if self._settled.get(task.id) == key:
            # Rendered from these very fields before and shown as it is. For a final
            # state that includes the call after the delivery, whose row was claimed
            # before the poll's "done" edit was recorded (it still holds the text from
            # before that edit): it used to edit the message a second time.
            if task.delivered:
                del self._settled[task.id]  # nothing renders this task again
            return {}
        shown_eta = messages.shown_eta(task.status_text)
        eta = shown_eta or self.eta(task)
        text = messages.status_text(task, title=self.kinds[task.kind].status_title(task), eta=eta)
        if text == task.status_text:
            if shown_eta is not None:  # without one an estimate may still come: render again
                self._settle(task.id, key)
            return {}
        now = time.time()
        if (
            not (force or final)
            and task.status_edited_at
            and now - task.status_edited_at < STATUS_EDIT_INTERVAL
        ):
            return {}
        channel = self.client.get_partial_messageable(task.reply_channel_id, guild_id=task.guild_id)
        try:
            # The Cancel button while in flight; none once the task is over.
            await channel.get_partial_message(task.status_message_id).edit(
                content=text, allowed_mentions=NO_PINGS, view=buttons.status_view(task)
            )
        except discord.NotFound:
            log.info("task %s: status message is gone; not editing it again", task.id)
            return {"status_message_id": None}
        except discord.HTTPException as exc:
            if exc.status == 400:
                # Permanent: the same text would be refused on every poll. Show a
                # shortened status instead and remember the text as handled.
                await self._status_refused(task, channel, exc)
            else:
                log.warning("task %s: status edit failed (%s)", task.id, exc.status)
                return {}
        if final:
            self._settle(task.id, key)  # as the delivery's stale copy of the row reads
        elif eta is not None:
            self._settle(task.id, (*key[:-1], text))
        return {"status_text": text, "status_edited_at": now}

    def _settle(self, task_id: int, key: tuple[object, ...]) -> None:
        if len(self._settled) >= MAX_SETTLED and task_id not in self._settled:
            self._settled.clear()  # forgetting only costs a render each
        self._settled[task_id] = key

    async def _status_refused(
        self, task: TaskRow, channel: discord.PartialMessageable, exc: discord.HTTPException
    ) -> None:
        assert task.status_message_id is not None
        log.error(
            "task %s: Discord refused the status edit (%s/%s: %s); showing a shortened status",
            task.id,
            exc.status,
            exc.code,
            text.clip(exc.text, 500),
        )
        try:
            await channel.get_partial_message(task.status_message_id).edit(
                content=messages.refused_status_text(task, title=self.kinds[task.kind].title),
                allowed_mentions=NO_PINGS,
            )
        except discord.HTTPException as again:
            log.error("task %s: the shortened status was refused too (%s)", task.id, again.status)

    # --- final message ----------------------------------------------------------------------
    async def deliver(self, lease: Lease) -> TaskChange:
        """Post the final message of a finished task; return the fields to record.

        Nothing here writes the row but through ``lease`` (the marks stored before a
        send, a refund); the outcome is returned for the poller to apply.
        """
        task = lease.task
        if task.delivered:
            return {"next_action_at": None}
        if task.state in ("failed", "cancelled"):
            await lease.refund()
        attempt = lease.task.delivery_attempts + 1
        await lease.checkpoint(delivery_attempts=attempt)
        task = lease.task
        kind = self.kinds.get(task.kind)
        try:
            existing = await self._find_earlier_copy(task)
            words = None
            if existing is None and kind is not None:
                words = await kind.final_words(task)
            if existing is not None:
                message = existing
            elif words is not None:
                message = await self._post_text(lease, words)
            elif task.state == "succeeded":
                message = await self._post_video(lease)
            elif task.state == "cancelled":
                message = await self._post_text(lease, messages.cancelled_text(task, None))
            else:
                message = await self._post_text(lease, messages.failure_text(task))
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
            # The provider made the video but we cannot fetch it: tell the requester. The
            # failure is part of the outcome (the poller's release still finds the row
            # in the state it claimed), and the failure text is delivered at once.
            failed: TaskChange = {
                "state": "failed",
                "error_code": "download_failed",
                "error_message": str(exc),
            }
            lease.task = applied(lease.task, failed)
            return failed | await self.deliver(lease)

        log.info("task %s delivered as message %s", task.id, message.id)
        self.eta_book.observe(task)
        # The status message and the 🔁 affordance follow once the poller recorded this.
        return {"delivered": True, "result_message_id": message.id, "next_action_at": None}

    async def offer_retry(self, task: TaskRow) -> None:
        """Add the bot's 🔁 to a recorded final message: only now does pressing it work
        (🔁 finds its task by the recorded message). Videos only, not trainings."""
        kind = self.kinds.get(task.kind)
        if task.result_message_id is None or kind is None or not kind.rerunnable:
            return
        channel = self.client.get_partial_messageable(
            task.delivery_channel_id or task.reply_channel_id, guild_id=task.guild_id
        )
        with contextlib.suppress(discord.HTTPException):
            await channel.get_partial_message(task.result_message_id).add_reaction(RETRY_EMOJI)

    async def _find_earlier_copy(self, task: TaskRow) -> discord.Message | None:
        """The message an interrupted attempt may have posted, or None when there is none.

        Only the channel recorded before that send can hold it, and only among the
        messages created while the send could have been in progress, however many came
        after. Raises _RetryLater when Discord cannot show that stretch of history:
        posting blind could post twice.
        """
        if task.delivery_channel_id is None or task.delivery_sent_at is None:
            return None
        channel = self.client.get_partial_messageable(
            task.delivery_channel_id, guild_id=task.guild_id
        )
        since = discord.utils.time_snowflake(_utc(task.delivery_sent_at - CLOCK_SKEW), high=False)
        until = task.delivery_sent_at + SEND_WINDOW + CLOCK_SKEW
        try:
            async for message in channel.history(
                limit=None, after=discord.Object(since), oldest_first=True
            ):
                if message.created_at.timestamp() > until:
                    break
                if self._is_final_message(message, task):
                    log.info("task %s: found an earlier delivery %s", task.id, message.id)
                    return message
        except discord.NotFound:
            return None  # the channel is gone, and any copy with it
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            raise _RetryLater(f"cannot look for an earlier copy ({exc})") from exc
        return None

    def _is_final_message(self, message: discord.Message, task: TaskRow) -> bool:
        me = self.client.user
        # The status message carries the same footer: it is not a delivery.
        return (
            me is not None
            and message.author.id == me.id
            and message.id != task.status_message_id
            and vocabulary.is_final_text(message.content, task.id)
        )

    async def _post_text(self, lease: Lease, content: str) -> discord.Message:
        return await self._send(lease, content=content, files=[])

    async def _post_video(self, lease: Lease) -> discord.Message:
        task = lease.task
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
            links = await self._shortened(task, links)
            outgoing = messages.success_message(task, links)
            try:
                return await self._send(
                    lease, content=outgoing.content, files=attachments, embeds=outgoing.embeds
                )
            except _TooLarge:
                links = [
                    (o["kind"], o["url"], o.get("expires_at")) for o in task.outputs if o.get("url")
                ]
                if not links:
                    raise _PermanentOutputError(
                        "the video is larger than this server's upload limit and the provider "
                        "gave no link to it"
                    ) from None
                links = await self._shortened(task, links)
                outgoing = messages.success_message(task, links)
                return await self._send(
                    lease, content=outgoing.content, files=[], embeds=outgoing.embeds
                )
        finally:
            for f in files:
                f.remove()

    async def _shortened(
        self, task: TaskRow, links: list[tuple[str, str, float | None]]
    ) -> list[tuple[str, str, float | None]]:
        """With PUBLIC_BASE_URL (``shorten`` set), a link too long to sit in the text
        becomes a short redirect through the bot (SPEC §3); else it stays as it is
        (messages.success_message then masks it in an embed)."""
        if self.shorten is None:
            return links
        out = []
        for kind, url, expires_at in links:
            if url and not text.fits(url, messages.INLINE_URL_LIMIT):
                try:
                    url = await self.shorten(task.id, url, expires_at)
                except Exception:
                    log.warning("task %s: could not make a short link", task.id, exc_info=True)
            out.append((kind, url, expires_at))
        return out

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
        self,
        lease: Lease,
        *,
        content: str,
        files: list[tuple[Path, str]],
        embeds: list[discord.Embed] | None = None,
    ) -> discord.Message:
        """Send in the thread; fall back to the parent channel if the thread is gone or
        closed to the bot. ``files`` are (path, filename) pairs.

        A 400 (50035 "Invalid Form Body" and kin) is permanent: the same message would
        be refused on every retry, so a shortened fallback goes out at once instead,
        telling the requester and giving the quota back."""
        task = lease.task
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
            # Recorded before sending: if we die before the store hears back, the next
            # attempt knows where (and when) to look for what this send may have posted.
            await lease.checkpoint(delivery_channel_id=channel_id, delivery_sent_at=time.time())
            try:
                # discord.py closes the files after a send, even a failed one: open anew.
                attachments = [discord.File(path, filename=name) for path, name in files]
                return await channel.send(
                    content=_with_note(note, content),
                    files=attachments,
                    embeds=embeds or [],
                    allowed_mentions=mentions,
                    nonce=task_nonce(task.id),
                    view=await self.final_view(task),  # the action bar (reelbot/buttons.py)
                )
            except discord.HTTPException as exc:
                if exc.status == 413 or exc.code == 40005:
                    raise _TooLarge() from exc
                if exc.status == 400:
                    return await self._post_refused_fallback(lease, channel, note, mentions, exc)
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
        # Every target refused the message outright: nothing was posted, nothing to find.
        await lease.checkpoint(delivery_channel_id=None, delivery_sent_at=None)
        if missing == len(targets):
            raise _Nowhere("the thread and the channel of the request are gone")
        # Missing permissions can be fixed by a moderator: keep the result and retry.
        raise _RetryLater(f"no channel accepted the message ({last_error})")

    async def final_view(self, task: TaskRow) -> discord.ui.View:
        """The action bar of a final message (reelbot/buttons.py): for a video; Vary
        only where the provider and model take a seed. Other kinds (a training): none."""
        kind = self.kinds.get(task.kind)
        rerunnable = kind is None or kind.rerunnable
        can_vary = rerunnable and task.state == "succeeded" and await self.can_vary(task)
        return buttons.final_view(task, rerunnable=rerunnable, can_vary=can_vary)

    async def _takes_a_seed(self, task: TaskRow) -> bool:
        provider = self.providers.get(task.provider)
        return provider is not None and "seed" in provider.capabilities.options

    async def _post_refused_fallback(
        self,
        lease: Lease,
        channel: discord.PartialMessageable,
        note: str,
        mentions: discord.AllowedMentions,
        exc: discord.HTTPException,
    ) -> discord.Message:
        """Discord refused the final message: post words that cannot break a limit,
        tell the requester, and give the quota back (they did not get their result)."""
        task = lease.task
        log.error(
            "task %s: Discord refused the final message (%s/%s: %s); posting a shortened "
            "fallback instead of retrying",
            task.id,
            exc.status,
            exc.code,
            text.clip(exc.text, 500),
        )
        refunded = await lease.refund() or task.refunded
        try:
            # The refused post created nothing, so the nonce is still free.
            return await channel.send(
                content=note + messages.refused_text(task, refunded=refunded),
                allowed_mentions=mentions,
                nonce=task_nonce(task.id),
            )
        except discord.HTTPException as again:
            if again.status == 400:
                raise _Refused(f"Discord refused even the fallback ({again.code})") from again
            raise _RetryLater(f"Discord answered {again.status} to the fallback") from again
        except (aiohttp.ClientError, TimeoutError) as again:
            raise _RetryLater(f"Discord unreachable ({type(again).__name__})") from again


def _shown_key(task: TaskRow) -> tuple[object, ...]:
    """What a status text is made of that can change while the task is in flight (the
    rest, such as its prompt or requester, is fixed once it exists; a failover's note
    comes with a new provider and state), and last the text its message shows."""
    return (task.state, task.raw_state, task.progress, task.provider, task.status_text)


def _with_note(note: str, content: str) -> str:
    """``note + content`` within 2000 characters, keeping the ``-# Task #N`` footer
    (an earlier copy is recognised by it)."""
    head, sep, tail = content.rpartition(vocabulary.FOOTER_MARK)
    if not sep:
        return text.clip_message(note + content)
    return text.clip_message(note + head, sep + tail)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


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


class _Refused(_Nowhere):
    """Discord refused the final message and its fallback: nothing left to try."""
