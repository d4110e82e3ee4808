"""api.gpt.ge double: one gateway, three upstream families with their own shapes.

Submit: MiniMax ``POST /task/minimax/v1/video_generation`` -> ``{task_id, base_resp}``;
Jimeng ``POST /task/jimeng/text2video|image2video`` -> ``{code: 10000, data: {task_id}}``;
Kling ``POST /kling/v1/videos/text2video|image2video`` -> ``{code: 0, data: {task_id,
task_status: "submitted"}}``. Status: ``GET /task/{task_id}`` answers in the upstream
family's raw shape (Kling also at ``GET /kling/v1/videos/{action}/{task_id}``).
MiniMax success carries only ``file_id``: ``GET /task/minimax/v1/files/retrieve``.
``Step.succeed(form=...)`` picks another documented success shape
(video_url | file_id | base64 | kling | doubao) so parsers can be tested on all of them.
Gateway-level errors (auth, 404, 429, 5xx) are ``{"error": {message, type, code}}``.
"""

from __future__ import annotations

import base64
import json
import string
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from aiohttp import web

from doubles.providers import media
from doubles.providers.base import ProviderDouble, Reject, Route, Task, is_int
from doubles.providers.errors import openai_error
from doubles.providers.timeline import Kind, Step

MINIMAX_MODELS = frozenset(
    {
        "MiniMax-Hailuo-2.3",
        "MiniMax-Hailuo-2.3-Fast",
        "MiniMax-Hailuo-02",
        "T2V-01-Director",
        "T2V-01",
        "I2V-01-Director",
        "I2V-01-live",
        "I2V-01",
    }
)
MINIMAX_NEEDS_IMAGE = frozenset(
    {"MiniMax-Hailuo-2.3-Fast", "I2V-01-Director", "I2V-01-live", "I2V-01"}
)
MINIMAX_RESOLUTIONS = {
    "512P": (912, 512),
    "720P": (1280, 720),
    "768P": (1366, 768),
    "1080P": (1920, 1080),
}
JIMENG_RATIOS = frozenset({"16:9", "4:3", "1:1", "3:4", "9:16", "21:9"})
KLING_RATIOS = frozenset({"16:9", "9:16", "1:1"})
KLING_ACTIONS = ("text2video", "image2video")
DEFAULT_FORM = {"minimax": "file_id", "jimeng": "video_url", "kling": "kling"}

MINIMAX_WORDS = {
    Kind.QUEUED: "Queueing",
    Kind.RUNNING: "Processing",
    Kind.FAIL: "Fail",
    Kind.CANCELLED: "Fail",
}
JIMENG_WORDS = {
    Kind.QUEUED: "in_queue",
    Kind.RUNNING: "Processing",
    Kind.FAIL: "Failed",
    Kind.CANCELLED: "Failed",
}
KLING_WORDS = {
    Kind.QUEUED: "submitted",
    Kind.RUNNING: "processing",
    Kind.SUCCEED: "succeed",
    Kind.FAIL: "failed",
    Kind.CANCELLED: "failed",
}
KLING_ID_CHARS = string.ascii_letters + string.digits


def ok_resp() -> dict[str, Any]:
    return {"status_code": 0, "status_msg": "success"}


def numeric_code(code: str | None, default: int) -> int:
    return int(code) if code is not None and code.lstrip("-").isdigit() else default


