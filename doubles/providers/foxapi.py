"""foxapi.cc double: ``POST /v1/videos/generations`` -> task object; ``GET /v1/tasks/{id}``.

Task objects follow seed 003 and tests/fixtures/providers/foxapi/ (status
pending/processing/completed/failed/cancelled, ``progress`` 0-100,
``usage.credits_reserved``). ``sora-2-character`` tasks succeed with
``results: [{character_id, name}]`` instead of media.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any, ClassVar

from aiohttp import web

from doubles.providers.base import ProviderDouble, Reject, Route, Task, is_int
from doubles.providers.errors import openai_error
from doubles.providers.timeline import Kind, Step

CHARACTER_MODEL = "sora-2-character"
# Video models named in the docs (README §4). Tests may edit ``d.models``; None = any.
MODELS = frozenset(
    {
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
        "seedance-2.0-reference-to-video",
        "kling-o3-image-to-video",
        "sora-2",
        CHARACTER_MODEL,
    }
)
STATUS_WORDS = {
    Kind.QUEUED: "pending",
    Kind.RUNNING: "processing",
    Kind.SUCCEED: "completed",
    Kind.FAIL: "failed",
    Kind.CANCELLED: "cancelled",
}
CREDITS_RESERVED = 5
ESTIMATED_TIME = 45
DEFAULT_RUNNING_PROGRESS = 50
DEFAULT_FAILURE = "Video generation failed due to content policy violation"
ID_CHARS = string.ascii_lowercase + string.digits


class FoxapiDouble(ProviderDouble):
    protocol = "foxapi"
    error_messages: ClassVar[dict[int, str]] = {
        401: "Invalid API key",
        402: "Insufficient quota",
        404: "Task not found or expired",
        429: "Rate limit exceeded",
        503: "No available channel for this model",
    }

    def __init__(self, api_key: str = "test-key", **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.models: set[str] | None = set(MODELS)

    def routes(self) -> Iterable[Route]:
        yield "POST", "/v1/videos/generations", self.handle_create
        yield "GET", "/v1/tasks/{task_id}", self.handle_get

    def error_body(
        self, status: int, message: str, code: str | None, retry_after: float | None = None
    ) -> Any:
        body = openai_error(status, message, code, int_codes=True)
        if status == 429:
            # Same hint as the Retry-After header, in foxapi's documented words.
            wait = 60.0 if retry_after is None else retry_after
            body["error"]["fallback_suggestion"] = f"retry after {wait:g} seconds"
        elif status == 404:
            body["error"]["param"] = "task_id"
        return body

    async def handle_create(self, request: web.Request) -> web.Response:
        await self.submit_gate()
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise Reject(400, "Request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Reject(422, "model is required", "invalid_parameter")
        if self.models is not None and model not in self.models:
            raise Reject(422, f"Model {model} is not supported", "model_not_found")
        prompt = body.get("prompt")
        if model != CHARACTER_MODEL and (not isinstance(prompt, str) or not prompt.strip()):
            raise Reject(422, "prompt is required", "invalid_parameter")
        if "image_urls" in body and not (
            isinstance(body["image_urls"], list)
            and all(isinstance(u, str) for u in body["image_urls"])
        ):
            raise Reject(422, "image_urls must be an array of URLs", "invalid_parameter")
        for name in ("duration", "seed"):
            if body.get(name) is not None and not is_int(body[name]):
                raise Reject(422, f"{name} must be an integer", "invalid_parameter")
        created = self.now_unix()
        task_id = f"task-unified-{created}-{self.rand_chars(8, ID_CHARS)}"
        task = self.create_task(request, task_id, body, prompt if isinstance(prompt, str) else "")
        return web.json_response(
            {
                "created": created,
                "id": task.id,
                "model": model,
                "object": "video.generation.task",
                "progress": 0,
                "status": "pending",
                "task_info": {"can_cancel": True, "estimated_time": ESTIMATED_TIME},
                "type": "video",
                "usage": {
                    "billing_rule": "per_call",
                    "credits_reserved": CREDITS_RESERVED,
                    "user_group": "default",
                },
            }
        )

    async def handle_get(self, request: web.Request) -> web.Response:
        # ``sync_upstream`` is accepted and ignored: the timeline is the upstream.
        return await self.poll(request.match_info["task_id"])

    def callback_url_of(self, body: Any) -> str | None:
        # Real foxapi refuses non-HTTPS and private addresses; the double calls back
        # 127.0.0.1 only (doubles/providers/callbacks.py), plain, unsigned.
        url = body.get("callback_url") if isinstance(body, dict) else None
        return url if isinstance(url, str) else None

    def render(self, task: Task, step: Step) -> dict[str, Any]:
        kind = step.kind
        model = task.body["model"]
        progress = {Kind.SUCCEED: 100, Kind.RUNNING: step.progress}.get(kind, 0)
        if kind is Kind.RUNNING and progress is None:
            progress = DEFAULT_RUNNING_PROGRESS
        out: dict[str, Any] = {
            "id": task.id,
            "object": "video.generation.task",
            "type": "video",
            "model": model,
            "created": int(task.created),
            "status": step.raw if kind is Kind.UNKNOWN else STATUS_WORDS[kind],
            "progress": progress,
            "results": None,
            "error": None,
            "task_info": {"can_cancel": kind in (Kind.QUEUED, Kind.RUNNING, Kind.UNKNOWN)},
            "usage": {"credits_reserved": CREDITS_RESERVED, "user_group": "default"},
        }
        if kind is Kind.SUCCEED:
            self._add_results(out, task, step, model)
        elif kind is Kind.FAIL:
            out["error"] = {
                "code": step.code or "generation_failed",
                "message": step.message or DEFAULT_FAILURE,
                "type": "task_error",
            }
        elif kind is Kind.CANCELLED:
            out["error"] = {
                "code": "cancelled",
                "message": "Task was cancelled",
                "type": "task_error",
            }
        return out

    def _add_results(self, out: dict[str, Any], task: Task, step: Step, model: str) -> None:
        if model == CHARACTER_MODEL:
            name = task.body.get("name") or task.body.get("character_name") or "character"
            suffix = task.id.rsplit("-", 1)[-1]
            out["results"] = [{"character_id": f"char_{suffix}", "name": name}]
            return
        urls = [(kind, self.output_url(task, step, kind)) for kind in self.outputs_of(step)]
        if step.form == "string_results":  # older Evolink-style pages
            out["results"] = [url for _, url in urls]
        elif step.form == "output_object":  # alternative get-task-detail example
            del out["results"]
            out["output"] = {
                "url": urls[0][1],
                "urls": [u for _, u in urls],
                "duration": 5,
                "width": 1280,
                "height": 720,
            }
        else:
            results: list[dict[str, Any]] = []
            for kind, url in urls:
                item: dict[str, Any] = {"url": url}
                if kind != "video":
                    item["content_type"] = "image/png" if kind == "image" else "image/jpeg"
                elif model.startswith("seedance-2.0"):
                    item["seed"] = task.body.get("seed") or 1 + task.index
                results.append(item)
            out["results"] = results
