"""Generations: the rules behind /animate, 🔁 and ❌, kept out of the cogs.

Cogs translate Discord events into calls here and turn :class:`UserError` into
ephemeral replies; everything that must be true of a request is checked here,
before a task exists and long before a provider is called.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import discord

from providers.base import ErrorKind, GenerationRequest, InputImage, Provider, ProviderError
from reelbot import messages
from reelbot.config import Config
from reelbot.delivery import CANCEL_EMOJI, NO_PINGS
from reelbot.downloads import sniff_content_type
from reelbot.inputs import ALLOWED_IMAGE_TYPES, MAX_IMAGE_BYTES, InputStore
from reelbot.store.base import Store
from reelbot.store.models import NewTask, QuotaPolicy, SubmissionRefused, TaskRow

log = logging.getLogger(__name__)

MAX_PROMPT = 2000
MAX_DURATION = 60
MAX_SEED = 2**31 - 1
THREAD_NAME_LIMIT = 90
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


class UserError(Exception):
    """Bad input or a refused action; the message is shown to the user, ephemerally."""


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
    """Trimmed text without control characters (newlines and tabs are fine)."""
    value = value.strip()
    if not value:
        raise UserError(f"The {field} is empty. Describe what you want to see.")
    if len(value) > limit:
        raise UserError(f"The {field} is {len(value)} characters long; the limit is {limit}.")
    for ch in value:
        if ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise UserError(
                f"The {field} contains an invisible control character (U+{ord(ch):04X}); "
                "please remove it."
            )
    return value


class Generations:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        providers: Mapping[str, Provider],
        inputs: InputStore,
        wake: Callable[[], None],
    ) -> None:
        self.config = config
        self.store = store
        self.providers = providers
        self.inputs = inputs
        self.wake = wake

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
                f"`{pid}` is not a provider this bot offers. Choose one of: "
                f"{', '.join(self.providers)}."
            )
        return provider

    def _who_can(self, predicate: Callable[[Provider], bool]) -> str:
        able = [pid for pid, p in self.providers.items() if predicate(p)]
        return ", ".join(f"`{p}`" for p in able) if able else "none of the configured providers"

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
                    f"{self._who_can(lambda p, n=name: n in p.capabilities.options)}."
                )
        if req.duration is not None and not 1 <= req.duration <= MAX_DURATION:
            raise UserError(f"`duration` must be between 1 and {MAX_DURATION} seconds.")
        if req.seed is not None and not 0 <= req.seed <= MAX_SEED:
            raise UserError(f"`seed` must be between 0 and {MAX_SEED}.")
        model = req.model.strip() if req.model else None
        known = provider.models()
        if model and known and model not in known:
            raise UserError(
                f"`{model}` is not a model of `{provider.id}`. Pick one from the list "
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

    async def read_image(self, attachment: discord.Attachment) -> dict[str, Any]:
        """Validate and keep the first-frame image; return its stored metadata."""
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
        return await self.inputs.save(data, actual, url=attachment.url)

    def policy(self, *, is_moderator: bool) -> QuotaPolicy:
        return QuotaPolicy(
            default_limit=self.config.daily_quota,
            cooldown=0.0 if is_moderator else self.config.user_cooldown,
            max_in_flight=0 if is_moderator else self.config.max_user_in_flight,
        )

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
    ) -> TaskRow:
        """Record the intent (and take quota) before anything reaches the provider."""
        await self.precheck(provider, request)
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
                ),
                now=time.time(),
                policy=self.policy(is_moderator=is_moderator),
            )
        except SubmissionRefused as exc:
            raise UserError(str(exc)) from exc
        # post_status makes the task due at once. Should this process die before that
        # (no thread or status message yet), the poller still picks the request up after
        # a grace period and delivers it in the channel: a recorded intent is never lost.
        await self.store.update_task(task.id, next_action_at=time.time() + ANNOUNCE_GRACE)
        return task

    async def precheck(self, provider: Provider, request: dict[str, Any]) -> None:
        """Run the provider's own checks of a request (which durations, seeds, sizes its
        models take) now, so a request it would refuse gets an ephemeral error instead of
        a task. Adapters make those checks before any network call: a dry copy of the
        adapter whose transport refuses to send tells which way it went."""
        image = None
        if request.get("image"):
            meta = request["image"]
            image = InputImage(url=meta.get("url"), data=b"", content_type=meta["content_type"])
        dry = type(provider)(_NoNetwork())  # type: ignore[arg-type]
        try:
            await dry.submit(
                GenerationRequest(
                    prompt=request["prompt"],
                    model=request.get("model"),
                    image=image,
                    duration=request.get("duration"),
                    aspect_ratio=request.get("aspect_ratio"),
                    resolution=request.get("resolution"),
                    seed=request.get("seed"),
                    negative_prompt=request.get("negative_prompt"),
                    motion=request.get("motion"),
                    character_id=request.get("character_model_id"),
                ),
                idempotency_key="precheck",
            )
        except _WouldSend:
            return
        except ProviderError as exc:
            if exc.kind is ErrorKind.INVALID:
                raise UserError(f"`{provider.id}` cannot do that: {exc.message}.") from exc
        except Exception:  # a check that needs more than we have: the real submit decides
            log.debug("precheck of a %s request was inconclusive", provider.id, exc_info=True)

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
            f"🎬 **{author_name}** asked for: {messages.preview(prompt, 200)}",
            allowed_mentions=NO_PINGS,
        )
        name = messages.preview(prompt, THREAD_NAME_LIMIT) or f"Reelbot task {task.id}"
        try:
            return await anchor.create_thread(name=name, auto_archive_duration=1440)
        except discord.Forbidden:
            # No Create Public Threads permission: follow the request in the channel.
            log.warning("task %s: no thread allowed in %s; using the channel", task.id, channel.id)
            return channel

    async def post_status(
        self, where: discord.abc.Messageable, task: TaskRow, *, thread_id: int | None
    ) -> TaskRow:
        """Post the status message and hand the task to the poller."""
        text = messages.status_text(task)
        files = []
        image = task.request.get("image")
        if image:
            # Re-posting the first frame here gives 🔁 a Discord copy to refresh later.
            data = (await self.inputs.input_image(image)).data
            ext = image["content_type"].split("/")[-1].replace("jpeg", "jpg")
            import io

            files.append(discord.File(io.BytesIO(data), filename=f"first-frame.{ext}"))
        status = await where.send(text, files=files, allowed_mentions=NO_PINGS)
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
