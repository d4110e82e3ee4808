"""HiAPI double: ``POST /v1/tasks`` (with Idempotency-Key) and ``GET /v1/tasks/{taskId}``.

Everything is wrapped in the ``{code, message, data}`` envelope whose ``code`` mirrors
the HTTP status; bad input is ``{"code":400,"message":"invalid request","data":null,
"error_code":"INVALID_REQUEST"}`` (docs + fixtures in tests/fixtures/providers/hiapi/).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any, ClassVar

from aiohttp import web

from doubles.providers.base import ProviderDouble, Reject, Route, Task, is_int
from doubles.providers.timeline import QUEUED, Kind, Step

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
OUTPUT_TTL = 7 * 24 * 3600  # the doc example's expireAt is 7 days after completion
STATUS_WORDS = {
    Kind.QUEUED: "queued",
    Kind.RUNNING: "handling",
    Kind.SUCCEED: "success",
    Kind.FAIL: "fail",
    Kind.CANCELLED: "fail",
}
MAX_IDEMPOTENCY_KEY = 255
SIGNATURE_HEADER = "X-HiAPI-Signature"
TIMESTAMP_HEADER = "X-HiAPI-Timestamp"

# Per-model input rules from docs.hiapi.ai/models/video/*.
MODELS: dict[str, dict[str, Any]] = {
    "seedance-2-0": {
        "aspect_ratio": {"1:1", "4:3", "3:4", "16:9", "9:16", "21:9", "adaptive"},
        "duration": (4, 15),
        "resolution": {"480p", "720p", "1080p"},
        "prompt_len": (3, 20000),
        "images": True,
    },
    "happyhorse-1-0": {
        "aspect_ratio": {"1:1", "16:9", "3:4", "4:3", "9:16"},
        "duration": (3, 15),
        "resolution": {"720p", "1080p"},
        "prompt_len": (1, 20000),
        "images": False,  # text-to-video only
    },
}
IMAGE_FIELDS = (
    "first_frame_url",
    "last_frame_url",
    "reference_image_urls",
    "reference_video_urls",
    "reference_audio_urls",
)


def sign_callback(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers HiAPI adds to a callback when a webhook signing key is set:
    ``hex(HMAC_SHA256(secret, timestamp + "." + rawBody))`` (docs.hiapi.ai/async-api).

    Written here from the docs rather than imported from the bot's verifier
    (providers/hiapi_webhook.py), so that a mistake there cannot be mirrored here;
    both are checked against the SDK's ``client.webhooks.verify``.
    """
    stamp = str(timestamp)
    mac = hmac.new(secret.encode("utf-8"), stamp.encode("ascii") + b"." + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: mac.hexdigest()}


def invalid(detail: str) -> Reject:
    return Reject(400, "invalid request", "INVALID_REQUEST", detail=detail)


def validate(body: Any) -> str:
    """Check a create-task body; return the prompt. Raises Reject(400 INVALID_REQUEST)."""
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str):
        raise invalid("model is required")
    route = body.get("route")
    if route is not None and not isinstance(route, str):
        raise invalid("route must be a string")
    rules = MODELS.get(model.split("@", 1)[0])
    if rules is None:
        raise invalid(f"unknown model {model}")
    data = body.get("input")
    if not isinstance(data, dict):
        raise invalid("input must be an object")
    if "callback" in data or "callback_url" in data:
        raise invalid("callback belongs at the top level, not inside input")
    callback = body.get("callback")
    if callback is not None and (
        not isinstance(callback, dict)
        or not isinstance(callback.get("url"), str)
        or callback.get("when", "final") != "final"
    ):
        raise invalid("callback must be {url, when: 'final'}")
    prompt = data.get("prompt")
    low, high = rules["prompt_len"]
    if not isinstance(prompt, str) or not low <= len(prompt) <= high:
        raise invalid(f"prompt must be {low}-{high} characters")
    if "aspect_ratio" in data and data["aspect_ratio"] not in rules["aspect_ratio"]:
        raise invalid(f"aspect_ratio {data['aspect_ratio']!r} not supported")
    if "duration" in data:
        low, high = rules["duration"]
        if not is_int(data["duration"]) or not low <= data["duration"] <= high:
            raise invalid(f"duration must be an integer {low}-{high}")
    if "resolution" in data and data["resolution"] not in rules["resolution"]:
        raise invalid(f"resolution {data['resolution']!r} not supported")
    if "seed" in data and data["seed"] is not None and not is_int(data["seed"]):
        raise invalid("seed must be an integer")
    for name in IMAGE_FIELDS:
        if name in data and data[name] is not None:
            if not rules["images"]:
                raise invalid(f"{model} is text-to-video only: {name} is not accepted")
            value = data[name]
            if not isinstance(value, str | list):
                raise invalid(f"{name} has the wrong type")
    return prompt