class GptgeDouble(ProviderDouble):
    protocol = "gptge"
    error_messages: ClassVar[dict[int, str]] = {
        401: "Invalid token",
        404: "task_not_exist",
        429: "Too many requests, please try again later",
    }

    def __init__(self, api_key: str = "test-key", **kwargs: Any) -> None:
        super().__init__(api_key, **kwargs)
        self.files: dict[str, str] = {}  # MiniMax file_id -> download URL
        self._forms: dict[str, Callable[[Task, Step], dict[str, Any]]] = {
            "file_id": self._success_file_id,
            "video_url": self._success_envelope,
            "base64": self._success_envelope,
            "kling": self._kling,
            "doubao": self._success_doubao,
        }

    def routes(self) -> Iterable[Route]:
        yield "POST", "/task/minimax/v1/video_generation", self.handle_minimax
        yield "GET", "/task/minimax/v1/files/retrieve", self.handle_retrieve
        yield "POST", "/task/jimeng/{action}", self.handle_jimeng
        yield "POST", "/kling/v1/videos/{action}", self.handle_kling
        yield "GET", "/kling/v1/videos/{action}/{task_id}", self.handle_kling_get
        yield "GET", "/task/{task_id}", self.handle_get

    def error_body(
        self, status: int, message: str, code: str | None, retry_after: float | None = None
    ) -> Any:
        return openai_error(
            status,
            message,
            code,
            not_found_code="task_not_exist",
            not_found_type="invalid_request_error",
        )

    def _request_id(self) -> str:
        return time.strftime("%Y%m%d%H%M%S") + self.rand_chars(20, "0123456789ABCDEF")

    # --- submit -----------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        await self.submit_gate()
        body = await self.read_json(request)
        if not isinstance(body, dict):
            raise Reject(400, "request body must be a JSON object")
        return body

    async def handle_minimax(self, request: web.Request) -> web.Response:
        body = await self._body(request)

        def invalid(msg: str) -> Reject:
            # MiniMax reports bad input inside an HTTP 200 (base_resp), not as a 4xx.
            return Reject(
                200,
                body={
                    "task_id": "",
                    "base_resp": {"status_code": 2013, "status_msg": f"invalid params, {msg}"},
                },
                detail=msg,
            )

        model, prompt, image = body.get("model"), body.get("prompt"), body.get("first_frame_image")
        if model not in MINIMAX_MODELS:
            raise invalid(f"unknown model {model!r}")
        if image is not None and not (isinstance(image, str) and image):
            raise invalid("first_frame_image must be a URL or data URL")
        if model in MINIMAX_NEEDS_IMAGE and image is None:
            raise invalid(f"{model} requires first_frame_image")
        if prompt is None and image is None:
            raise invalid("prompt is required")
        if prompt is not None and not (isinstance(prompt, str) and len(prompt) <= 2000):
            raise invalid("prompt must be a string of at most 2000 characters")
        duration, resolution = body.get("duration"), body.get("resolution")
        if duration not in (6, 10) or not is_int(duration):
            raise invalid("duration must be 6 or 10")
        if resolution is not None and resolution not in MINIMAX_RESOLUTIONS:
            raise invalid("resolution must be one of 512P, 720P, 768P, 1080P")
        if resolution == "1080P" and duration != 6:
            raise invalid("1080P supports only 6 second videos")
        task = self.create_task(request, self.rand_digits(15), body, prompt or "", family="minimax")
        return web.json_response({"task_id": task.id, "base_resp": ok_resp()})

    async def handle_jimeng(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in KLING_ACTIONS:
            raise Reject(404, "Invalid URL", "invalid_url")
        body = await self._body(request)

        def invalid(msg: str) -> Reject:
            return Reject(
                400,
                body={
                    "code": 50400,
                    "data": None,
                    "message": f"Invalid Parameter: {msg}",
                    "request_id": self._request_id(),
                    "status": 50400,
                    "time_elapsed": "3.1ms",
                },
                detail=msg,
            )

        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid("prompt is required")
        if len(prompt) > 150:
            raise invalid("prompt must be at most 150 characters")
        if "aspect_ratio" in body and body["aspect_ratio"] not in JIMENG_RATIOS:
            raise invalid("aspect_ratio not supported")
        if body.get("seed") is not None and not is_int(body["seed"]):
            raise invalid("seed must be an integer")
        if action == "image2video":
            urls, data = body.get("image_urls"), body.get("binary_data_base64")
            if not any(
                isinstance(v, list) and v and all(isinstance(x, str) for x in v)
                for v in (urls, data)
            ):
                raise invalid("image2video needs image_urls[] or binary_data_base64[]")
        task = self.create_task(request, self.rand_digits(20), body, prompt, family="jimeng")
        return web.json_response(
            {
                "code": 10000,
                "data": {"task_id": task.id},
                "message": "Success",
                "request_id": self._request_id(),
                "status": 10000,
                "time_elapsed": "55.7ms",
            }
        )

    async def handle_kling(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in KLING_ACTIONS:
            raise Reject(404, "Invalid URL", "invalid_url")
        body = await self._body(request)

        def invalid(msg: str) -> Reject:
            return Reject(
                400,
                body={"code": 1201, "message": msg, "request_id": self._request_id(), "data": None},
                detail=msg,
            )

        prompt = body.get("prompt", "")
        if not isinstance(prompt, str) or len(prompt) > 2500:
            raise invalid("prompt must be a string of at most 2500 characters")
        if action == "text2video" and not prompt.strip():
            raise invalid("prompt is required")
        if action == "image2video" and not (isinstance(body.get("image"), str) and body["image"]):
            raise invalid("image is required")
        name = body.get("model_name", "kling-v1")
        if not isinstance(name, str) or not name.startswith("kling-v"):
            raise invalid(f"model_name {name!r} is not supported")
        negative = body.get("negative_prompt")
        if negative is not None and not (isinstance(negative, str) and len(negative) <= 2500):
            raise invalid("negative_prompt must be a string of at most 2500 characters")
        if "aspect_ratio" in body and body["aspect_ratio"] not in KLING_RATIOS:
            raise invalid("aspect_ratio must be 16:9, 9:16 or 1:1")
        # Kling's duration is a *string*; an integer is rejected like upstream does.
        if "duration" in body and body["duration"] not in ("5", "10"):
            raise invalid('duration must be the string "5" or "10"')
        if body.get("mode", "std") not in ("std", "pro"):
            raise invalid("mode must be std or pro")
        task = self.create_task(
            request, self.rand_chars(22, KLING_ID_CHARS), body, prompt, family="kling"
        )
        task.extra["action"] = action
        millis = int(task.created * 1000)
        return web.json_response(
            {
                "code": 0,
                "message": "SUCCEED",
                "request_id": self._request_id(),
                "data": {
                    "task_id": task.id,
                    "task_status": "submitted",
                    "created_at": millis,
                    "updated_at": millis,
                },
            }
        )

    # --- status -----------------------------------------------------------------------
    async def handle_get(self, request: web.Request) -> web.Response:
        return await self.poll(request.match_info["task_id"])

    async def handle_kling_get(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        if task is None or task.extra.get("action") != request.match_info["action"]:
            raise Reject(404, detail="no such Kling task for this action")
        return await self.poll(task.id)

    async def handle_retrieve(self, request: web.Request) -> web.Response:
        file_id = request.query.get("file_id", "")
        url = self.files.get(file_id)
        if url is None:
            raise Reject(404, "file not found", "file_not_exist")
        return web.json_response(
            {
                "file": {
                    "file_id": int(file_id),
                    "bytes": 0,
                    "created_at": self.now_unix(),
                    "filename": "output.mp4",
                    "purpose": "video_generation",
                    "download_url": url,
                },
                "base_resp": ok_resp(),
            }
        )

    def callback_url_of(self, body: Any) -> str | None:
        url = body.get("callback_url") if isinstance(body, dict) else None
        return url if isinstance(url, str) else None

    def callback_handshake(self, task: Task) -> bool:
        return task.family == "minimax"  # Hailuo checks the URL with a challenge first

    def render(self, task: Task, step: Step) -> dict[str, Any]:
        if step.kind is Kind.SUCCEED:
            # foxapi-only forms (string_results, output_object) fall back to the default.
            form = step.form if step.form in self._forms else DEFAULT_FORM[task.family]
            return self._forms[form](task, step)
        if task.family == "minimax":
            return self._minimax(task, step)
        if task.family == "jimeng":
            return self._jimeng(task, step)
        return self._kling(task, step)

    def _word(self, words: dict[Kind, str], step: Step) -> str:
        return step.raw if step.kind is Kind.UNKNOWN and step.raw else words[step.kind]

    def _minimax(self, task: Task, step: Step) -> dict[str, Any]:
        resp = ok_resp()
        if step.kind in (Kind.FAIL, Kind.CANCELLED):
            resp = {
                "status_code": numeric_code(step.code, 1026),
                "status_msg": step.message or "input new_sensitive",
            }
        return {
            "task_id": task.id,
            "status": self._word(MINIMAX_WORDS, step),
            "file_id": "",
            "base_resp": resp,
        }

    def _jimeng(self, task: Task, step: Step) -> dict[str, Any]:
        code, message = 10000, "Success"
        if step.kind in (Kind.FAIL, Kind.CANCELLED):
            code = numeric_code(step.code, 50500)
            message = step.message or "Internal Error: generated video failed moderation"
        return self._envelope(self._word(JIMENG_WORDS, step), code, message)

    def _envelope(self, status: str, code: int, message: str, **data: Any) -> dict[str, Any]:
        return {
            "code": code,
            "data": {
                "status": status,
                "resp_data": data.pop("resp_data", ""),
                "video_url": data.pop("video_url", ""),
                "image_urls": None,
                "binary_data_base64": data.pop("binary_data_base64", []),
            },
            "message": message,
            "request_id": self._request_id(),
            "status": 200 if code == 0 else code,
            "time_elapsed": "41.2ms",
        }

    def _kling(self, task: Task, step: Step) -> dict[str, Any]:
        data: dict[str, Any] = {
            "task_id": task.id,
            "task_status": self._word(KLING_WORDS, step),
            "task_status_msg": "",
            "created_at": int(task.created * 1000),
            "updated_at": int(time.time() * 1000),
        }
        if step.kind is Kind.SUCCEED:
            data["task_result"] = {
                "videos": [
                    {"id": f"{task.id}-v0", "url": self.output_url(task, step), "duration": "5.1"}
                ]
            }
        elif step.kind in (Kind.FAIL, Kind.CANCELLED):
            data["task_status_msg"] = step.message or "Video generation failed"
        return {"code": 0, "message": "SUCCEED", "request_id": self._request_id(), "data": data}

    def _success_file_id(self, task: Task, step: Step) -> dict[str, Any]:
        file_id = task.extra.get("file_id")
        if not isinstance(file_id, str):
            file_id = task.extra["file_id"] = self.rand_digits(15)
        self.files[file_id] = self.output_url(task, step)
        width, height = MINIMAX_RESOLUTIONS.get(task.body.get("resolution") or "768P", (1366, 768))
        return {
            "status": "Success",
            "file_id": file_id,
            "task_id": task.id,
            "base_resp": ok_resp(),
            "video_width": width,
            "video_height": height,
        }

    def _success_envelope(self, task: Task, step: Step) -> dict[str, Any]:
        # Jimeng tasks answer in raw Volcengine words (code 10000, "done"); the
        # gateway's generic envelope says code 0 / "Success".
        jimeng = task.family == "jimeng"
        code, word, message = (10000, "done", "Success") if jimeng else (0, "Success", "success")
        if step.form == "base64":
            video = media.media_files()["sample.mp4"][0]
            if step.large_bytes is not None and step.large_bytes > len(video):
                # A bigger MP4 (trailing padding is ignored by players and sniffers).
                video += b"\0" * (step.large_bytes - len(video))
            data = base64.b64encode(video).decode()
            return self._envelope(word, code, message, binary_data_base64=[data])
        url = self.output_url(task, step)
        return self._envelope(
            word, code, message, video_url=url, resp_data=json.dumps({"video_url": url})
        )

    def _success_doubao(self, task: Task, step: Step) -> dict[str, Any]:
        model = task.body.get("model")
        return {
            "id": task.id,
            "model": model if isinstance(model, str) else "doubao-seedance-1-0-pro-250528",
            "usage": {"total_tokens": 246840, "completion_tokens": 246840},
            "status": "succeeded",
            "content": {"video_url": self.output_url(task, step)},
            "created_at": int(task.created),
            "updated_at": self.completed_unix(task),
        }
