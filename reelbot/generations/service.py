"""Generations: the rules behind /animate, 🔁 and ❌, kept out of the cogs.

Cogs translate Discord events into calls here and turn :class:`UserError` into
ephemeral replies; everything that must be true of a request is checked here,
before a task exists and long before a provider is called.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import discord

from providers.base import ErrorKind, InputImage, Provider, ProviderError
from reelbot import buttons, messages, text
from reelbot.config import Config
from reelbot.failover import mapping
from reelbot.failover.book import HealthBook, Move
from reelbot.failover.health import describe
from reelbot.jobs.downloads import sniff_content_type
from reelbot.jobs.inputs import ALLOWED_IMAGE_TYPES, MAX_IMAGE_BYTES, InputStore
from reelbot.jobs.model import VideoRequest
from reelbot.settings import ServerSettings, SettingsError
from reelbot.spending import Spending
from reelbot.store.base import Store
from reelbot.store.models import NewTask, SubmissionRefused, TaskRow
from reelbot.vocabulary import CANCEL_EMOJI, NO_PINGS

log = logging.getLogger(__name__)

MAX_PROMPT = 2000
MAX_DURATION = 60
MAX_SEED = 2**31 - 1
THREAD_NAME_LIMIT = 90  # within Discord's 100, leaving room for an ellipsis
THREAD_ARCHIVE_MINUTES = 1440
ECHO_LIMIT = 100  # what a member typed, quoted back in a refusal
ANNOUNCE_GRACE = 120.0  # seconds a new task waits for /animate to post its status message

OPTION_LABELS = {
    "duration": "duration",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "seed": "seed",
    "negative_prompt": "negative_prompt",
    "motion": "motion",
    "character": "character",
}


INPUT_SWEEP_GRACE = 3600.0  # seconds: an image written or re-used this recently stays
DAY = 86400.0


def _offers(option: str, provider: Provider) -> bool:
    return option in provider.capabilities.options


class UserError(Exception):
    """Bad input or a refused action; the message is shown to the user, ephemerally."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A validated first-frame image, not stored yet: ``create`` keeps it on disk only
    once the request has passed every check (provider precheck, quota, cooldown)."""

    data: bytes = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class AnimateRequest:
    prompt: str
    provider: str | None = None
    model: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    motion: str | None = None
    character: str | None = None
    has_image: bool = False


def clean_text(value: str, *, field: str, limit: int) -> str:
    """Trimmed text without hidden characters (newlines, tabs and emoji sequences are fine)."""
    value = value.strip()
    if not value:
        raise UserError(f"The {field} is empty. Describe what you want to see.")
    if len(value) > limit:
        raise UserError(f"The {field} is {len(value)} characters long; the limit is {limit}.")
    hidden = hidden_character(value)
    if hidden is not None:
        index, why = hidden
        raise UserError(
            f"The {field} contains an invisible control character "
            f"(U+{ord(value[index]):04X}{why}); please remove it."
        )
    return value


# --- what counts as hidden ----------------------------------------------------------------
# Python's unicodedata has no Extended_Pictographic property: these ranges cover it
# (and the Unicode 15+ emoji that this Python still lists as unassigned).
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x21AA), (0x231A, 0x23FF),
    (0x24C2, 0x24C2), (0x25AA, 0x25FE), (0x2600, 0x27BF), (0x2934, 0x2935),
    (0x2B05, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299),
    (0x1F000, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
# Scripts whose spelling uses ZWJ/ZWNJ (Arabic, Syriac, Thaana, N'Ko, Indic, Sinhala,
# Tibetan, Myanmar, Khmer, Mongolian...): a joiner after their letters is real text.
_JOINING_SCRIPTS = (
    (0x0600, 0x08FF), (0x0900, 0x0DFF), (0x0F00, 0x0FFF), (0x1000, 0x109F),
    (0x1780, 0x18AF), (0xA8E0, 0xA8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),
)  # fmt: skip
_RTL_SCRIPTS = ((0x0590, 0x08FF), (0xFB1D, 0xFDFF), (0xFE70, 0xFEFF), (0x10800, 0x10FFF))
ZWJ, ZWNJ, VS16, BLACK_FLAG, CANCEL_TAG = 0x200D, 0x200C, 0xFE0F, 0x1F3F4, 0xE007F
# Embeddings, overrides and isolates reorder what follows ("Trojan Source").
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_DIRECTION_MARKS = frozenset({0x200E, 0x200F, 0x061C})  # LRM, RLM, ALM: only in RTL text
_BLANK_LETTERS = frozenset({0x3164, 0xFFA0})  # Hangul fillers: letters that show nothing
_TAG_SPEC = frozenset(range(0xE0030, 0xE003A)) | frozenset(range(0xE0061, 0xE007B))
_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn")


def _within(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_selector(cp: int) -> bool:
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _flag_tag_end(cps: list[int], i: int) -> int | None:
    """Index after a valid flag tag sequence starting at ``cps[i]`` (🏴 + 2–7 tag letters
    or digits + CANCEL TAG, as in 🏴󠁧󠁢󠁳󠁣󠁴󠁿), else None."""
    j = i + 1
    while j < len(cps) and cps[j] in _TAG_SPEC:
        j += 1
    if 2 <= j - i - 1 <= 7 and j < len(cps) and cps[j] == CANCEL_TAG:
        return j + 1
    return None


def hidden_character(value: str) -> tuple[int, str] | None:
    """(index, why) of the first character that hides or disguises text, or None.

    Allowed: ZWJ between emoji (👨‍👩‍👧, 🧑🏽‍🚀) and after letters of scripts that spell with
    it, ZWNJ after such letters (Persian), one variation selector after a visible base
    (❤️, ☺︎, keycaps 1️⃣), tag characters only inside a flag tag sequence, and direction
    marks only in text that has right-to-left letters. Refused: other format and control
    characters (zero-width spaces, word joiners, soft hyphens, BOMs), bidi embeddings,
    overrides and isolates, blank letters, private-use and unassigned code points.
    """
    cps = [ord(ch) for ch in value]
    has_rtl = any(_within(cp, _RTL_SCRIPTS) for cp in cps)
    i = 0
    while i < len(cps):
        cp = cps[i]
        prev = cps[i - 1] if i else None
        nxt = cps[i + 1] if i + 1 < len(cps) else None
        if cp == BLACK_FLAG and nxt is not None and 0xE0000 <= nxt <= 0xE007F:
            end = _flag_tag_end(cps, i)
            if end is None:
                return i + 1, ", a tag character outside a flag"
            i = end
            continue
        if _is_selector(cp):
            base = value[i - 1] if i else ""
            if (
                not base
                or base.isspace()
                or _is_selector(prev or 0)
                or (unicodedata.category(base) in _REFUSED_CATEGORIES)
            ):
                return i, ", a variation selector without a character to vary"
        elif cp in (ZWJ, ZWNJ):
            before = cps[i - 2] if prev == VS16 and i >= 2 else prev
            between_emoji = (
                cp == ZWJ
                and before is not None
                and nxt is not None
                and _within(before, _PICTOGRAPHIC)
                and _within(nxt, _PICTOGRAPHIC)
            )
            in_script = prev is not None and _within(prev, _JOINING_SCRIPTS)
            if not (between_emoji or in_script) or nxt in (ZWJ, ZWNJ):
                return i, ", a zero-width joiner outside an emoji or a word"
        elif cp in _DIRECTION_MARKS:
            if not has_rtl:
                return i, ", a direction mark in left-to-right text"
        elif cp in _BIDI_CONTROLS:
            return i, ", a text-direction control that can disguise the text"
        elif cp in _BLANK_LETTERS:
            return i, ", a blank filler"
        elif value[i] not in "\n\t":
            category = unicodedata.category(value[i])
            if category in _REFUSED_CATEGORIES and not (
                category == "Cn" and _within(cp, _PICTOGRAPHIC)  # newer emoji
            ):
                return i, ""
        i += 1
    return None


class Generations:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        providers: Mapping[str, Provider],
        inputs: InputStore,
        wake: Callable[[], None],
        health: HealthBook | None = None,
    ) -> None:
        self.config = config
        # Provider health (SPEC §4 "Failover"): a request for a provider that is down is
        # refused here when it cannot go elsewhere; None = not tracked (unit tests).
        self.health = health
        self.store = store
        self.providers = providers
        self.inputs = inputs
        self.wake = wake
        # Server settings and spending: checked in create(), whatever the entry point.
        self.settings = ServerSettings(config=config, store=store, providers=providers)
        self.spending = Spending(config=config, store=store)
        # "usually ready in about N min" (app.py wires Reelbot.eta_for in).
        self.eta: Callable[[TaskRow], str | None] = lambda _task: None

    # --- validation -------------------------------------------------------------------------
    def provider_for(self, provider_id: str | None) -> Provider:
        if not self.providers:
            raise UserError(
                "No video provider is configured on this bot yet. Ask the operator to set "
                "a provider API key."
            )
        pid = provider_id or self.config.default_provider or next(iter(self.providers))
        provider = self.providers.get(pid)
        if provider is None:
            raise UserError(
                f"`{messages.short(pid, ECHO_LIMIT)}` is not a provider this bot offers. "
                "Choose one of: "
                f"{', '.join(self.providers)}."
            )
        return provider

    def _who_can(self, predicate: Callable[[Provider], bool]) -> str:
        able = [pid for pid, p in self.providers.items() if predicate(p)]
        return ", ".join(f"`{p}`" for p in able) if able else "none of the configured providers"

    async def prepare(self, guild_id: int, req: AnimateRequest) -> tuple[Provider, dict[str, Any]]:
        """``validate`` after this server's default provider and model (/settings
        defaults) fill what the request left open. The stored request remembers whether
        the member chose the provider (``provider_chosen``): only a request that named
        none may fail over to another provider (SPEC §4)."""
        chosen = req.provider is not None
        if req.provider is None:
            default, model = await self.settings.defaults(guild_id)
            if default is not None:
                req.provider = default
                req.model = req.model or model
        provider, request = self.validate(req)
        request["provider_chosen"] = chosen
        return provider, request

    def validate(self, req: AnimateRequest) -> tuple[Provider, dict[str, Any]]:
        """Check a request against the provider; return it with the stored request dict."""
        provider = self.provider_for(req.provider)
        caps = provider.capabilities
        prompt = clean_text(req.prompt, field="prompt", limit=MAX_PROMPT)
        if req.has_image and not caps.image_to_video:
            raise UserError(
                f"`{provider.id}` cannot start from an image. Image-to-video works with "
                f"{self._who_can(lambda p: p.capabilities.image_to_video)}."
            )
        if not req.has_image and not caps.text_to_video:
            raise UserError(
                f"`{provider.id}` only animates an image: attach one with the `image` option, "
                "or use a text-to-video provider: "
                f"{self._who_can(lambda p: p.capabilities.text_to_video)}."
            )
        given = {
            name: getattr(req, name)
            for name in OPTION_LABELS
            if getattr(req, name) not in (None, "")
        }
        for name in given:
            if name not in caps.options:
                raise UserError(
                    f"`{provider.id}` does not support the `{name}` option. Providers that do: "
                    f"{self._who_can(partial(_offers, name))}."
                )
        if req.duration is not None and not 1 <= req.duration <= MAX_DURATION:
            raise UserError(f"`duration` must be between 1 and {MAX_DURATION} seconds.")
        if req.seed is not None and not 0 <= req.seed <= MAX_SEED:
            raise UserError(f"`seed` must be between 0 and {MAX_SEED}.")
        model = req.model.strip() if req.model else None
        known = provider.models()
        if model and known and model not in known:
            raise UserError(
                f"`{messages.short(model, ECHO_LIMIT)}` is not a model of `{provider.id}`. "
                "Pick one from the list "
                f"(e.g. {', '.join(f'`{m}`' for m in known[:5])})."
            )
        request: dict[str, Any] = {
            "prompt": prompt,
            "model": model or provider.default_model(),
            "duration": req.duration,
            "aspect_ratio": req.aspect_ratio,
            "resolution": req.resolution,
            "seed": req.seed,
            "negative_prompt": (
                clean_text(req.negative_prompt, field="negative prompt", limit=MAX_PROMPT)
                if req.negative_prompt
                else None
            ),
            "motion": req.motion,
        }
        return provider, {k: v for k, v in request.items() if v is not None}

    async def read_image(self, attachment: discord.Attachment) -> Upload:
        """Fetch and validate the first-frame image (``create`` stores it)."""
        if attachment.size > MAX_IMAGE_BYTES:
            raise UserError(
                f"The image is {attachment.size / 1048576:.1f} MiB; the limit is "
                f"{MAX_IMAGE_BYTES // 1048576} MiB."
            )
        declared = (attachment.content_type or "").split(";")[0].strip().lower()
        if declared and declared not in ALLOWED_IMAGE_TYPES:
            raise UserError(
                f"`{attachment.filename}` is not a PNG, JPEG or WebP image ({declared})."
            )
        try:
            data = await attachment.read()
        except discord.HTTPException as exc:
            raise UserError("I could not download your image from Discord; try again.") from exc
        actual = sniff_content_type(data)
        if actual not in ALLOWED_IMAGE_TYPES:
            raise UserError(f"`{attachment.filename}` is not a PNG, JPEG or WebP image.")
        if len(data) > MAX_IMAGE_BYTES:
            raise UserError(f"The image is larger than {MAX_IMAGE_BYTES // 1048576} MiB.")
        return Upload(data, self.inputs.describe(data, actual, url=attachment.url))

    # --- creating tasks ---------------------------------------------------------------------
    async def create(
        self,
        *,
        provider: Provider,
        request: dict[str, Any],
        guild_id: int,
        channel_id: int,
        requester_id: int,
        is_moderator: bool,
        thread_id: int | None = None,
        retry_of: int | None = None,
        image: Upload | None = None,
        role_ids: Sequence[int] | None = None,
    ) -> TaskRow:
        """Record the intent (and take quota) before anything reaches the provider.

        A new first-frame ``image`` is written to disk only once the task exists: a
        refused request (server settings, quota, cooldown, the provider's own checks)
        stores nothing. ``role_ids`` are the requester's roles (looked up when None),
        for role limits.
        """
        await self._check_settings(guild_id, channel_id, requester_id, request)
        # A re-run of a request that failover moved starts where it ended up, without
        # the old note ("hiapi is unavailable: sent to foxapi" was about that task).
        request = {k: v for k, v in request.items() if k != "failover"}
        if image is not None:
            request = dict(request, image=image.meta)
        elif request.get("image") and not await self.inputs.touch(request["image"]):
            days = self.config.input_retention_days
            raise UserError(
                f"The first-frame image of this request is no longer kept (images are kept "
                f"{days} days after their last use). Start a new /animate with the image."
            )
        await self.precheck(provider, request)
        await self._check_health(provider, request)
        price = await self.spending.price(guild_id, provider.id)
        policy = await self.spending.policy(
            guild_id, requester_id, is_moderator=is_moderator, role_ids=role_ids
        )
        try:
            task = await self.store.create_task(
                NewTask(
                    provider=provider.id,
                    guild_id=guild_id,
                    channel_id=channel_id,
                    requester_id=requester_id,
                    request=request,
                    poll_interval=self.config.poll_interval,
                    thread_id=thread_id,
                    retry_of=retry_of,
                    # The store checks, with the insert, that it is still usable.
                    character_id=request.get("character_id"),
                    quota_weight=price,
                ),
                now=time.time(),
                policy=policy,
            )
        except SubmissionRefused as exc:
            raise UserError(str(exc)) from exc
        if image is not None:
            try:
                await self.inputs.keep(image.data, image.meta)
            except OSError as exc:
                log.error("task %s: could not keep the first-frame image: %r", task.id, exc)
                await self.abandon(task, "could not store the image")
                raise UserError(
                    "I could not store your image on my side; try again later. "
                    "Your quota was not used."
                ) from exc
        # post_status makes the task due at once. Should this process die before that
        # (no thread or status message yet), the poller still picks the request up after
        # a grace period and delivers it in the channel: a recorded intent is never lost.
        await self.store.update_task(task.id, next_action_at=time.time() + ANNOUNCE_GRACE)
        return task

    async def _check_health(self, provider: Provider, request: Mapping[str, Any]) -> None:
        """A provider that is down (and not due for its probe) takes nothing: a request
        that named it is refused naming providers that are up; one that did not is
        refused only when no FAILOVER_PROVIDERS provider can take it instead."""
        if self.health is None:
            return
        down = await self.health.down(provider.id, fresh=True)
        if down is None:
            return
        state = describe(down)
        if mapping.may_move("video", request) and request.get("character_id") is None:
            found = await self.health.find_move(provider.id, request)
            if isinstance(found, Move):
                return  # the worker sends it there (and says so in the status message)
        up = await self.health.up_providers(exclude=provider.id)
        others = (
            f"Providers that are up: {', '.join(f'`{p}`' for p in up)}; choose one with "
            "the `provider` option."
            if up
            else "No other provider is up right now; try again later."
        )
        raise UserError(f"`{provider.id}` is {state}. {others} Your quota was not used.")

    async def _check_settings(
        self, guild_id: int, channel_id: int, requester_id: int, request: Mapping[str, Any]
    ) -> None:
        """/settings: allowed channels and banned words, before anything is stored."""
        try:
            await self.settings.check_request(guild_id, channel_id, requester_id, request)
        except SettingsError as exc:
            raise UserError(str(exc)) from exc

    async def sweep_inputs(self, *, now: float) -> int:
        """Remove first-frame images that no task created within the retention period
        uses (refused uploads of older versions, tasks past retention); the count."""
        since = now - self.config.input_retention_days * DAY
        in_use = await self.store.input_images_in_use(since=since)
        return await self.inputs.sweep(in_use, now=now, grace=INPUT_SWEEP_GRACE)

    async def precheck(self, provider: Provider, request: dict[str, Any]) -> None:
        """Run the provider's own checks of a request (which durations, seeds, sizes its
        models take) now, so a request it would refuse gets an ephemeral error instead of
        a task. Adapters make those checks before any network call: a dry copy of the
        adapter whose transport refuses to send tells which way it went."""
        stored = VideoRequest.from_stored(request)
        image = None
        if stored.image:
            meta = stored.image
            image = InputImage(url=meta.get("url"), data=b"", content_type=meta["content_type"])
        dry = type(provider)(_NoNetwork())  # type: ignore[arg-type]
        try:
            await dry.submit(
                stored.generation(image),
                idempotency_key="precheck",
            )
        except _WouldSend:
            return
        except ProviderError as exc:
            if exc.kind is ErrorKind.INVALID:
                raise UserError(f"`{provider.id}` cannot do that: {exc.message}.") from exc
        except Exception:  # a check that needs more than we have: the real submit decides
            log.debug("precheck of a %s request was inconclusive", provider.id, exc_info=True)

    async def can_vary(self, task: TaskRow) -> bool:
        """Whether Vary (the same request with another seed) can work: the provider
        takes a seed and its own checks accept one for this model."""
        provider = self.providers.get(task.provider)
        if task.kind != "video" or provider is None or "seed" not in provider.capabilities.options:
            return False
        try:
            await self.precheck(provider, dict(task.request, seed=0))
        except UserError:
            return False
        except (TypeError, KeyError, ValueError):  # a request stored in an older shape
            log.debug("task %s: cannot tell whether it can vary", task.id, exc_info=True)
            return False
        return True

    async def open_thread(
        self, channel: discord.abc.Messageable, task: TaskRow, *, author_name: str
    ) -> discord.abc.Messageable:
        """A thread for this request, unless we already are in one."""
        if isinstance(channel, discord.Thread):
            return channel
        if not isinstance(channel, discord.TextChannel):
            return channel
        prompt = task.request.get("prompt", "")
        anchor = await channel.send(
            f"🎬 **{messages.short(author_name, 100)}** asked for: {messages.preview(prompt, 200)}",
            allowed_mentions=NO_PINGS,
        )
        name = text.clip_thread_name(
            messages.preview(prompt, THREAD_NAME_LIMIT), f"Reelbot task {task.id}"
        )
        try:
            return await anchor.create_thread(
                name=name, auto_archive_duration=text.archive_duration(THREAD_ARCHIVE_MINUTES)
            )
        except discord.Forbidden:
            # No Create Public Threads permission: follow the request in the channel.
            log.warning("task %s: no thread allowed in %s; using the channel", task.id, channel.id)
            return channel

    async def post_status(
        self, where: discord.abc.Messageable, task: TaskRow, *, thread_id: int | None
    ) -> TaskRow:
        """Post the status message and hand the task to the poller."""
        text = messages.status_text(task, eta=self.eta(task))
        files = []
        image = task.request.get("image")
        if image:
            # Re-posting the first frame here gives 🔁 a Discord copy to refresh later.
            data = (await self.inputs.input_image(image)).data
            ext = image["content_type"].split("/")[-1].replace("jpeg", "jpg")
            import io

            files.append(discord.File(io.BytesIO(data), filename=f"first-frame.{ext}"))
        status = await where.send(
            text, files=files, allowed_mentions=NO_PINGS, view=buttons.status_view(task)
        )  # with Cancel, the same as ❌
        fields: dict[str, Any] = {
            "thread_id": thread_id,
            "status_message_id": status.id,
            "status_text": text,
            "status_edited_at": time.time(),
            "next_action_at": time.time(),
        }
        if image and status.attachments:
            image = dict(image, status_channel_id=status.channel.id, status_message_id=status.id)
            fields["request"] = dict(task.request, image=image)
        await self.store.update_task(task.id, **fields)
        self.wake()
        try:
            await status.add_reaction(CANCEL_EMOJI)
        except discord.HTTPException:
            log.debug("task %s: could not add the cancel reaction", task.id)
        updated = await self.store.get_task(task.id)
        assert updated is not None
        return updated

    async def abandon(self, task: TaskRow, reason: str) -> None:
        """The task could not even be posted: undo it (quota back, nothing to deliver)."""
        await self.store.update_task(
            task.id,
            state="failed",
            error_code="discord",
            error_message=reason,
            finished_at=time.time(),
            next_action_at=None,
        )
        await self.store.refund(task.id)

    # --- reactions ----------------------------------------------------------------------------
    async def cancel(self, task: TaskRow) -> bool:
        """Cancel an in-flight task; True if it was still in flight."""
        if not await self.store.cancel_task(task.id, now=time.time()):
            return False
        provider = self.providers.get(task.provider)
        if provider is not None and task.provider_task_id:
            try:
                accepted = await provider.cancel(task.provider_task_id)
                log.info(
                    "task %s: provider cancel %s",
                    task.id,
                    "accepted" if accepted else "not available; stopped tracking",
                )
            except ProviderError as exc:
                log.warning("task %s: provider cancel failed (%r); stopped tracking", task.id, exc)
        self.wake()
        return True


class _WouldSend(Exception):
    """The request passed the adapter's local checks and was about to be sent."""


class _NoNetwork:
    """The transport of a dry adapter copy: it never sends anything."""

    async def request_json(self, *args: Any, **kwargs: Any) -> Any:
        raise _WouldSend