class HiapiDouble(ProviderDouble):
    protocol = "hiapi"
    default_outputs = ("video", "first_frame")
    error_messages: ClassVar[dict[int, str]] = {
        401: "unauthorized",
        404: "task not found",
        429: "too many requests",
        500: "internal server error",
        503: "service temporarily unavailable",
    }

    def __init__(self, api_key: str = "test-key", **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        # Idempotency-Key -> (sha256 of the raw body, taskId or None while in flight)
        self.idempotency: dict[str, tuple[str, str | None]] = {}
        self.processing_retry_after = 1.0  # Retry-After of the 409 PROCESSING answer
        self._held: asyncio.Event | None = None
        # The console's "Webhook signing key": callbacks are signed when it is set.
        self.webhook_secret = ""

    # --- scripting: a first create that stays in flight --------------------------------
    def hold_creates(self) -> None:
        """Keep every create that carries a new Idempotency-Key in flight (its key
        registered, no task yet) until :meth:`release_creates`; meanwhile the same key
        answers 409 IDEMPOTENCY_KEY_PROCESSING. The held request still creates its task
        when released, even if its client gave up (as a real server would)."""
        self._held = asyncio.Event()

    def release_creates(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.set()

    def routes(self) -> Iterable[Route]:
        yield "POST", "/v1/tasks", self.handle_create
        yield "GET", "/v1/tasks/{task_id}", self.handle_get

    def error_body(
        self, status: int, message: str, code: str | None, retry_after: float | None = None
    ) -> Any:
        body: dict[str, Any] = {"code": status, "message": message, "data": None}
        if code is not None:
            body["error_code"] = code
        return body

    def new_task_id(self) -> str:
        # "tk-hiapi-" + 26 Crockford base32 chars (a ULID), 35 chars in all.
        return "tk-hiapi-" + self.rand_chars(26, CROCKFORD)

    async def handle_create(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 0 < len(key.encode()) <= MAX_IDEMPOTENCY_KEY:
            raise invalid("Idempotency-Key must be 1-255 bytes")
        raw = await request.read()
        body = await self.read_json(request) if raw else None
        # The server compares bodies by a hash of the raw bytes (hiapi SDK, tasks.create):
        # a retry must resend the very same bytes, not merely equal JSON.
        digest = hashlib.sha256(raw).hexdigest()
        if key is not None and key in self.idempotency:
            seen, task_id = self.idempotency[key]
            if seen != digest:
                raise Reject(
                    422,
                    "idempotency key reused with a different request body",
                    "IDEMPOTENCY_KEY_MISMATCH",
                )
            if task_id is None:
                raise Reject(
                    409,
                    "a request with this idempotency key is still processing",
                    "IDEMPOTENCY_KEY_PROCESSING",
                    retry_after=self.processing_retry_after,
                )
            return self._created(task_id, replay=True)
        if key is not None:
            self.idempotency[key] = (digest, None)  # in flight during submit_latency/hold
        try:
            if key is not None and self._held is not None:
                await self._held.wait()
            await self.submit_gate()
            prompt = validate(body)
        except BaseException:
            if key is not None:
                del self.idempotency[key]  # a failed first attempt may be retried afresh
            raise
        task = self.create_task(request, self.new_task_id(), body, prompt)
        if key is not None:
            self.idempotency[key] = (digest, task.id)
        return self._created(task.id, replay=False)

    @staticmethod
    def _created(task_id: str, *, replay: bool) -> web.Response:
        headers = {"Idempotent-Replay": "true"} if replay else None
        return web.json_response(
            {"code": 200, "message": "success", "data": {"taskId": task_id}}, headers=headers
        )

    def callback(
        self, task_id: str, secret: str, *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the callback HiAPI would post for ``task_id`` now:
        the task object (the ``data`` of its status answer), signed with ``secret``."""
        task = self.tasks[task_id]
        data = self.render(task, task.shown or QUEUED)["data"]
        body = json.dumps(data, separators=(",", ":")).encode()
        stamp = self.now_unix() if timestamp is None else timestamp
        return body, {"Content-Type": "application/json", **sign_callback(secret, body, stamp)}

    # --- callbacks: the task object, signed when a webhook signing key is set ---------
    def callback_url_of(self, body: Any) -> str | None:
        callback = body.get("callback") if isinstance(body, dict) else None
        url = callback.get("url") if isinstance(callback, dict) else None
        return url if isinstance(url, str) else None

    def callback_body(self, task: Task, step: Step) -> bytes:
        data = self.render(task, step)["data"]
        return json.dumps(data, separators=(",", ":")).encode()

    def callback_headers(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers |= sign_callback(self.webhook_secret, body, self.now_unix())
        return headers

    async def handle_get(self, request: web.Request) -> web.Response:
        return await self.poll(request.match_info["task_id"])

    def render(self, task: Task, step: Step) -> dict[str, Any]:
        data: dict[str, Any] = {
            "taskId": task.id,
            "model": task.body["model"],
            "status": step.raw if step.kind is Kind.UNKNOWN else STATUS_WORDS[step.kind],
            "created": int(task.created),
            "completed": 0,
        }
        if step.kind is Kind.SUCCEED:
            done = data["completed"] = self.completed_unix(task)
            data["output"] = [
                {
                    "url": self.output_url(task, step, kind),
                    "type": kind,
                    "expireAt": done + OUTPUT_TTL,
                }
                for kind in self.outputs_of(step)
            ]
        elif step.kind in (Kind.FAIL, Kind.CANCELLED):
            data["completed"] = self.completed_unix(task)
            cancelled = step.kind is Kind.CANCELLED
            data["error"] = {
                "code": step.code or ("TASK_CANCELLED" if cancelled else "TASK_FAILED"),
                "message": step.message or ("task cancelled" if cancelled else "task failed"),
            }
        return {"code": 200, "message": "success", "data": data}
