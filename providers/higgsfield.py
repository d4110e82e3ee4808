"""``higgsfield``: higgsfieldapi.com (seed 002) — text/image-to-video and Soul ID characters.

Wire format (providers/PROTOCOLS.md): ``POST /generate`` →
``{success, generation_id, type}``; ``GET /status/{generation_id}`` →
``{status, video_url, type, error}``; Soul ID ``POST /soul/train {name, images}`` →
``{model_id, status}``, ``GET /soul/models/{model_id}`` → ``{model_id, status, error}``.

Beyond the seed (inferred, see shared/providers/README.md §3):

* status words other than ``completed`` follow the official Higgsfield platform
  (``queued``/``in_progress``/``nsfw``/``failed``/``canceled``) plus common synonyms;
  the official answer shapes (``request_id``, ``video.url``, ``images[].url``) are
  accepted too, so the same parser works against either API;
* ``{"success": false, "error": "..."}`` is the error/failure envelope;
* a generation with a character sends the Soul ID as ``model_id``;
* ``DELETE /soul/models/{model_id}`` deletes a trained model (404/405 → not deleted);
* no model field and no cancel endpoint are documented, so none are offered.
"""

from __future__ import annotations

import logging
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
    TaskStatus,
    TrainingRequest,
)

log = logging.getLogger(__name__)

GENERATE_PATH = "/generate"
STATUS_PATH = "/status/{task_id}"
SOUL_TRAIN_PATH = "/soul/train"
SOUL_MODEL_PATH = "/soul/models/{model_id}"

QUEUED = frozenset({"queued", "pending", "submitted", "waiting"})
RUNNING = frozenset({"in_progress", "processing", "running", "generating", "started"})
SUCCEEDED = frozenset({"completed", "complete", "success", "succeeded", "done"})
CANCELLED = frozenset({"canceled", "cancelled"})
FAILED = frozenset({"failed", "fail", "error"}) | CANCELLED
MODERATION = frozenset({"nsfw"})

TRAINING_READY = frozenset({"ready", "completed", "succeeded", "success", "done"})
TRAINING_RUNNING = frozenset({"training", "processing", "in_progress", "running"})
TRAINING_QUEUED = frozenset({"queued", "pending", "submitted"})
TRAINING_FAILED = frozenset({"failed", "fail", "error", "canceled", "cancelled"})


def _refusal(body: dict[str, Any], default: ErrorKind) -> ProviderError:
    """``{"success": false, "error": "..."}`` as an error of the kind its words suggest."""
    raw = body.get("error") if body.get("error") is not None else body.get("message")
    if isinstance(raw, dict):
        code, message = p.id_str(raw.get("code")), raw.get("message")
    else:
        code, message = None, raw
    kind = p.kind_from_words(code, default=default, message=message)
    return p.envelope_error(
        kind, p.safe_message(message, "the provider refused the request"), code or kind.value
    )


