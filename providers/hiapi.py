"""``hiapi``: HiAPI's unified async task API (seed 001, docs.hiapi.ai, hiapi-python SDK).

Wire format (providers/PROTOCOLS.md): ``POST /v1/tasks {model, input: {...}}`` with an
``Idempotency-Key`` header → ``{code: 200, data: {taskId}}``;
``GET /v1/tasks/{taskId}`` → ``{code, message, data}``. ``code`` mirrors the HTTP
status and may say 404/429/503 inside an HTTP 200, so it is checked first. Errors are
classified by the body's ``error_code`` before the status, as the official SDK does
(422 ``IDEMPOTENCY_KEY_MISMATCH`` on a submit is "unconfirmed", 409
``IDEMPOTENCY_KEY_PROCESSING`` is retry-later). ``HIAPI_BASE_URL`` may end in ``/v1``
(the SDK's form) or not.

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
import re
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

API_VERSION = "/v1"
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

# The body's business ``error_code`` decides before the HTTP status, as in the SDK
# (_transport._error_from_response: ERROR_CODE_TO_CLASS, then STATUS_TO_CLASS); the
# kinds follow the SDK classes' docstrings. An unknown code falls back to the status.
ERROR_CODE_KINDS = {
    "INVALID_REQUEST": ErrorKind.INVALID,  # "fix the request; do not retry as-is"
    "MODEL_UNAVAILABLE": ErrorKind.TRANSIENT,  # "retry shortly or switch models"
    "TASK_FAILED": ErrorKind.INVALID,  # synchronous rejection, never called retryable
    "TASK_TIMEOUT": ErrorKind.TRANSIENT,  # "retryable"
    "STORAGE_UNAVAILABLE": ErrorKind.TRANSIENT,  # "retryable"
    # The first request with this Idempotency-Key is still in flight: resend the same
    # request after Retry-After, it then replays the original task.
    "IDEMPOTENCY_KEY_PROCESSING": ErrorKind.RATE_LIMITED,
    # Only meaningful on a submit, where it is "unconfirmed" (see _unconfirmed).
    "IDEMPOTENCY_KEY_MISMATCH": ErrorKind.INVALID,
}
# Except that 429 and 503 stay retryable whatever the code: the SDK retries them by
# status before it reads the body ("the server rejected the request before
# processing, so retrying is safe even for a non-idempotent POST").
RETRIED_STATUSES = frozenset({429, 503})
KEY_MISMATCH = "IDEMPOTENCY_KEY_MISMATCH"
SUBMIT_UNCONFIRMED = "submit_unconfirmed"  # the poller's code for "the provider may have it"
# What a provider code may look like before we store and show it (they are untrusted).
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")

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


def _code(value: Any) -> str | None:
    """A provider error code fit to store and show: short, one token, or None."""
    text = p.text(value)
    return text if text is not None and _CODE.fullmatch(text) else None


def _kind(error_code: str | None, status: int) -> ErrorKind | None:
    """The kind a business code gives an error answer, or None to go by its status."""
    if status in RETRIED_STATUSES:
        return None
    return ERROR_CODE_KINDS.get(error_code or "")


def _check_envelope(body: dict[str, Any]) -> None:
    code = body.get("code")
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if code == 200:
        return
    if not isinstance(code, int) or isinstance(code, bool):
        raise p.malformed("no code in the answer envelope")
    error_code = _code(body.get("error_code"))
    kind = _kind(error_code, code) or p.kind_for_http_status(code)
    default = {
        ErrorKind.NOT_FOUND: "the provider does not know this task",
        ErrorKind.RATE_LIMITED: "the provider is rate limiting us",
        ErrorKind.TRANSIENT: "the provider is temporarily unavailable",
    }.get(kind, "the provider refused the request")
    message = p.safe_message(body.get("message"), default)
    raise p.envelope_error(kind, message, error_code or str(code))


def _reclassified(exc: ProviderError) -> ProviderError:
    """An HTTP error answer classified by its body's ``error_code`` before its status.

    ProviderHttp maps by status alone and sets ``code`` from the body's ``error_code``
    (else its envelope ``code``). The error is changed in place so that everything
    else it carries (retry_after, http_status, the cause) stays as ProviderHttp set it.
    """
    if exc.http_status is None or exc.http_status < 400:
        return exc  # no answer (timeout, reset) or not an HTTP error: nothing to read
    code = _code(exc.code)
    if code is None:  # unbounded or junk text from the body: keep the status only
        exc.code = f"http_{exc.http_status}"
    else:
        exc.kind = _kind(code, exc.http_status) or exc.kind
    return exc


def _unconfirmed(exc: ProviderError) -> ProviderError:
    """A submit answered 422 IDEMPOTENCY_KEY_MISMATCH: HiAPI already holds a task made
    from another body under this key (SDK: "key reused with a different body"). That
    task may be running and billing, and we cannot learn its id, so the submit is
    unconfirmed, not invalid; resending cannot help (the key would mismatch again)."""
    if exc.code != KEY_MISMATCH or exc.retryable:  # a 429/503 one is resent (see above)
        return exc
    return ProviderError(
        ErrorKind.INVALID,  # not retryable; the code tells the poller what it means
        "HiAPI already has a different request under this task's idempotency key "
        f"({KEY_MISMATCH}: {exc.message}), so it may already be making and billing it",
        code=SUBMIT_UNCONFIRMED,
        retry_after=exc.retry_after,
        http_status=exc.http_status,
        delivery=exc.delivery,
    )


class HiapiProvider(Provider):
    id = "hiapi"
    display_name = "HiAPI"
    default_base_url = "https://api.hiapi.ai"
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_to_video=True,
        callbacks=True,
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

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request_json`` on a ``/v1/...`` path, whichever form the base URL has: the
        SDK's default (and documented) base ends in ``/v1``, ours does not (the SDK
        accepts both, _transport._normalize_base_url)."""
        # ProviderHttp strips a trailing "/"; a dry transport (the service's precheck)
        # has no base URL and never sends.
        if getattr(self.http, "base_url", "").endswith(API_VERSION):
            path = path.removeprefix(API_VERSION)
        try:
            return await self.http.request_json(method, path, **kwargs)
        except ProviderError as exc:
            raise _reclassified(exc) from exc.__cause__

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
        body: dict[str, Any] = {"model": model, "input": self._input(request, model)}
        if request.callback_url:
            # Beside "input", never inside it (the API rejects that); "final" is the
            # only value: one call on success or failure.
            body["callback"] = {"url": request.callback_url, "when": "final"}
        return SubmitCall.of(TASKS_PATH, body)

    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        try:
            answer = p.expect_dict(
                await self._request(
                    "POST",
                    call.path,
                    data=call.body,
                    headers={IDEMPOTENCY_HEADER: _idempotency_key(idempotency_key)},
                ),
                "submit answer",
            )
            _check_envelope(answer)
        except ProviderError as exc:
            raise _unconfirmed(exc) from exc.__cause__
        task_id = p.id_str(p.get_dict(answer, "data").get("taskId"))
        if task_id is None:
            raise p.malformed("no taskId in the submit answer")
        return task_id

    async def status(self, task_id: str) -> TaskStatus:
        body = p.expect_dict(
            await self._request("GET", p.path(TASK_PATH, task_id=task_id)), "status answer"
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
        return p.failed(_code(err.get("code")) or "TASK_FAILED", err.get("message"), raw)
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
