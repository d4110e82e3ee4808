"""Higgsfield-via-aggregator (yutoai) double: image-to-video only, status is a POST.

Routes (no base path; ``HIGGSFIELD_FEED_BASE_URL`` is the server root):
``POST /higgsfield/generate`` -> ``{id}``; ``POST /higgsfield/feed/{task_id}`` with body
``{task_id}`` -> the raw feed object with ``jobs[]`` (seed 000);
``GET /higgsfield/tpl/motions?size=&search=`` -> motion templates.
Errors use the OpenAI-style gateway body ``{"error": {message, type, code}}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from aiohttp import web

from doubles.providers.base import ProviderDouble, Reject, Route, Task, is_int
from doubles.providers.errors import openai_error
from doubles.providers.timeline import Kind, Step

MODELS = ("standard", "lite", "turbo")
JOB_WORDS = {
    Kind.QUEUED: "queued",
    Kind.RUNNING: "in_progress",
    Kind.SUCCEED: "completed",
    Kind.FAIL: "failed",
    Kind.CANCELLED: "canceled",
}
PROJECT_ID = "41ff94b3-91b5-424a-a455-0ecef47c9b77"
DEFAULT_SIZE = (736, 1312)  # the seed example (9:16)

# The seed's motion plus a few plausible neighbours, enough to exercise search.
MOTIONS: list[dict[str, Any]] = [
    {
        "id": "cd5bfd11-5a1a-46e0-9294-b22b0b733b1e",
        "name": "Face Punch",
        "tags": ["action", "fight"],
        "priority": 100,
        "categories": ["action"],
    },
    {
        "id": "0f3a5c2e-7b1d-4e8a-9c6f-2d4b8e1a3c57",
        "name": "Crash Zoom In",
        "tags": ["camera", "zoom"],
        "priority": 90,
        "categories": ["camera"],
    },
    {
        "id": "5e9d2b7c-1a4f-4c3e-8b6d-7f0a2c9e4d13",
        "name": "Dolly Out",
        "tags": ["camera", "dolly"],
        "priority": 80,
        "categories": ["camera"],
    },
    {
        "id": "a7c4e1f9-3d2b-4f6a-b8e5-9c1d0f2a6b84",
        "name": "360 Orbit",
        "tags": ["camera", "orbit"],
        "priority": 70,
        "categories": ["camera"],
    },
]


class HiggsfieldFeedDouble(ProviderDouble):
    protocol = "higgsfield_feed"
    error_messages: ClassVar[dict[int, str]] = {
        404: "task not found",
        429: "Too many requests, please retry later",
    }

    def __init__(self, api_key: str = "test-key", **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        # Editable by tests: the generate route only accepts ids listed here.
        self.motions: list[dict[str, Any]] = [dict(m) for m in MOTIONS]

    def routes(self) -> Iterable[Route]:
        yield "POST", "/higgsfield/generate", self.handle_generate
        yield "POST", "/higgsfield/feed/{task_id}", self.handle_feed
        yield "GET", "/higgsfield/tpl/motions", self.handle_motions

    def error_body(
        self, status: int, message: str, code: str | None, retry_after: float | None = None
    ) -> Any:
        return openai_error(
            status,
            message,
            code,
            not_found_code="task_not_found",
            not_found_type="invalid_request_error",
        )

    def _motion(self, motion_id: str) -> dict[str, Any] | None:
        return next((m for m in self.motions if m["id"] == motion_id), None)

    async def handle_generate(self, request: web.Request) -> web.Response:
        await self.submit_gate()
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise Reject(400, "request body must be a JSON object")
        if body.get("model") not in MODELS:
            raise Reject(422, f"model must be one of {', '.join(MODELS)}", "invalid_model")
        motion_id = body.get("motion_id")
        if not isinstance(motion_id, str) or not motion_id:
            raise Reject(422, "motion_id is required", "invalid_motion_id")
        if self._motion(motion_id) is None:
            raise Reject(422, f"unknown motion_id {motion_id}", "invalid_motion_id")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Reject(422, "prompt is required", "invalid_prompt")
        image = body.get("image")
        # Image-to-video only: 1-2 entries, each a URL or base64 string.
        if (
            not isinstance(image, list)
            or not 1 <= len(image) <= 2
            or not all(isinstance(i, str) and i for i in image)
        ):
            raise Reject(
                422,
                "image is required: an array of 1-2 image URLs or base64 strings",
                "invalid_image",
            )
        seed = body.get("seed")
        if seed is not None and not (is_int(seed) and 1 <= seed <= 1_000_000):
            raise Reject(422, "seed must be an integer in 1..1000000", "invalid_seed")
        for name in ("width", "height"):
            if body.get(name) is not None and not is_int(body[name]):
                raise Reject(422, f"{name} must be an integer", "invalid_size")
        task = self.create_task(request, self.new_id(), body, prompt)
        task.extra["job_id"] = self.new_id()
        return web.json_response({"id": task.id})

    async def handle_feed(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        body = await self.read_json(request)
        if not isinstance(body, dict) or body.get("task_id") != task_id:
            raise Reject(400, "body task_id must match the task_id in the path", "invalid_task_id")
        return await self.poll(task_id)

    async def handle_motions(self, request: web.Request) -> web.Response:
        try:
            size = int(request.query.get("size", "30"))
        except ValueError as exc:
            raise Reject(400, "size must be an integer", "invalid_size") from exc
        search = request.query.get("search", "").strip().casefold()
        preview = self.media_url("first_frame.jpg")
        found = [
            {
                "id": m["id"],
                "name": m["name"],
                "media": {"width": 736, "height": 1312, "url": preview, "type": "image"},
                "priority": m.get("priority", 0),
                "tags": m.get("tags", []),
                "params": {},
                "categories": m.get("categories", []),
            }
            for m in self.motions
            if not search
            or search in m["name"].casefold()
            or any(search in t.casefold() for t in m.get("tags", []))
        ]
        return web.json_response(found[: max(size, 0)])

    def render(self, task: Task, step: Step) -> dict[str, Any]:
        body = task.body
        motion = self._motion(body["motion_id"]) or {"id": body["motion_id"], "name": ""}
        job: dict[str, Any] = {
            "id": task.extra["job_id"],
            "status": step.raw if step.kind is Kind.UNKNOWN else JOB_WORDS[step.kind],
            "result": None,
            "results": None,
            "meta": {},
        }
        if step.kind is Kind.SUCCEED:
            url = self.output_url(task, step)
            job["result"] = {"type": "video", "url": url}
            # "min" is the provider's small preview; we have one sample, so it is reused.
            preview = (
                self.media_url(f"gone-{task.id}-sample.mp4")
                if step.media_missing
                else self.media_url("sample.mp4")
            )
            job["results"] = {
                "raw": {"type": "video", "url": url},
                "min": {"type": "video", "url": preview},
            }
            job["meta"] = {"duration": 5}
        elif step.kind is Kind.FAIL:
            job["error"] = step.message or "Generation failed"
        width, height = body.get("width") or DEFAULT_SIZE[0], body.get("height") or DEFAULT_SIZE[1]
        return {
            "id": task.id,
            "type": "image2video",
            "project_id": PROJECT_ID,
            "created_at": task.created,
            "params": {
                "prompt": body["prompt"],
                "input_image": {
                    "id": task.extra["job_id"],
                    "url": body["image"][0],
                    "type": "media_input",
                },
                "seed": body.get("seed") or 1 + task.index % 1_000_000,
                "frames": 81,
                "width": width,
                "height": height,
                "model": body["model"],
                "motion_id": motion["id"],
                "motion": {
                    "id": motion["id"],
                    "url": self.media_url("first_frame.jpg"),
                    "name": motion["name"],
                },
                "enhance_prompt": body.get("enhance_prompt", True),
            },
            "jobs": [job],
        }