class HiggsfieldProvider(Provider):
    id = "higgsfield"
    display_name = "Higgsfield"
    default_base_url = "https://higgsfieldapi.com/api/v1"
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_to_video=True,
        image_to_video=True,
        cancel=False,
        progress=False,
        credits=False,
        characters=True,
        idempotent_submit=False,
        options=frozenset({"duration", "aspect_ratio", "resolution", "seed", "character"}),
    )

    # --- generation ----------------------------------------------------------------------
    async def prepare_submit(self, request: GenerationRequest) -> SubmitCall:
        body: dict[str, Any] = {
            "type": "image-to-video" if request.image else "text-to-video",
            "prompt": request.prompt,
        }
        if request.image:
            body["image_url"] = request.image.best_reference()
        for name in ("duration", "resolution", "aspect_ratio", "seed"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.image:
            body["camera_fixed"] = False  # the seed's i2v example
        if request.character_id:
            body["model_id"] = request.character_id
        return SubmitCall.of(GENERATE_PATH, body)

    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        return await self._create(call, "generation_id", "request_id")

    async def _create(self, call: SubmitCall, *id_keys: str) -> str:
        """POST something that starts work; the id the answer gives it (first key found)."""
        path = call.path
        answer = p.expect_dict(
            await self.http.request_json("POST", path, data=call.body), f"{path} answer"
        )
        if answer.get("success") is False:
            raise _refusal(answer, ErrorKind.INVALID)
        for key in id_keys:
            if (found := p.id_str(answer.get(key))) is not None:
                return found
        raise p.malformed(f"no {id_keys[0]} in the {path} answer")

    async def status(self, task_id: str) -> TaskStatus:
        body = p.expect_dict(
            await self.http.request_json("GET", p.path(STATUS_PATH, task_id=task_id)),
            "status answer",
        )
        raw = p.text(body.get("status"))
        state = raw.lower() if raw else None
        if state is None:
            if body.get("success") is False:
                err = _refusal(body, ErrorKind.INVALID)
                if err.kind is ErrorKind.INVALID:  # nothing retryable: the task is over
                    return p.failed("provider_error", err.message, None)
                raise err
            raise p.malformed("no status in the status answer")
        if state in MODERATION:
            return p.moderated("nsfw", raw)
        if state in FAILED:
            code = "cancelled" if state in CANCELLED else "failed"
            default = "the generation was cancelled" if code == "cancelled" else "generation failed"
            return p.failed(code, body.get("error"), raw, default=default)
        if state in SUCCEEDED:
            outputs = _outputs(body)
            if not outputs:
                return p.no_output(raw)
            return TaskStatus(state="succeeded", progress=100, outputs=outputs, raw_state=raw)
        if state in QUEUED:
            return TaskStatus(state="queued", raw_state=raw)
        if state not in RUNNING:
            log.info("higgsfield: unknown status %r treated as running", raw)
        return TaskStatus(state="running", raw_state=raw)

    # --- characters (Soul ID) ----------------------------------------------------------------
    async def train_character(self, request: TrainingRequest) -> str:
        body = {"name": request.name, "images": list(request.image_urls)}
        return await self._create(SubmitCall.of(SOUL_TRAIN_PATH, body), "model_id", "id")

    async def character_status(self, model_id: str) -> TaskStatus:
        body = p.expect_dict(
            await self.http.request_json("GET", p.path(SOUL_MODEL_PATH, model_id=model_id)),
            "training status",
        )
        raw = p.text(body.get("status"))
        state = raw.lower() if raw else None
        if state is None:
            if body.get("success") is False:
                raise _refusal(body, ErrorKind.NOT_FOUND)
            raise p.malformed("no status in the training status")
        if state in TRAINING_READY:
            return TaskStatus(state="succeeded", progress=100, raw_state=raw)
        if state in TRAINING_FAILED:
            return p.failed("training_failed", body.get("error"), raw, default="training failed")
        if state in TRAINING_QUEUED:
            return TaskStatus(state="queued", raw_state=raw)
        return TaskStatus(state="running", raw_state=raw)

    async def delete_character(self, model_id: str) -> bool:
        try:
            answer = await self.http.request_json(
                "DELETE", p.path(SOUL_MODEL_PATH, model_id=model_id)
            )
        except ProviderError as exc:
            if exc.http_status in (404, 405):
                return False
            if exc.code == "malformed" and exc.http_status and 200 <= exc.http_status < 300:
                return True  # e.g. 204 No Content
            raise
        return not (isinstance(answer, dict) and answer.get("success") is False)


def _outputs(body: dict[str, Any]) -> tuple[Output, ...]:
    url = p.text(body.get("video_url")) or p.text(p.get_dict(body, "video").get("url"))
    if url:
        return (Output(kind="video", url=url, expires_at=p.url_expiry(url)),)
    images = [p.text(i.get("url")) for i in p.get_list(body, "images") if isinstance(i, dict)]
    return tuple(Output(kind="image", url=u, expires_at=p.url_expiry(u)) for u in images if u)


PROVIDER = HiggsfieldProvider
