"""``higgsfield_feed``: Higgsfield through an aggregator (yutoai; seed 000).

Wire format (providers/PROTOCOLS.md): ``POST /higgsfield/generate {model, motion_id,
prompt, enhance_prompt, seed, width, height, image: [url]}`` → ``{id}``;
``POST /higgsfield/feed/{task_id}`` with body ``{task_id}`` → Higgsfield's raw feed
object with ``jobs[]``; ``GET /higgsfield/tpl/motions?size=30&search=`` → motions.
There is no documented base URL (``HIGGSFIELD_FEED_BASE_URL`` must be set).

Image-to-video only; a motion template is required (defaults to the seed's
"Face Punch"; a motion given by name is looked up through the motions endpoint).

Inferred beyond the documents (shared/providers/README.md §1):

* job states other than ``queued``/``in_progress``/``completed`` (``failed``,
  ``nsfw``, ``canceled``, ``error``) come from the official Higgsfield platform;
* aspect ratio is mapped to width/height (16:9 → 1312x736, 9:16 → 736x1312 as in
  the seed example, 1:1 → 1024x1024);
* Unifically's copy of the API is also understood: its ``{code, data: {task_id}}``
  submit answer and ``{code, data: {status, output: {video_url}}}`` status, and its
  ``GET`` feed (used automatically when the ``POST`` feed answers 405);
* ``results.min`` (a smaller preview of the same clip) is not reported as an output,
  so the video is not delivered twice;
* no cancel endpoint is documented.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from providers import parsing as p
from providers.base import (
    Capabilities,
    ErrorKind,
    GenerationRequest,
    Motion,
    Output,
    Provider,
    ProviderError,
    SubmitCall,
    TaskState,
    TaskStatus,
)
from providers.http import ProviderHttp

log = logging.getLogger(__name__)

GENERATE_PATH = "/higgsfield/generate"
FEED_PATH = "/higgsfield/feed/{task_id}"
MOTIONS_PATH = "/higgsfield/tpl/motions"
MOTIONS_PAGE_SIZE = 30

MODELS = ("turbo", "standard", "lite")  # turbo: fast and mid-priced, so the default
DEFAULT_MOTION = Motion(id="cd5bfd11-5a1a-46e0-9294-b22b0b733b1e", name="Face Punch")
SIZES: dict[str, tuple[int, int]] = {"16:9": (1312, 736), "9:16": (736, 1312), "1:1": (1024, 1024)}
SEED_MIN, SEED_MAX = 1, 1_000_000

JOB_QUEUED = frozenset({"queued", "pending", "waiting"})
JOB_RUNNING = frozenset({"in_progress", "processing", "running"})
JOB_SUCCEEDED = frozenset({"completed", "success", "succeeded"})
JOB_MODERATED = frozenset({"nsfw"})
JOB_CANCELLED = frozenset({"canceled", "cancelled"})
JOB_FAILED = frozenset({"failed", "error", "fail"}) | JOB_MODERATED | JOB_CANCELLED

UNIFICALLY_STATES: dict[str, TaskState] = {
    "pending": "queued",
    "queued": "queued",
    "processing": "running",
    "completed": "succeeded",
    "failed": "failed",
}


class HiggsfieldFeedProvider(Provider):
    id = "higgsfield_feed"
    display_name = "Higgsfield (aggregator)"
    default_base_url = None
    capabilities: ClassVar[Capabilities] = Capabilities(
        text_to_video=False,
        image_to_video=True,
        cancel=False,
        progress=False,
        credits=False,
        characters=False,
        idempotent_submit=False,
        options=frozenset({"aspect_ratio", "seed", "motion"}),
    )

    def __init__(self, http: ProviderHttp) -> None:
        super().__init__(http)
        # yutoai polls with POST; Unifically's copy only knows GET (switched on a 405).
        self._feed_method = "POST"

    def models(self) -> list[str]:
        return list(MODELS)

    # --- motions -------------------------------------------------------------------------
    async def motions(self, search: str = "") -> list[Motion]:
        params = {"size": str(MOTIONS_PAGE_SIZE), "search": search}
        body = await self.http.request_json("GET", MOTIONS_PATH, params=params)
        items: list[Any] = body if isinstance(body, list) else []
        if isinstance(body, dict):
            for key in ("data", "items", "list", "records", "motions"):
                inner = body.get(key)
                if isinstance(inner, dict):
                    inner = inner.get("items") or inner.get("list") or inner.get("records")
                if isinstance(inner, list):
                    items = inner
                    break
            else:
                raise p.malformed("the motion list is not a list")
        motions = []
        for item in items:
            if not isinstance(item, dict):
                continue
            motion_id, name = p.id_str(item.get("id")), p.text(item.get("name"))
            if motion_id and name:
                motions.append(Motion(id=motion_id, name=name))
        return motions

    async def _motion_id(self, motion: str | None) -> str:
        wanted = (motion or "").strip()
        if not wanted:
            return DEFAULT_MOTION.id
        if p.is_uuid(wanted):
            return wanted
        found = await self.motions(search=wanted)
        for candidate in found:
            if candidate.name.casefold() == wanted.casefold():
                return candidate.id
        if found:
            return found[0].id
        raise ProviderError(
            ErrorKind.INVALID,
            f"no Higgsfield motion template is called {wanted!r}; pick one from the list",
            code="unknown_motion",
        )

    # --- generation ------------------------------------------------------------------------
    async def prepare_submit(self, request: GenerationRequest) -> SubmitCall:
        if request.image is None:
            raise ProviderError(
                ErrorKind.INVALID,
                "this Higgsfield API only animates an image: attach one",
                code="image_required",
            )
        model = request.model or MODELS[0]
        if model not in MODELS:
            raise ProviderError(
                ErrorKind.INVALID,
                f"unknown model {model!r}; choose one of {', '.join(MODELS)}",
                code="invalid_model",
            )
        if request.seed is not None and not SEED_MIN <= request.seed <= SEED_MAX:
            raise ProviderError(
                ErrorKind.INVALID,
                f"this Higgsfield API takes seeds from {SEED_MIN} to {SEED_MAX:,}",
                code="invalid_seed",
            )
        size = None
        if request.aspect_ratio is not None:
            size = SIZES.get(request.aspect_ratio)
            if size is None:
                raise ProviderError(
                    ErrorKind.INVALID,
                    f"aspect ratio {request.aspect_ratio} is not available here "
                    f"(choose {', '.join(SIZES)})",
                    code="invalid_aspect_ratio",
                )
        body: dict[str, Any] = {
            "model": model,
            "motion_id": await self._motion_id(request.motion),
            "prompt": request.prompt,
            "enhance_prompt": True,
            "image": [request.image.best_reference()],
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if size is not None:
            body["width"], body["height"] = size
        return SubmitCall.of(GENERATE_PATH, body)

    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        answer = p.expect_dict(
            await self.http.request_json("POST", call.path, data=call.body), "submit answer"
        )
        p.gateway_error(answer)
        _check_code(answer)
        task_id = p.id_str(answer.get("id")) or p.id_str(p.get_dict(answer, "data").get("task_id"))
        if task_id is None:
            raise p.malformed("no task id in the submit answer")
        return task_id

    async def status(self, task_id: str) -> TaskStatus:
        feed_path = p.path(FEED_PATH, task_id=task_id)
        try:
            if self._feed_method == "POST":
                body = await self.http.request_json(
                    "POST", feed_path, json_body={"task_id": task_id}
                )
            else:
                body = await self.http.request_json("GET", feed_path)
        except ProviderError as exc:
            if exc.http_status != 405 or self._feed_method != "POST":
                raise
            log.info("higgsfield_feed: POST feed not allowed here; polling with GET")
            self._feed_method = "GET"
            body = await self.http.request_json("GET", feed_path)
        body = p.expect_dict(body, "status answer")
        p.gateway_error(body, default=ErrorKind.TRANSIENT)
        if isinstance(body.get("jobs"), list):
            return _feed_status(body["jobs"])
        if "code" in body and isinstance(body.get("data"), dict):
            _check_code(body)
            return _unifically_status(body["data"])
        if "jobs" in body:
            raise p.malformed("jobs is not a list")
        raise p.malformed("neither jobs nor data in the status answer")


def _check_code(body: dict[str, Any]) -> None:
    """Unifically-style ``code`` envelope (HTTP-like codes, 200 = ok)."""
    code = body.get("code")
    if code is None or code == 200 or isinstance(code, bool):
        return
    status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 0
    kind = p.kind_for_http_status(status) if status else ErrorKind.INVALID
    message = body.get("message") or p.get_dict(body, "data").get("error")
    raise p.envelope_error(kind, p.safe_message(message, "the provider refused"), str(code))


def _job_output(job: dict[str, Any]) -> Output | None:
    results = p.get_dict(job, "results")
    for candidate in (results.get("raw"), job.get("result"), results.get("min")):
        if isinstance(candidate, dict):
            url = p.text(candidate.get("url"))
            if url:
                kind = p.text(candidate.get("type")) or "video"
                return Output(kind=kind, url=url, expires_at=p.url_expiry(url))
    return None


def _feed_status(jobs: list[Any]) -> TaskStatus:
    jobs = [j for j in jobs if isinstance(j, dict)]
    if not jobs:
        return TaskStatus(state="queued", raw_state=None)
    words = [(p.text(j.get("status")), j) for j in jobs]
    for raw, job in words:
        state = raw.lower() if raw else ""
        if state in JOB_MODERATED:
            return p.moderated("nsfw", raw)
        if state in JOB_FAILED:
            cancelled = state in JOB_CANCELLED
            return p.failed(
                "cancelled" if cancelled else "failed",
                job.get("error"),
                raw,
                default="the generation was cancelled" if cancelled else "generation failed",
            )
    if all((raw or "").lower() in JOB_SUCCEEDED for raw, _ in words):
        outputs = tuple(o for o in (_job_output(j) for j in jobs) if o is not None)
        raw = words[0][0]
        if not outputs:
            return p.no_output(raw)
        return TaskStatus(state="succeeded", progress=100, outputs=outputs, raw_state=raw)
    for raw, _ in words:
        state = (raw or "").lower()
        if state and state not in JOB_QUEUED and state not in JOB_SUCCEEDED:
            if state not in JOB_RUNNING:
                log.info("higgsfield_feed: unknown job status %r treated as running", raw)
            return TaskStatus(state="running", raw_state=raw)
    if any((raw or "").lower() in JOB_SUCCEEDED for raw, _ in words):
        # Some jobs done, the others still waiting: the task as a whole is running.
        return TaskStatus(state="running", raw_state=words[0][0])
    return TaskStatus(state="queued", raw_state=words[0][0])


def _unifically_status(data: dict[str, Any]) -> TaskStatus:
    raw = p.text(data.get("status"))
    state: TaskState = UNIFICALLY_STATES.get(raw.lower() if raw else "", "running")
    if state == "failed":
        return p.failed("failed", data.get("error"), raw)
    if state == "succeeded":
        url = p.text(p.get_dict(data, "output").get("video_url"))
        if not url:
            return p.no_output(raw)
        output = Output(kind="video", url=url, expires_at=p.url_expiry(url))
        return TaskStatus(state="succeeded", progress=100, outputs=(output,), raw_state=raw)
    return TaskStatus(state=state, raw_state=raw)


PROVIDER = HiggsfieldFeedProvider
