"""Generations: the rules behind /animate, 🔁 and ❌, kept out of the cogs.

Cogs translate Discord events into calls here and turn :class:`UserError` into
ephemeral replies; everything that must be true of a request is checked here,
before a task exists and long before a provider is called. Requests travel as
:class:`~reelbot.generations.request.VideoRequest`; what is posted on Discord is sent by
posting.py and what a member typed is checked by validation.py.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import discord

from providers.base import ErrorKind, InputImage, Provider, ProviderError
from reelbot import messages
from reelbot.config import Config
from reelbot.failover import mapping
from reelbot.failover.book import HealthBook, Move
from reelbot.failover.health import describe
from reelbot.generations import posting
from reelbot.generations.request import VideoRequest, video_request
from reelbot.generations.validation import UserError as UserError  # callers' import
from reelbot.generations.validation import clean_text
from reelbot.jobs.downloads import sniff_content_type
from reelbot.jobs.inputs import ALLOWED_IMAGE_TYPES, MAX_IMAGE_BYTES, InputStore
from reelbot.jobs.kinds import JobKinds
from reelbot.settings import ServerSettings, SettingsError
from reelbot.spending import Spending
from reelbot.store.base import Store
from reelbot.store.models import CharacterRow, NewTask, SubmissionRefused, TaskRow

log = logging.getLogger(__name__)

MAX_PROMPT = 2000
MAX_DURATION = 60
MAX_SEED = 2**31 - 1
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


@dataclass(frozen=True, slots=True)
class Upload:
    """A validated first-frame image, not stored yet: ``create`` keeps it on disk only
    once the request has passed every check (provider precheck, quota, cooldown)."""

    data: bytes = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnimateRequest:
    """What the member asked for, as the cog received it (before any check)."""

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


class Generations:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        providers: Mapping[str, Provider],
        inputs: InputStore,
        wake: Callable[[], None],
        kinds: JobKinds,
        health: HealthBook | None = None,
        eta: Callable[[TaskRow], str | None] = lambda _task: None,
        spending: Spending,
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
        self.spending = spending
        self.kinds = kinds
        # "usually ready in about N min" on a new status message (wiring.eta_of).
        self.eta = eta

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

    async def prepare(
        self, guild_id: int, req: AnimateRequest, *, character: CharacterRow | None = None
    ) -> tuple[Provider, VideoRequest]:
        """``validate`` after this server's default provider and model (/settings
        defaults) fill what the request left open. The request remembers whether the
        member chose the provider (``provider_chosen``): only a request that named none
        may fail over to another provider (SPEC §4). ``character``: the one the member
        chose (``Characters.for_use``), which 🔁 looks up again by its id."""
        chosen = req.provider is not None
        if req.provider is None:
            default, model = await self.settings.defaults(guild_id)
            if default is not None:
                req = dataclasses.replace(req, provider=default, model=req.model or model)
        provider, request = self.validate(req)
        request = dataclasses.replace(request, provider_chosen=chosen)
        if character is not None:
            request = dataclasses.replace(
                request,
                character=character.name,
                character_id=character.id,
                character_model_id=character.provider_model_id,
            )
        return provider, request

    def validate(self, req: AnimateRequest) -> tuple[Provider, VideoRequest]:
        """Check a request against the provider; return it with the request to store."""
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
        request = VideoRequest(
            prompt=prompt,
            model=model or provider.default_model(),
            duration=req.duration,
            aspect_ratio=req.aspect_ratio,
            resolution=req.resolution,
            seed=req.seed,
            negative_prompt=(
                clean_text(req.negative_prompt, field="negative prompt", limit=MAX_PROMPT)
                if req.negative_prompt
                else None
            ),
            motion=req.motion,
        )
        return provider, request

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
        request: VideoRequest,
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
        request = request.unmoved()
        if image is not None:
            request = dataclasses.replace(request, image=image.meta)
        elif request.image and not await self.inputs.touch(request.image):
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
                    request=request.to_stored(),
                    poll_interval=self.config.poll_interval,
                    thread_id=thread_id,
                    retry_of=retry_of,
                    # The store checks, with the insert, that it is still usable.
                    character_id=request.character_id,
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

    async def _check_health(self, provider: Provider, request: VideoRequest) -> None:
        """A provider that is down (and not due for its probe) takes nothing: a request
        that named it is refused naming providers that are up; one that did not is
        refused only when no FAILOVER_PROVIDERS provider can take it instead."""
        if self.health is None:
            return
        down = await self.health.down(provider.id, fresh=True)
        if down is None:
            return
        state = describe(down)
        if mapping.may_move(request):
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
        self, guild_id: int, channel_id: int, requester_id: int, request: VideoRequest
    ) -> None:
        """/settings: allowed channels and banned words, before anything is stored."""
        try:
            # ServerSettings reads the prompt words of the stored form.
            await self.settings.check_request(
                guild_id, channel_id, requester_id, request.to_stored()
            )
        except SettingsError as exc:
            raise UserError(str(exc)) from exc

    async def sweep_inputs(self, *, now: float) -> int:
        """Remove first-frame images that no task created within the retention period
        uses (refused uploads of older versions, tasks past retention); the count."""
        since = now - self.config.input_retention_days * DAY
        in_use = await self.store.input_images_in_use(since=since)
        return await self.inputs.sweep(in_use, now=now, grace=INPUT_SWEEP_GRACE)

    async def precheck(self, provider: Provider, request: VideoRequest) -> None:
        """Run the provider's own checks of a request (which durations, seeds, sizes its
        models take) now, so a request it would refuse gets an ephemeral error instead of
        a task. Adapters make those checks before any network call: a dry copy of the
        adapter whose transport refuses to send tells which way it went."""
        image = None
        if request.image:
            meta = request.image
            image = InputImage(url=meta.get("url"), data=b"", content_type=meta["content_type"])
        dry = type(provider)(_NoNetwork())  # type: ignore[arg-type]
        try:
            await dry.submit(request.generation(image), idempotency_key="precheck")
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
        if provider is None or "seed" not in provider.capabilities.options:
            return False
        try:
            request = video_request(task)  # None: not a video (a training varies nothing)
            if request is None:
                return False
            await self.precheck(provider, dataclasses.replace(request, seed=0))
        except UserError:
            return False
        except (TypeError, KeyError, ValueError):  # a request stored in an older shape
            log.debug("task %s: cannot tell whether it can vary", task.id, exc_info=True)
            return False
        return True

    # --- re-runs: 🔁, Run again, Vary, Remix -------------------------------------------------
    def rerun_request(self, task: TaskRow, looked_up: VideoRequest) -> VideoRequest:
        """The request of ``task`` to run again: ``looked_up`` is its request as
        ``Characters.request_for_rerun`` checked it (only a video; a character it used
        looked up afresh). UserError when its provider is no longer configured."""
        if task.provider not in self.providers:
            raise UserError(
                f"`{task.provider}` is not a provider this bot offers any more "
                "(it is no longer configured)."
            )
        return looked_up

    def varied(self, task: TaskRow, request: VideoRequest) -> VideoRequest:
        """Vary: ``request`` with a new random seed (UserError if the provider takes none)."""
        provider = self.provider_for(task.provider)
        if "seed" not in provider.capabilities.options:
            raise UserError(f"`{task.provider}` does not take a seed, so it cannot vary.")
        return vary(request)

    # --- the tasks behind messages and buttons ------------------------------------------------
    async def task_to_act_on(
        self, task_id: int, *, guild_id: int | None, user_id: int, is_moderator: bool
    ) -> TaskRow:
        """The task a button names, if it is this server's and ``user_id`` may act on it:
        its requester, or a moderator."""
        task = await self.store.get_task(task_id)
        if task is None or task.guild_id != guild_id:
            raise UserError(f"I no longer know task #{task_id}.")
        if user_id != task.requester_id and not is_moderator:
            raise UserError(
                f"Only <@{task.requester_id}>, who asked for task #{task.id}, or a "
                "moderator can use these buttons."
            )
        return task

    async def task_by_message(self, message_id: int) -> TaskRow | None:
        """The task whose status or final message this is (reactions on it)."""
        return await self.store.task_by_message(message_id)

    async def first_time(self, key: int, user_id: int, what: str, *, window: float) -> bool:
        """False when the same ``what`` by ``user_id`` on ``key`` (a message, or an
        interaction) was seen within ``window`` seconds: a duplicated gateway event or a
        double click is acted on once, whichever process sees it."""
        return await self.store.claim_reaction(key, user_id, what, now=time.time(), window=window)

    async def recent_tasks(
        self, guild_id: int, user_id: int, *, everyone: bool, limit: int
    ) -> list[TaskRow]:
        """/jobs: the member's tasks, or the whole server's (``everyone``: a moderator),
        in flight first, then the most recent."""
        if everyone:
            tasks = await self.store.guild_tasks(guild_id, limit=limit)
        else:
            tasks = await self.store.user_tasks(guild_id, user_id, limit=limit)
        tasks.sort(key=lambda t: (not t.in_flight, -t.id))
        return tasks

    async def audit(self, task: TaskRow, actor_id: int, action: str, details: str) -> None:
        """Record an action on someone else's task (a moderator's cancel, a delete)."""
        await self.store.audit(
            task.guild_id,
            actor_id,
            action,
            target_id=task.requester_id,
            details=details,
            now=time.time(),
        )

    # --- posting ------------------------------------------------------------------------------
    async def post_status(
        self, where: discord.abc.Messageable, task: TaskRow, *, thread_id: int | None
    ) -> TaskRow:
        """Post the status message (posting.py), record it and hand the task to the poller."""
        title = self.kinds[task.kind].status_title(task)
        content = messages.status_text(task, title=title, eta=self.eta(task))
        request = video_request(task)  # only a video has a first frame
        image = request.image if request is not None else None
        first_frame = None
        if image:
            # Re-posting the first frame here gives 🔁 a Discord copy to refresh later.
            data = (await self.inputs.input_image(image)).data
            first_frame = (data, str(image["content_type"]))
        status = await posting.send_status(where, task, content, first_frame=first_frame)
        fields: dict[str, Any] = {
            "thread_id": thread_id,
            "status_message_id": status.id,
            "status_text": content,
            "status_edited_at": time.time(),
            "next_action_at": time.time(),
        }
        if request is not None and image and status.attachments:
            posted = dict(image, status_channel_id=status.channel.id, status_message_id=status.id)
            fields["request"] = dataclasses.replace(request, image=posted).to_stored()
        await self.store.update_task(task.id, **fields)
        self.wake()
        await posting.add_cancel_reaction(status, task.id)
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
        """Cancel an in-flight task of any kind; True if it was still in flight. The
        store records it first (the poller's next release then finds it cancelled);
        what else a cancel stops, at the provider or in our rows, is the kind's."""
        if not await self.store.cancel_task(task.id, now=time.time()):
            return False
        self.wake()
        await self.kinds[task.kind].cancelled(task, self.providers.get(task.provider))
        return True


# --- requests built from requests (pure) ---------------------------------------------------------
def new_seed(old: int | None) -> int:
    """A random seed, never the one the request had."""
    seed = secrets.randbelow(MAX_SEED + 1)
    while seed == old:
        seed = secrets.randbelow(MAX_SEED + 1)
    return seed


def vary(request: VideoRequest) -> VideoRequest:
    """Vary: the same request with another seed."""
    return dataclasses.replace(request, seed=new_seed(request.seed))


def remix(request: VideoRequest, prompt: str, negative_prompt: str | None) -> VideoRequest:
    """Remix: the same request with the prompt the member edited. ``negative_prompt``:
    None when the form had no such field (kept as it was), blank to remove it."""
    request = dataclasses.replace(
        request, prompt=clean_text(prompt, field="prompt", limit=MAX_PROMPT)
    )
    if negative_prompt is None:
        return request
    negative = negative_prompt.strip()
    return dataclasses.replace(
        request,
        negative_prompt=(
            clean_text(negative, field="negative prompt", limit=MAX_PROMPT) if negative else None
        ),
    )


class _WouldSend(Exception):
    """The request passed the adapter's local checks and was about to be sent."""


class _NoNetwork:
    """The transport of a dry adapter copy: it never sends anything."""

    async def request_json(self, *args: Any, **kwargs: Any) -> Any:
        raise _WouldSend
