"""``gptge``: the api.gpt.ge gateway (seed 004; docs mirrored at gpt.morphogen.top).

One gateway, several upstream families, each with its own submit endpoint; the model
name picks the family (providers/PROTOCOLS.md):

* MiniMax/Hailuo (``MiniMax-…``, ``T2V-…``, ``I2V-…``):
  ``POST /task/minimax/v1/video_generation {model, prompt, duration 6|10,
  resolution "512P"|"720P"|"768P"|"1080P", first_frame_image}`` → ``{task_id,
  base_resp}``; success carries only a ``file_id``, resolved through
  ``GET /task/minimax/v1/files/retrieve?file_id=`` (see :meth:`resolve_output`).
* Kling (``kling…``): ``POST /kling/v1/videos/text2video|image2video {model_name,
  prompt, negative_prompt, aspect_ratio, duration "5"|"10", image}`` →
  ``{code: 0, data: {task_id}}``.
* Jimeng (``jimeng…``; the endpoint is fixed, the name only selects it):
  ``POST /task/jimeng/text2video|image2video {prompt ≤150, seed, aspect_ratio,
  image_urls[] | binary_data_base64[]}`` → ``{code: 10000, data: {task_id}}``.

``GET /task/{task_id}`` answers in the upstream family's raw shape, so the parser
sniffs: MiniMax ``base_resp``; Kling ``data.task_status``; the generic/Jimeng
envelope ``data.status``; Doubao top-level ``status`` + ``content.video_url``;
Bailian ``output.task_status``. Business codes inside HTTP 200 are checked first.

Inferred beyond the documents: the Kling image-to-video endpoint and ``image`` field
(Kling's official API); Kling business codes (official Kling error table);
Jimeng 50411/50511 (risk) and 50429/50430 (rate) codes (Volcengine's table);
480p is sent to MiniMax as its nearest tier, 512P; options a family does not
take are refused with a message naming the families that do; output URL expiry is
only reported when the signed URL itself carries it. No cancel is documented.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, ClassVar, Literal

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
)

log = logging.getLogger(__name__)

MINIMAX_SUBMIT_PATH = "/task/minimax/v1/video_generation"
MINIMAX_FILE_PATH = "/task/minimax/v1/files/retrieve"
JIMENG_SUBMIT_PATH = "/task/jimeng/{action}"  # text2video | image2video
KLING_SUBMIT_PATH = "/kling/v1/videos/{action}"  # text2video | image2video
TASK_PATH = "/task/{task_id}"

Family = Literal["minimax", "kling", "jimeng"]

MINIMAX_MODELS = (
    "MiniMax-Hailuo-2.3",
    "MiniMax-Hailuo-2.3-Fast",
    "MiniMax-Hailuo-02",
    "T2V-01-Director",
    "T2V-01",
    "I2V-01-Director",
    "I2V-01-live",
    "I2V-01",
)
MINIMAX_TEXT_ONLY = frozenset({"T2V-01-Director", "T2V-01"})
MINIMAX_IMAGE_ONLY = frozenset(
    {"MiniMax-Hailuo-2.3-Fast", "I2V-01-Director", "I2V-01-live", "I2V-01"}
)
MINIMAX_DURATIONS = (6, 10)
MINIMAX_DEFAULT_DURATION = 6
MINIMAX_RESOLUTIONS = {"480p": "512P", "720p": "720P", "1080p": "1080P"}
KLING_MODELS = ("kling-v2-5-turbo", "kling-v2-1-master", "kling-v1-6", "kling-v1")
KLING_DURATIONS = (5, 10)
KLING_ASPECT_RATIOS = frozenset({"16:9", "9:16", "1:1"})
JIMENG_MODELS = ("jimeng",)
JIMENG_MAX_PROMPT = 150
JIMENG_ASPECT_RATIOS = frozenset({"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"})

FAMILY_OPTIONS: dict[Family, frozenset[str]] = {
    "minimax": frozenset({"duration", "resolution"}),
    "kling": frozenset({"duration", "aspect_ratio", "negative_prompt"}),
    "jimeng": frozenset({"seed", "aspect_ratio"}),
}
FAMILY_LABELS: dict[Family, str] = {
    "minimax": "MiniMax/Hailuo",
    "kling": "Kling",
    "jimeng": "Jimeng",
}

# Business codes inside HTTP 200 answers.
OK_CODES = frozenset({0, 200, 10000})
MINIMAX_KINDS = {
    1000: ErrorKind.TRANSIENT,
    1001: ErrorKind.TRANSIENT,
    1002: ErrorKind.RATE_LIMITED,
    1004: ErrorKind.AUTH,
    1008: ErrorKind.CREDITS,
    1024: ErrorKind.TRANSIENT,
    1026: ErrorKind.MODERATION,
    1027: ErrorKind.MODERATION,
    2013: ErrorKind.INVALID,
}
JIMENG_KINDS = {
    50411: ErrorKind.MODERATION,
    50412: ErrorKind.MODERATION,
    50413: ErrorKind.MODERATION,
    50500: ErrorKind.MODERATION,
    50511: ErrorKind.MODERATION,
    50429: ErrorKind.RATE_LIMITED,
    50430: ErrorKind.RATE_LIMITED,
}
KLING_KINDS = {
    **dict.fromkeys(range(1000, 1005), ErrorKind.AUTH),
    1101: ErrorKind.CREDITS,
    1102: ErrorKind.CREDITS,
    1301: ErrorKind.MODERATION,
    1302: ErrorKind.RATE_LIMITED,
    1303: ErrorKind.RATE_LIMITED,
    1304: ErrorKind.RATE_LIMITED,
    **dict.fromkeys(range(5000, 5003), ErrorKind.TRANSIENT),
}
# Kinds that mean "ask again later" (or "fix the key") rather than "this task is over".
RAISE_ON_STATUS = frozenset(
    {ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED, ErrorKind.AUTH, ErrorKind.CREDITS,
     ErrorKind.NOT_FOUND}
)  # fmt: skip

SUCCEEDED = frozenset({"success", "succeeded", "succeed", "done", "completed"})
RUNNING = frozenset({"processing", "running", "generating", "preparing", "in_progress"})
QUEUED = frozenset({"queueing", "queued", "in_queue", "pending", "submitted"})
FAILED = frozenset({"failed", "fail", "error", "not_found", "expired", "cancelled", "canceled"})


def _invalid(message: str, code: str = "invalid_option") -> ProviderError:
    return ProviderError(ErrorKind.INVALID, message, code=code)


def family_of(model: str) -> Family:
    name = model.strip().lower()
    if name.startswith("kling"):
        return "kling"
    if name.startswith("jimeng"):
        return "jimeng"
    if "minimax" in name or "hailuo" in name or name.startswith(("t2v-", "i2v-")):
        return "minimax"
    raise _invalid(
        f"gptge cannot submit {model!r}: choose a MiniMax/Hailuo, Kling or Jimeng model",
        "invalid_model",
    )


def _int_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _code_kind(code: int, table: dict[int, ErrorKind], default: ErrorKind) -> ErrorKind:
    if code in table:
        return table[code]
    if 400 <= code < 600:  # HTTP-like codes in the gateway's own envelope
        return p.kind_for_http_status(code)
    return default


def _raw_b64(image_data: bytes) -> str:
    return base64.b64encode(image_data).decode()


class GptgeProvider(Provider):
    id = "gptge"
    display_name = "GPT.GE"
    default_base_url = "https://api.gpt.ge"
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_to_video=True,
        callbacks=True,
        image_to_video=True,
        cancel=False,
        progress=False,
        credits=False,
        characters=False,
        idempotent_submit=False,
        options=frozenset({"duration", "aspect_ratio", "resolution", "seed", "negative_prompt"}),
    )

    def models(self) -> list[str]:
        return [*MINIMAX_MODELS, *KLING_MODELS, *JIMENG_MODELS]

    # --- submit --------------------------------------------------------------------------------
    async def prepare_submit(self, request: GenerationRequest) -> SubmitCall:
        model = request.model or MINIMAX_MODELS[0]
        family = family_of(model)
        self._check_options(request, model, family)
        if family == "minimax":
            return await self._submit_minimax(request, model)
        if family == "kling":
            return await self._submit_kling(request, model)
        return await self._submit_jimeng(request)

    @staticmethod
    def _check_options(request: GenerationRequest, model: str, family: Family) -> None:
        for name in sorted(frozenset().union(*FAMILY_OPTIONS.values())):
            if getattr(request, name) in (None, "") or name in FAMILY_OPTIONS[family]:
                continue
            able = [FAMILY_LABELS[f] for f, opts in FAMILY_OPTIONS.items() if name in opts]
            raise _invalid(
                f"{model} does not take the {name} option; on gptge only "
                f"{' and '.join(able)} models do",
                "unsupported_option",
            )

    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        answer = p.expect_dict(
            await self.http.request_json("POST", call.path, data=call.body), "submit answer"
        )
        p.gateway_error(answer)
        # Each upstream family answers a create in its own shape; the path says which.
        if call.path == MINIMAX_SUBMIT_PATH:
            _raise_base_resp(answer)
            return _task_id(answer.get("task_id"))
        if call.path.startswith(KLING_SUBMIT_PATH.split("{", 1)[0]):
            _raise_code(answer, KLING_KINDS, ok=0)
        else:
            _raise_code(answer, JIMENG_KINDS, ok=10000)
        return _task_id(p.get_dict(answer, "data").get("task_id"))

    async def _submit_minimax(self, request: GenerationRequest, model: str) -> SubmitCall:
        if request.image is None and model in MINIMAX_IMAGE_ONLY:
            raise _invalid(f"{model} needs an image to animate", "image_required")
        if request.image is not None and model in MINIMAX_TEXT_ONLY:
            raise _invalid(f"{model} cannot start from an image", "image_not_supported")
        duration = request.duration or MINIMAX_DEFAULT_DURATION
        if duration not in MINIMAX_DURATIONS:
            raise _invalid("MiniMax models make 6 or 10 second videos")
        body: dict[str, Any] = {"model": model, "prompt": request.prompt, "duration": duration}
        if request.resolution is not None:
            resolution = MINIMAX_RESOLUTIONS.get(request.resolution.lower())
            if resolution is None:
                raise _invalid(f"MiniMax does not offer {request.resolution}")
            if resolution == "1080P" and duration != 6:
                raise _invalid("MiniMax makes 1080p videos of 6 seconds only")
            body["resolution"] = resolution
        if request.image is not None:
            body["first_frame_image"] = request.image.best_reference()
        if request.callback_url:
            body["callback_url"] = request.callback_url
        return SubmitCall.of(MINIMAX_SUBMIT_PATH, body)

    async def _submit_kling(self, request: GenerationRequest, model: str) -> SubmitCall:
        body: dict[str, Any] = {"model_name": model, "prompt": request.prompt}
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.aspect_ratio is not None:
            if request.aspect_ratio not in KLING_ASPECT_RATIOS:
                raise _invalid(f"Kling does not offer aspect ratio {request.aspect_ratio}")
            body["aspect_ratio"] = request.aspect_ratio
        if request.duration is not None:
            if request.duration not in KLING_DURATIONS:
                raise _invalid("Kling models make 5 or 10 second videos")
            body["duration"] = str(request.duration)  # Kling wants a string
        action = "text2video"
        if request.image is not None:
            action = "image2video"
            body["image"] = request.image.url or _raw_b64(request.image.data)
        if request.callback_url:
            body["callback_url"] = request.callback_url
        return SubmitCall.of(p.path(KLING_SUBMIT_PATH, action=action), body)

    async def _submit_jimeng(self, request: GenerationRequest) -> SubmitCall:
        if len(request.prompt) > JIMENG_MAX_PROMPT:
            raise _invalid(
                f"Jimeng prompts are at most {JIMENG_MAX_PROMPT} characters "
                f"(this one has {len(request.prompt)})",
                "prompt_too_long",
            )
        body: dict[str, Any] = {"prompt": request.prompt}
        if request.seed is not None:
            body["seed"] = request.seed
        if request.aspect_ratio is not None:
            if request.aspect_ratio not in JIMENG_ASPECT_RATIOS:
                raise _invalid(f"Jimeng does not offer aspect ratio {request.aspect_ratio}")
            body["aspect_ratio"] = request.aspect_ratio
        action = "text2video"
        if request.image is not None:
            action = "image2video"
            if request.image.url:
                body["image_urls"] = [request.image.url]
            else:
                body["binary_data_base64"] = [_raw_b64(request.image.data)]
        return SubmitCall.of(p.path(JIMENG_SUBMIT_PATH, action=action), body)

    # --- status ---------------------------------------------------------------------------------
    async def status(self, task_id: str) -> TaskStatus:
        body = await self.http.request_json("GET", p.path(TASK_PATH, task_id=task_id))
        return parse_task(p.expect_dict(body, "status answer"))

    async def resolve_output(self, output: Output) -> Output:
        if not output.file_id or output.url or output.data_base64:
            return output
        body = p.expect_dict(
            await self.http.request_json(
                "GET", MINIMAX_FILE_PATH, params={"file_id": output.file_id}
            ),
            "file answer",
        )
        p.gateway_error(body, default=ErrorKind.NOT_FOUND)
        _raise_base_resp(body)
        url = p.text(p.get_dict(body, "file").get("download_url"))
        if url is None:
            raise p.malformed("no download_url in the file answer")
        filename = (p.text(p.get_dict(body, "file").get("filename")) or "").lower()
        return Output(
            kind=output.kind,
            url=url,
            expires_at=p.url_expiry(url),
            content_type="video/mp4" if filename.endswith(".mp4") else output.content_type,
        )


# --- envelope codes ------------------------------------------------------------------------
def _task_id(value: Any) -> str:
    task_id = p.id_str(value)
    if task_id is None:
        raise p.malformed("no task_id in the submit answer")
    return task_id


def _raise_base_resp(body: dict[str, Any]) -> None:
    """MiniMax ``base_resp.status_code != 0`` is an error, whatever the HTTP status said."""
    if "base_resp" not in body:
        return
    resp = p.get_dict(body, "base_resp")
    code = _int_code(resp.get("status_code"))
    if code == 0:
        return
    if code is None:
        raise p.malformed("base_resp has no status_code")
    kind = _code_kind(code, MINIMAX_KINDS, ErrorKind.INVALID)
    message = (
        p.MODERATION_MESSAGE
        if kind is ErrorKind.MODERATION
        else p.safe_message(resp.get("status_msg"), "the provider refused the request")
    )
    raise p.envelope_error(kind, message, str(code))


def _raise_code(body: dict[str, Any], table: dict[int, ErrorKind], *, ok: int) -> None:
    raw = body.get("code")
    code = _int_code(raw)
    if code is None or code == ok or code in OK_CODES:
        if code is None and raw is not None:
            raise p.malformed("unexpected code in the answer")
        return
    kind = _code_kind(code, table, ErrorKind.INVALID)
    message = (
        p.MODERATION_MESSAGE
        if kind is ErrorKind.MODERATION
        else p.safe_message(body.get("message"), "the provider refused the request")
    )
    raise p.envelope_error(kind, message, str(code))


def _status_code_check(
    code: int, table: dict[int, ErrorKind], message: Any, raw_state: str | None
) -> TaskStatus:
    """A non-OK business code in a status answer: raise if retryable, else a failed task."""
    kind = _code_kind(code, table, ErrorKind.INVALID)
    if kind is ErrorKind.MODERATION:
        return p.moderated(str(code), raw_state)
    if kind in RAISE_ON_STATUS:
        raise p.envelope_error(
            kind, p.safe_message(message, "the provider could not answer"), str(code)
        )
    return p.failed(str(code), message, raw_state)


# --- status parsing --------------------------------------------------------------------------
def parse_task(body: dict[str, Any]) -> TaskStatus:
    """Any family's ``GET /task/{id}`` answer, sniffed by shape."""
    p.gateway_error(body, default=ErrorKind.TRANSIENT)
    data = p.get_dict(body, "data")

    if isinstance(body.get("base_resp"), dict):  # MiniMax / Hailuo
        raw = p.text(body.get("status"))
        resp = body["base_resp"]
        code = _int_code(resp.get("status_code"))
        if code not in (0, None):
            return _status_code_check(code, MINIMAX_KINDS, resp.get("status_msg"), raw)
        return _from_state(raw, body, resp.get("status_msg"))

    if "task_status" in data:  # Kling
        raw = p.text(data.get("task_status"))
        code = _int_code(body.get("code"))
        if code is not None and code not in OK_CODES:
            return _status_code_check(code, KLING_KINDS, body.get("message"), raw)
        return _from_state(raw, body, data.get("task_status_msg"))

    if "status" in data:  # the gateway's generic envelope (and Jimeng's raw words)
        raw = p.text(data.get("status"))
        code = _int_code(body.get("code"))
        if code is not None and code not in OK_CODES:
            return _status_code_check(code, JIMENG_KINDS, body.get("message"), raw)
        message = body.get("message")
        if p.word(message) in ("success", "ok", None):
            message = data.get("message") or data.get("error")
        return _from_state(raw, body, message)

    output = p.get_dict(body, "output")
    if "task_status" in output:  # Bailian / DashScope
        return _from_state(p.text(output.get("task_status")), body, output.get("message"))

    if isinstance(body.get("status"), str):  # Doubao, or a bare MiniMax-like answer
        return _from_state(p.text(body.get("status")), body, body.get("error"))

    raise p.malformed("no task status in the answer")


