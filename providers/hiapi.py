"""``hiapi``: HiAPI's unified async task API (seed 001, docs.hiapi.ai, hiapi-python SDK).

Wire format (providers/PROTOCOLS.md): ``POST /v1/tasks {model, input: {...}}`` with an
``Idempotency-Key`` header → ``{code: 200, data: {taskId}}``;
``GET /v1/tasks/{taskId}`` → ``{code, message, data}``. ``code`` mirrors the HTTP
status and may say 404/429/503 inside an HTTP 200, so it is checked first.

Per-model input rules come from the model pages (README §2): ``seedance-2-0`` does
text- and image-to-video (``first_frame_url``) and has no seed; ``happyhorse-1-0`` is
text-to-video only and takes a seed. Requests a model cannot honour are refused
before anything is sent.

Inferred: ``archiving`` (done, output being stored) is reported as running at 95 %;
an inline data URL is sent as ``first_frame_url`` only when the image has no URL; no
cancel endpoint exists (the SDK has none).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
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
)

log = logging.getLogger(__name__)

TASKS_PATH = "/v1/tasks"
TASK_PATH = "/v1/tasks/{task_id}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_BYTES = 255
ARCHIVING_PROGRESS = 95


@dataclass(frozen=True, slots=True)
class ModelRules:
    image: bool
    durations: tuple[int, int]
    resolutions: frozenset[str]
    aspect_ratios: frozenset[str]
    seed: bool


MODEL_RULES: dict[str, ModelRules] = {
    "seedance-2-0": ModelRules(
        image=True,
        durations=(4, 15),
        resolutions=frozenset({"480p", "720p", "1080p"}),
        aspect_ratios=frozenset({"1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "adaptive"}),
        seed=False,
    ),
    "happyhorse-1-0": ModelRules(
        image=False,
        durations=(3, 15),
        resolutions=frozenset({"720p", "1080p"}),
        aspect_ratios=frozenset({"1:1", "16:9", "3:4", "4:3", "9:16"}),
        seed=True,
    ),
}

# Business error codes (SDK errors.py) whose kind differs from the HTTP-code mapping.
ERROR_CODE_KINDS = {
    "INVALID_REQUEST": ErrorKind.INVALID,
    "IDEMPOTENCY_KEY_MISMATCH": ErrorKind.INVALID,
    "IDEMPOTENCY_KEY_PROCESSING": ErrorKind.RATE_LIMITED,
    "MODEL_UNAVAILABLE": ErrorKind.TRANSIENT,
    "TASK_TIMEOUT": ErrorKind.TRANSIENT,
    "STORAGE_UNAVAILABLE": ErrorKind.TRANSIENT,
}

STATES = {
    "queued": "queued",
    "handling": "running",
    "archiving": "running",
    "success": "succeeded",
    "fail": "failed",
}


def _invalid(message: str, code: str = "invalid_option") -> ProviderError:
    return ProviderError(ErrorKind.INVALID, message, code=code)


def _idempotency_key(key: str) -> str:
    if 0 < len(key.encode()) <= MAX_IDEMPOTENCY_KEY_BYTES:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


def _check_envelope(body: dict[str, Any]) -> None:
    code = body.get("code")
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if code == 200:
        return
    if not isinstance(code, int) or isinstance(code, bool):
        raise p.malformed("no code in the answer envelope")
    error_code = p.text(body.get("error_code"))
    kind = ERROR_CODE_KINDS.get(error_code or "", p.kind_for_http_status(code))
    default = {
        ErrorKind.NOT_FOUND: "the provider does not know this task",
        ErrorKind.RATE_LIMITED: "the provider is rate limiting us",
        ErrorKind.TRANSIENT: "the provider is temporarily unavailable",
    }.get(kind, "the provider refused the request")
    message = p.safe_message(body.get("message"), default)
    raise p.envelope_error(kind, message, error_code or str(code))


class HiapiProvider(Provider):
    id = "hiapi"
    display_name = "HiAPI"
    default_base_url = "https://api.hiapi.ai"
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_to_video=True,
        image_to_video=True,
        cancel=False,
        progress=False,
        credits=False,
        characters=False,
        idempotent_submit=True,
        options=frozenset({"duration", "aspect_ratio", "resolution", "seed"}),
    )

    def models(self) -> list[str]:
        return list(MODEL_RULES)

    def _input(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        base = model.split("@", 1)[0]  # "model@route" variants share the base rules
        rules = MODEL_RULES.get(base)
        if rules is None:
            raise _invalid(
                f"unknown HiAPI model {model!r}; choose one of {', '.join(MODEL_RULES)}",
                "invalid_model",
            )
        if request.image is not None and not rules.image:
            able = [m for m, r in MODEL_RULES.items() if r.image]
            raise _invalid(
                f"{base} is text-to-video only; for an image use {', '.join(able)}",
                "image_not_supported",
            )
        data: dict[str, Any] = {"prompt": request.prompt}
        if request.aspect_ratio is not None:
            if request.aspect_ratio not in rules.aspect_ratios:
                raise _invalid(f"{base} does not offer aspect ratio {request.aspect_ratio}")
            data["aspect_ratio"] = request.aspect_ratio
        if request.duration is not None:
            low, high = rules.durations
            if not low <= request.duration <= high:
                raise _invalid(f"{base} makes videos of {low}-{high} seconds")
            data["duration"] = request.duration
        if request.resolution is not None:
            if request.resolution not in rules.resolutions:
                raise _invalid(
                    f"{base} offers {', '.join(sorted(rules.resolutions))}, "
                    f"not {request.resolution}"
                )
            data["resolution"] = request.resolution
        if request.seed is not None:
            if not rules.seed:
                able = [m for m, r in MODEL_RULES.items() if r.seed]
                raise _invalid(f"{base} takes no seed; {', '.join(able)} does")
            data["seed"] = request.seed
        if request.image is not None:
            data["first_frame_url"] = request.image.best_reference()
        return data

    async def prepare_submit(self, request: GenerationRequest) -> SubmitCall:
        model = request.model or self.models()[0]
        return SubmitCall.of(TASKS_PATH, {"model": model, "input": self._input(request, model)})

    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        answer = p.expect_dict(
            await self.http.request_json(
                "POST",
                call.path,
                data=call.body,
                headers={IDEMPOTENCY_HEADER: _idempotency_key(idempotency_key)},
                error_kinds=ERROR_CODE_KINDS,
            ),
            "submit answer",
        )
        _check_envelope(answer)
        task_id = p.id_str(p.get_dict(answer, "data").get("taskId"))
        if task_id is None:
            raise p.malformed("no taskId in the submit answer")
        return task_id

    async def status(self, task_id: str) -> TaskStatus:
        body = p.expect_dict(
            await self.http.request_json("GET", p.path(TASK_PATH, task_id=task_id)),
            "status answer",
        )
        _check_envelope(body)
        data = body.get("data")
        if not isinstance(data, dict):
            raise p.malformed("no task in the answer envelope")
        return parse_task(data)


def parse_task(data: dict[str, Any]) -> TaskStatus:
    """A task object (the ``data`` of GET /v1/tasks/{id}, and the callback body)."""
    raw = p.text(data.get("status"))
    state = STATES.get(raw.lower() if raw else "")
    if state == "failed":
        err = p.get_dict(data, "error")
        return p.failed(p.text(err.get("code")) or "TASK_FAILED", err.get("message"), raw)
    if state == "succeeded":
        outputs = []
        for item in p.get_list(data, "output"):
            if not isinstance(item, dict):
                continue
            url = p.text(item.get("url"))
            if url:
                outputs.append(
                    Output(
                        kind=p.text(item.get("type")) or "video",
                        url=url,
                        expires_at=p.number(item.get("expireAt")),
                    )
                )
        if not outputs:
            return p.no_output(raw)
        return TaskStatus(state="succeeded", progress=100, outputs=tuple(outputs), raw_state=raw)
    if state == "queued":
        return TaskStatus(state="queued", raw_state=raw)
    if state is None:
        log.info("hiapi: unknown status %r treated as running", raw)
    progress = ARCHIVING_PROGRESS if raw and raw.lower() == "archiving" else None
    return TaskStatus(state="running", progress=progress, raw_state=raw)


PROVIDER = HiapiProvider
