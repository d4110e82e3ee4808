"""Higgsfield Soul ID (character training) routes, composed into HiggsfieldDouble.

Paths and shapes are the seed's placeholders plus PROTOCOLS.md's inferred DELETE:
``POST /soul/train``, ``GET /soul/models/{id}``, ``DELETE /soul/models/{id}``.
A training follows its own timeline: queued -> training -> ready by default.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from doubles.providers.base import CREATED, Reject, Route
from doubles.providers.timeline import Kind, Step, Track, freeze

if TYPE_CHECKING:
    from doubles.providers.base import ProviderDouble

MIN_IMAGES, MAX_IMAGES = 20, 50
TRAINING_WORDS = {
    Kind.QUEUED: "queued",
    Kind.RUNNING: "training",
    Kind.SUCCEED: "ready",
    Kind.FAIL: "failed",
    Kind.CANCELLED: "failed",
}


class Training(Track):
    __slots__ = ("deleted", "id", "images", "name")

    def __init__(
        self, model_id: str, name: str, images: list[str], steps: tuple[Step, ...], now: float
    ) -> None:
        super().__init__(steps=steps, since=now)
        self.id = model_id
        self.name = name
        self.images = images
        self.deleted = False

    def __repr__(self) -> str:
        return f"Training({self.id!r}, {self.name!r}, state={self.state!r})"


class SoulModels:
    def __init__(self, double: ProviderDouble) -> None:
        self.double = double
        self.trainings: dict[str, Training] = {}
        self.default_timeline: list[Step] = [Step.queued(), Step.running(), Step.succeed()]
        self._scripts: deque[tuple[Step, ...]] = deque()

    def script_next(self, steps: Sequence[Step]) -> None:
        """Timeline for the next training; states show as queued/training/ready/failed."""
        self._scripts.append(freeze(steps))

    def routes(self) -> Iterable[Route]:
        yield "POST", "/soul/train", self.handle_train
        yield "GET", "/soul/models/{model_id}", self.handle_get
        yield "DELETE", "/soul/models/{model_id}", self.handle_delete

    async def handle_train(self, request: web.Request) -> web.Response:
        double = self.double
        await double.submit_gate()
        body = await double.read_json(request)
        if not isinstance(body, dict):
            raise Reject(400, "Request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Reject(400, "name is required")
        images = body.get("images")
        if not isinstance(images, list):
            raise Reject(400, "images must be an array of image URLs")
        if not MIN_IMAGES <= len(images) <= MAX_IMAGES:
            raise Reject(
                422, f"images must contain {MIN_IMAGES}-{MAX_IMAGES} image URLs (got {len(images)})"
            )
        if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in images):
            raise Reject(422, "every image must be an http(s) URL")
        steps = self._scripts.popleft() if self._scripts else freeze(self.default_timeline)
        model_id = double.new_id()
        self.trainings[model_id] = Training(model_id, name, images, steps, double.now())
        request[CREATED] = model_id
        return web.json_response({"model_id": model_id, "status": "queued"})

    def _get(self, model_id: str) -> Training:
        training = self.trainings.get(model_id)
        if training is None or training.deleted:
            raise Reject(404, "Model not found")
        return training

    async def handle_get(self, request: web.Request) -> web.Response:
        await self.double.status_gate()
        training = self._get(request.match_info["model_id"])
        return self.double.answer(training, self.render)

    async def handle_delete(self, request: web.Request) -> web.Response:
        training = self._get(request.match_info["model_id"])
        training.deleted = True
        return web.json_response({"success": True, "model_id": training.id})

    @staticmethod
    def render(training: Training, step: Step) -> dict[str, Any]:
        status = step.raw if step.kind is Kind.UNKNOWN else TRAINING_WORDS[step.kind]
        error = (step.message or "Training failed") if step.kind is Kind.FAIL else None
        return {"model_id": training.id, "status": status, "error": error}