def _from_state(raw: str | None, body: dict[str, Any], failure: Any) -> TaskStatus:
    key = raw.lower() if raw else ""
    if p.word(failure) in ("success", "succeed", "ok"):
        failure = None  # an envelope's "success" is no reason for a failure
    state: TaskState
    if key in SUCCEEDED:
        outputs = outputs_of(body)
        if not outputs:
            return p.no_output(raw)
        return TaskStatus(state="succeeded", progress=100, outputs=outputs, raw_state=raw)
    if key in FAILED:
        code = key if key in ("not_found", "expired") else "failed"
        if key in ("cancelled", "canceled"):
            code = "cancelled"
        return p.failed(code, failure, raw)
    if key in QUEUED:
        state = "queued"
    else:
        if key not in RUNNING:
            log.info("gptge: unknown status %r treated as running", raw)
        state = "running"
    return TaskStatus(state=state, raw_state=raw)


def _video(url: str) -> Output:
    return Output(kind="video", url=url, expires_at=p.url_expiry(url))


def _image(url: str) -> Output:
    return Output(kind="image", url=url, expires_at=p.url_expiry(url))


def _urls(values: list[Any]) -> list[str]:
    return [u for u in (p.text(v) for v in values) if u]


def outputs_of(body: dict[str, Any]) -> tuple[Output, ...]:
    """Outputs in the README's priority order; the first kind present wins."""
    data = p.get_dict(body, "data")
    url = p.text(data.get("video_url"))
    if url:
        return (_video(url),)
    images = _urls(p.get_list(data, "image_urls"))
    if images:
        return tuple(_image(u) for u in images)
    blobs = [b for b in (p.text(v) for v in p.get_list(data, "binary_data_base64")) if b]
    if blobs:
        out = []
        for blob in blobs:
            kind, content_type = p.sniff_base64(blob)
            out.append(Output(kind=kind, data_base64=blob, content_type=content_type))
        return tuple(out)
    file_id = p.id_str(body.get("file_id"))
    if file_id:
        return (Output(kind="video", file_id=file_id, content_type="video/mp4"),)
    for holder in (p.get_dict(body, "content"), p.get_dict(body, "output")):
        url = p.text(holder.get("video_url"))
        if url:
            return (_video(url),)
    result = p.get_dict(data, "task_result")
    videos = _urls([v.get("url") for v in p.get_list(result, "videos") if isinstance(v, dict)])
    if videos:
        return tuple(_video(u) for u in videos)
    images = _urls([i.get("url") for i in p.get_list(result, "images") if isinstance(i, dict)])
    if images:
        return tuple(_image(u) for u in images)
    url = p.text(body.get("video_url"))
    if url:
        return (_video(url),)
    return _from_resp_data(data.get("resp_data"))


def _from_resp_data(value: Any) -> tuple[Output, ...]:
    """``data.resp_data`` is a JSON *string* that may hold URLs; never required."""
    if not isinstance(value, str) or not value.strip():
        return ()
    try:
        inner = json.loads(value)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(inner, dict):
        return ()
    url = p.text(inner.get("video_url"))
    if url:
        return (_video(url),)
    return tuple(_image(u) for u in _urls(p.get_list(inner, "image_urls")))


PROVIDER = GptgeProvider
