"""``foxapi``: foxapi.cc's unified task API (seed 003; same platform shape as Evolink).

Wire format (providers/PROTOCOLS.md): ``POST /v1/videos/generations {model, prompt,
image_urls[] | image_url, duration, aspect_ratio, resolution, seed}`` → a task object
whose id is the top-level ``id``; ``GET /v1/tasks/{task_id}`` → task object with
``status`` pending/processing/completed/failed/cancelled, ``progress`` 0-100,
``results`` and ``usage.credits_reserved``. Errors are ``{"error": {message, type,
code}}`` with proper HTTP statuses (also understood inside an HTTP 200).

From the model pages on docs.foxapi.cc: happyhorse-1.0-image-to-video and
veo3.1-fast take one ``image_url``, the others an ``image_urls`` list; the output
resolution field is ``resolution``; sora-2 takes ``character_ids`` (at most 2).
Result URLs are valid for 24 hours: ``expires_at`` is the task's ``created`` time
(or, without it, now) + 24 h, which errs on the early side.

Inferred: paired "…-text-to-video"/"…-image-to-video" models are switched to the
sibling that matches whether an image is attached (the bot fills in the default
model before it knows); the cancel endpoint is undocumented, so cancel only stops
tracking. Characters: ``sora-2-character`` builds a character from a short MP4
clip (``video_url`` + ``name``), not from photos, so ``train_character`` accepts
only a video URL and ``capabilities.characters`` stays False; its task succeeds
with ``results: [{character_id, name}]`` (reported as an ``Output(kind="character",
file_id=character_id)``). A generation with a character sends
``character_ids: [id]`` (documented for sora-2).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from providers import parsing as p
from providers.base import (
    Capabilities,
    ErrorKind,
    GenerationRequest,
    Output,
    Provider,
    ProviderError,
    SubmitCall,
    TaskState,
    TaskStatus,
    TrainingRequest,
)

log = logging.getLogger(__name__)

GENERATIONS_PATH = "/v1/videos/generations"
TASK_PATH = "/v1/tasks/{task_id}"

URL_TTL_SECONDS = 24 * 3600
CHARACTER_MODEL = "sora-2-character"
MAX_CHARACTER_NAME = 80
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")

MODELS = (
    "happyhorse-1.0-text-to-video",
    "happyhorse-1.0-image-to-video",
    "veo3.1-fast",
    "wan-2.7-text-to-video",
    "wan-2.7-image-to-video",
    "vidu-q3-pro",
    "vidu-q3-turbo",
    "seedance-1.5-pro",
    "seedance-2.0-text-to-video",
    "seedance-2.0-image-to-video",
    "seedance-2.0-fast-text-to-video",
    "seedance-2.0-fast-image-to-video",
    "kling-o3-image-to-video",
    "sora-2",
)
# Models whose first frame is a single ``image_url`` string rather than ``image_urls``.
SINGLE_IMAGE_URL_MODELS = frozenset({"happyhorse-1.0-image-to-video", "veo3.1-fast"})
T2V, I2V = "text-to-video", "image-to-video"

STATES: dict[str, TaskState] = {
    "pending": "queued",
    "queued": "queued",
    "processing": "running",
    "running": "running",
    "in_progress": "running",
    "completed": "succeeded",
    "succeeded": "succeeded",
    "success": "succeeded",
    "failed": "failed",
    "cancelled": "failed",
    "canceled": "failed",
}


def _invalid(message: str, code: str) -> ProviderError:
    return ProviderError(ErrorKind.INVALID, message, code=code)


def pick_model(model: str, has_image: bool) -> str:
    """The model to send: a t2v/i2v pair is switched to match the input."""
    if has_image and T2V in model:
        twin = model.replace(T2V, I2V)
        if twin in MODELS:
            return twin
        raise _invalid(f"{model} cannot start from an image", "image_not_supported")
    if not has_image and I2V in model:
        twin = model.replace(I2V, T2V)
        if twin in MODELS:
            return twin
        raise _invalid(f"{model} needs an image to animate", "image_required")
    return model


class FoxapiProvider(Provider):
    id = "foxapi"
    display_name = "FoxAPI"
    default_base_url = "https://api.foxapi.cc"
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_to_video=True,
        callbacks=True,
        image_to_video=True,
        cancel=False,
        progress=True,
        credits=True,
        characters=False,
        idempotent_submit=False,
        options=frozenset({"duration", "aspect_ratio", "resolution", "seed"}),
    )

    def models(self) -> list[str]:
        return list(MODELS)

    async def prepare_submit(self, request: GenerationRequest) -> SubmitCall:
        model = pick_model(request.model or MODELS[0], request.image is not None)
        body: dict[str, Any] = {"model": model, "prompt": request.prompt}
        if request.image is not None:
            ref = request.image.best_reference()
            if model in SINGLE_IMAGE_URL_MODELS:
                body["image_url"] = ref
            else:
                body["image_urls"] = [ref]
        for name in ("duration", "aspect_ratio", "resolution", "seed"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.character_id:
            body["character_ids"] = [request.character_id]
        if request.callback_url:
            body["callback_url"] = request.callback_url
        return SubmitCall.of(GENERATIONS_PATH, body)

    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        answer = p.expect_dict(
            await self.http.request_json("POST", call.path, data=call.body),
            "submit answer",
        )
        p.gateway_error(answer)
        task_id = p.id_str(answer.get("id"))
        if task_id is None:
            raise p.malformed("no task id in the submit answer")
        return task_id

    async def status(self, task_id: str) -> TaskStatus:
        body = await self.http.request_json("GET", p.path(TASK_PATH, task_id=task_id))
        return parse_task(p.expect_dict(body, "status answer"))

    # --- characters ----------------------------------------------------------------------
    async def train_character(self, request: TrainingRequest) -> str:
        video = next(
            (u for u in request.image_urls if u.split("?", 1)[0].lower().endswith(VIDEO_SUFFIXES)),
            None,
        )
        if video is None:
            raise _invalid(
                "FoxAPI makes characters from a short MP4 clip (sora-2-character), not from photos",
                "video_required",
            )
        name = request.name.strip()[:MAX_CHARACTER_NAME]
        call = SubmitCall.of(
            GENERATIONS_PATH, {"model": CHARACTER_MODEL, "video_url": video, "name": name}
        )
        return await self.send_submit(call, idempotency_key="")

    async def character_status(self, model_id: str) -> TaskStatus:
        return await self.status(model_id)


def parse_task(body: dict[str, Any], *, now: float | None = None) -> TaskStatus:
    """A foxapi task object (the status answer, and the callback body)."""
    p.gateway_error(body, default=ErrorKind.TRANSIENT)
    raw = p.text(body.get("status"))
    if raw is None:
        raise p.malformed("no status in the status answer")
    key = raw.lower()
    state = STATES.get(key)
    credits = p.number(p.get_dict(body, "usage").get("credits_reserved"))
    progress = p.progress(body.get("progress"))
    if state == "failed":
        err = body.get("error")
        if key in ("cancelled", "canceled"):
            return p.failed(
                "cancelled", err, raw, default="the task was cancelled", credits=credits
            )
        code = p.id_str(err.get("code")) if isinstance(err, dict) else None
        return p.failed(code, err, raw, credits=credits)
    if state == "succeeded":
        created = p.number(body.get("created"))
        expires = (created or (now if now is not None else time.time())) + URL_TTL_SECONDS
        outputs = _outputs(body, expires)
        if not outputs:
            return p.no_output(raw, credits)
        return TaskStatus(
            state="succeeded", progress=100, outputs=outputs, credits=credits, raw_state=raw
        )
    if state is None:
        log.info("foxapi: unknown status %r treated as running", raw)
        state = "running"
    return TaskStatus(state=state, progress=progress, credits=credits, raw_state=raw)


def _outputs(body: dict[str, Any], expires: float) -> tuple[Output, ...]:
    kind = p.text(body.get("type")) or "video"
    outputs: list[Output] = []
    for item in p.get_list(body, "results"):
        if isinstance(item, str):
            url = p.text(item)
            if url:
                outputs.append(Output(kind=kind, url=url, expires_at=expires))
            continue
        if not isinstance(item, dict):
            continue
        url = p.text(item.get("url"))
        if url:
            content_type = p.text(item.get("content_type"))
            item_kind = kind
            if content_type and content_type.startswith("image/") and kind == "video":
                item_kind = "image"
            outputs.append(
                Output(kind=item_kind, url=url, expires_at=expires, content_type=content_type)
            )
            continue
        character_id = p.id_str(item.get("character_id"))
        if character_id:
            outputs.append(Output(kind="character", file_id=character_id))
    if outputs:
        return tuple(outputs)
    out = p.get_dict(body, "output")
    urls = [p.text(u) for u in p.get_list(out, "urls")] or [p.text(out.get("url"))]
    return tuple(Output(kind=kind, url=u, expires_at=expires) for u in urls if u)


PROVIDER = FoxapiProvider
