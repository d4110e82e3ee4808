"""higgsfieldapi.com double: ``POST /generate``, ``GET /status/{id}`` and Soul ID training.

Shapes follow seed 002 and tests/fixtures/providers/higgsfield/; errors are
``{"success": false, "error": "..."}`` (inferred in the README, kept consistent here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from aiohttp import web

from doubles.providers.base import ProviderDouble, Reject, Route, Task, is_int
from doubles.providers.soul import SoulModels
from doubles.providers.timeline import Kind, Step

TYPES = ("text-to-video", "image-to-video")
STATUS_WORDS = {
    Kind.QUEUED: "queued",
    Kind.RUNNING: "processing",
    Kind.SUCCEED: "completed",
    Kind.FAIL: "failed",
    Kind.CANCELLED: "canceled",
}


class HiggsfieldDouble(ProviderDouble):
    protocol = "higgsfield"
    base_path = "/api/v1"
    error_messages: ClassVar[dict[int, str]] = {
        401: "Invalid API key",
        404: "Generation not found",
        429: "Rate limit exceeded",
    }

    def __init__(self, api_key: str = "test-key", **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.soul = SoulModels(self)
        self.trainings = self.soul.trainings
        self.script_next_training = self.soul.script_next

    @property
    def default_training_timeline(self) -> list[Step]:
        return self.soul.default_timeline

    @default_training_timeline.setter
    def default_training_timeline(self, steps: list[Step]) -> None:
        self.soul.default_timeline = steps

    def created_ids(self) -> list[str]:
        return [*self.tasks, *self.trainings]

    def routes(self) -> Iterable[Route]:
        yield "POST", "/generate", self.handle_generate
        yield "GET", "/status/{generation_id}", self.handle_status
        yield from self.soul.routes()

    def error_body(
        self, status: int, message: str, code: str | None, retry_after: float | None = None
    ) -> Any:
        return {"success": False, "error": message}

    async def handle_generate(self, request: web.Request) -> web.Response:
        await self.submit_gate()
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise Reject(400, "Request body must be a JSON object")
        kind = body.get("type")
        if kind not in TYPES:
            raise Reject(422, f"type must be one of {', '.join(TYPES)}")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Reject(422, "prompt is required")
        if kind == "image-to-video" and not isinstance(body.get("image_url"), str):
            raise Reject(422, "image_url is required for image-to-video")
        for name in ("duration", "seed"):
            if name in body and body[name] is not None and not is_int(body[name]):
                raise Reject(422, f"{name} must be an integer")
        model_id = body.get("model_id")
        if model_id is not None and not isinstance(model_id, str):
            raise Reject(422, "model_id must be a string")
        task = self.create_task(request, self.new_id(), body, prompt)
        return web.json_response({"success": True, "generation_id": task.id, "type": kind})

    async def handle_status(self, request: web.Request) -> web.Response:
        return await self.poll(request.match_info["generation_id"])

    def render(self, task: Task, step: Step) -> dict[str, Any]:
        kind = task.body.get("type", "text-to-video")
        if step.kind is Kind.UNKNOWN:
            return {"status": step.raw, "type": kind}
        out: dict[str, Any] = {"status": STATUS_WORDS[step.kind]}
        if step.kind is Kind.SUCCEED:
            out["video_url"] = self.output_url(task, step)
        out["type"] = kind
        if step.kind is Kind.FAIL:
            out["error"] = step.message or "Generation failed"
        return out
