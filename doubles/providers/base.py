"""Server machinery shared by every provider double.

A subclass declares its routes and how it spells states and errors; this class owns
the aiohttp server, auth, fault injection, scripting, per-task timelines and the
inspection lists tests assert on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from aiohttp import web
from multidict import CIMultiDict

from doubles.providers import media
from doubles.providers.callbacks import Callbacks
from doubles.providers.timeline import (
    MEDIA_FOR_KIND,
    QUEUED,
    Kind,
    Step,
    Track,
    advance,
    freeze,
    timed_timeline,
)
from doubles.providers.wire import Wire

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]  # (method, path relative to base_path, handler)

# Messages used when a fault or rejection does not bring its own; protocols override.
DEFAULT_MESSAGES: dict[int, str] = {
    400: "Bad request",
    401: "Invalid API key",
    402: "Insufficient balance",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid request",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}

# What a reverse proxy in front of a provider sends when the app behind it is down.
HTML_ERROR = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class Reject(Exception):
    """Raised by handlers to answer with an error in the provider's own shape.

    ``body`` overrides the shape entirely (e.g. MiniMax errors inside an HTTP 200);
    ``detail`` is kept in ``ProviderDouble.rejections`` for test debugging even when
    the provider's message is generic (hiapi always says "invalid request").
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        code: str | None = None,
        *,
        body: Any = None,
        detail: str | None = None,
        retry_after: float | None = None,
        html: bool = False,
    ) -> None:
        super().__init__(message or detail or str(status))
        self.status = status
        self.message = message
        self.code = code
        self.body = body
        self.detail = detail
        self.retry_after = retry_after
        self.html = html


# What a submit that created its task answers instead of the task id (``after_create``):
# the provider has the task (and bills it), the client cannot know.
AFTERMATHS = frozenset({"bad_gateway", "close", "truncated"})
# Set on a request whose handler created a task: the id it made.
CREATED = web.RequestKey("double_created", str)


@dataclass(slots=True)
class SubmitFault:
    status: int
    body: Any = None
    retry_after: float = 1.0
    html: bool = False


class Task(Track):
    """A generation task: its timeline cursor plus what was submitted."""

    __slots__ = ("body", "created", "family", "id", "index", "prompt")

    def __init__(
        self,
        task_id: str,
        index: int,
        body: Any,
        prompt: str,
        steps: tuple[Step, ...],
        now: float,
        family: str = "",
    ) -> None:
        super().__init__(steps=steps, since=now)
        self.id = task_id
        self.index = index
        self.body = body
        self.prompt = prompt
        self.family = family  # gptge: minimax | jimeng | kling
        self.created = time.time()

    def __repr__(self) -> str:
        return f"Task({self.id!r}, state={self.state!r}, polls={self.polls})"


def retry_after_header(seconds: float) -> str:
    return f"{seconds:g}"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class ProviderDouble(ABC):
    """A local fake of one provider protocol, served on 127.0.0.1 by aiohttp."""

    protocol: ClassVar[str]
    base_path: ClassVar[str] = ""  # mirrors the real base URL's path (higgsfield: /api/v1)
    default_outputs: ClassVar[tuple[str, ...]] = ("video",)
    error_messages: ClassVar[dict[int, str]] = {}

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        record: bool = True,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        # record=False keeps requests/submissions lists empty (memory benchmarks);
        # counters, tasks and polls still work.
        self.record = record
        self.default_timeline: list[Step] = [Step.queued(), Step.running(50), Step.succeed()]
        self.completion_delay: Callable[[int], float] | None = None
        self.submit_latency = 0.0
        self.status_latency = 0.0
        self.submissions: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, int]] = []
        self.request_count = 0
        self.tasks: dict[str, Task] = {}
        self.cancelled: set[str] = set()
        self.rejections: list[tuple[str, int, str]] = []
        self._scripts: deque[tuple[Step, ...]] = deque()
        self._prompt_scripts: list[tuple[str, tuple[Step, ...]]] = []
        self._submit_faults: deque[SubmitFault] = deque()
        self._aftermaths: deque[str] = deque()
        self.aftermaths_done: list[str] = []  # what after_create() faults were served
        self._rng = random.Random(seed)
        # A separate generator, so slicing never changes the ids a seeded double makes.
        self._wire_rng = random.Random(seed)
        self.wire = Wire()
        self._runner: web.AppRunner | None = None
        self._root_url: str | None = None
        self.callbacks = Callbacks(self)

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> Self:
        if self._runner is not None:
            return self
        app = web.Application(middlewares=[self._make_middleware()], client_max_size=32 * 2**20)
        for method, path, handler in self.routes():
            app.router.add_route(method, self.base_path + path, handler)
        app.router.add_get("/media/large/{size}.mp4", media.serve_large)
        app.router.add_get("/media/{name}", media.serve_file)
        # access_log=None: no INFO line per request (benchmarks send 100k+ of them).
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._root_url = f"http://{host}:{port}"
        log.debug("%s double listening on %s", self.protocol, self._root_url)
        return self

    async def close(self) -> None:
        await self.callbacks.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def root_url(self) -> str:
        if self._root_url is None:
            raise RuntimeError("double not started: await d.start() first")
        return self._root_url

    @property
    def base_url(self) -> str:
        """What the bot uses as <ID>_BASE_URL."""
        return self.root_url + self.base_path

    def media_url(self, name: str) -> str:
        return f"{self.root_url}/media/{name}"

    # --- scripting --------------------------------------------------------------------
    def script_next(self, steps: Sequence[Step]) -> None:
        """Timeline for the next submitted task (FIFO; takes precedence over prompts)."""
        self._scripts.append(freeze(steps))

    def script_for_prompt(self, substring: str, steps: Sequence[Step]) -> None:
        """Timeline for every task whose prompt contains ``substring`` (case-insensitive)."""
        self._prompt_scripts.append((substring.casefold(), freeze(steps)))

    def fail_next_submit(
        self,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        *,
        retry_after: float = 1.0,
        html: bool = False,
    ) -> None:
        """The next ``times`` submits answer ``status`` in the provider's error shape."""
        for _ in range(times):
            self._submit_faults.append(SubmitFault(status, body, retry_after, html))

    def after_create(self, kind: str, times: int = 1) -> None:
        """The next ``times`` submits create (and bill) their task, then the client gets
        ``kind`` instead of the answer: ``bad_gateway`` (a proxy's HTML 502),
        ``close`` (the connection closed, no answer) or ``truncated`` (a 200 whose body
        stops short of its Content-Length, then the connection closes)."""
        if kind not in AFTERMATHS:
            raise ValueError(f"unknown aftermath {kind!r}; one of {sorted(AFTERMATHS)}")
        self._aftermaths.extend([kind] * times)

    def created_ids(self) -> list[str]:
        """Every task (and training) this double created, i.e. everything it would bill."""
        return list(self.tasks)

    def cancel(self, task_id: str) -> None:
        """Simulate a provider-side cancellation: later polls report the task cancelled."""
        task = self.tasks[task_id]
        self.cancelled.add(task_id)
        task.replace_timeline([Step.cancelled()], self.now())

    def polls(self, task_id: str) -> int:
        task = self.tasks.get(task_id)
        return task.polls if task else 0

    def _timeline_for(self, index: int, prompt: str) -> tuple[Step, ...]:
        if self._scripts:
            return self._scripts.popleft()
        folded = prompt.casefold()
        for substring, steps in self._prompt_scripts:
            if substring in folded:
                return steps
        if self.completion_delay is not None:
            return freeze(timed_timeline(self.completion_delay(index)))
        return freeze(self.default_timeline)

    # --- for subclasses ---------------------------------------------------------------
    @abstractmethod
    def routes(self) -> Iterable[Route]:
        """The protocol's routes."""

    @abstractmethod
    def error_body(
        self, status: int, message: str, code: str | None, retry_after: float | None = None
    ) -> Any:
        """The provider's JSON error body for an HTTP error status."""

    @abstractmethod
    def render(self, task: Task, step: Step) -> Any:
        """The provider's status body for a state step (always served with HTTP 200)."""

    # --- callbacks (doubles/providers/callbacks.py) --------------------------------------
    def callback_handshake(self, task: Task) -> bool:
        """Whether the provider first checks the URL with a ``challenge`` (MiniMax)."""
        return False

    def callback_url_of(self, body: Any) -> str | None:
        """The callback URL a submit body asks for (protocols that have callbacks)."""
        return None

    def callback_body(self, task: Task, step: Step) -> bytes:
        """What the provider POSTs: by default its status answer for ``step``."""
        return json.dumps(self.render(task, step), separators=(",", ":")).encode()

    def callback_headers(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    @staticmethod
    def now() -> float:
        """The clock timelines run on (monotonic; what Step.wait compares against)."""
        return asyncio.get_running_loop().time()

    @staticmethod
    def now_unix() -> int:
        return int(time.time())

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def rand_digits(self, n: int) -> str:
        return str(self._rng.randrange(10 ** (n - 1), 10**n))

    def rand_chars(self, n: int, alphabet: str) -> str:
        return "".join(self._rng.choices(alphabet, k=n))

    def message_for(self, status: int) -> str:
        return self.error_messages.get(status) or DEFAULT_MESSAGES.get(status, "Error")

    def outputs_of(self, step: Step) -> tuple[str, ...]:
        return step.outputs if step.outputs is not None else self.default_outputs

    def output_url(self, task: Task, step: Step, kind: str = "video") -> str:
        name = MEDIA_FOR_KIND[kind]
        if step.media_missing:
            return self.media_url(f"gone-{task.id}-{name}")
        if kind == "video" and step.large_bytes is not None and step.form != "base64":
            query = "?length=1" if step.content_length else ""
            return self._long(f"{self.root_url}/media/large/{step.large_bytes}.mp4{query}", step)
        return self._long(self.media_url(name), step)

    @staticmethod
    def _long(url: str, step: Step) -> str:
        """Signed URLs run to thousands of characters: pad with a signature to the length."""
        if step.url_length is None or len(url) >= step.url_length:
            return url
        glue = "&" if "?" in url else "?"
        pad = step.url_length - len(url) - len(glue) - len("sig=")
        return f"{url}{glue}sig={'s' * max(pad, 0)}"

    def completed_unix(self, task: Track) -> int:
        """Unix seconds of the first terminal answer (stable across repeated polls)."""
        if not task.finished_at:
            task.finished_at = time.time()
        return int(task.finished_at)

    async def read_json(self, request: web.Request) -> Any:
        try:
            return await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Reject(400, detail="request body is not valid JSON") from exc

    async def submit_gate(self) -> None:
        """Simulated latency and injected submit faults; call at the top of a submit."""
        if self.submit_latency:
            await asyncio.sleep(self.submit_latency)
        if self._submit_faults:
            fault = self._submit_faults.popleft()
            raise Reject(
                fault.status,
                body=fault.body,
                detail="injected submit fault",
                retry_after=fault.retry_after if fault.status == 429 else None,
                html=fault.html,
            )

    async def status_gate(self) -> None:
        """Simulated latency of a status request."""
        if self.status_latency:
            await asyncio.sleep(self.status_latency)

    def create_task(
        self,
        request: web.Request,
        task_id: str,
        body: Any,
        prompt: str,
        *,
        family: str = "",
    ) -> Task:
        while task_id in self.tasks:  # paranoia: random ids colliding in a long benchmark
            task_id = f"{task_id}x"
        index = len(self.tasks)
        now = self.now()
        task = Task(task_id, index, body, prompt, self._timeline_for(index, prompt), now, family)
        self.tasks[task_id] = task
        request[CREATED] = task_id
        self.callbacks.track(task, self.callback_url_of(body))
        if self.record:
            headers = CIMultiDict(request.headers)
            headers.popall("Authorization", None)
            self.submissions.append(
                {
                    "task_id": task_id,
                    "path": request.path,
                    "json": body,
                    "headers": headers,
                    "at": now,
                }
            )
        return task

    async def poll(self, task_id: str) -> web.Response:
        """Answer one status request for ``task_id`` from its timeline."""
        await self.status_gate()
        task = self.tasks.get(task_id)
        if task is None:
            raise Reject(404, detail=f"unknown task {task_id}")
        return self.answer(task, self.render)

    def answer(self, track: Track, render: Callable[[Any, Step], Any]) -> web.Response:
        """Consume one poll of ``track`` and turn the step into an HTTP answer."""
        track.polls += 1
        step = advance(track, self.now())
        kind = step.kind
        if kind is Kind.RATE_LIMIT:
            raise Reject(429, retry_after=step.retry_after, detail="scripted rate limit")
        if kind is Kind.SERVER_ERROR:
            raise Reject(step.status, html=step.html, detail="scripted server error")
        if kind is Kind.NOT_FOUND:
            raise Reject(404, detail="scripted not found")
        if kind is Kind.MALFORMED:
            if not step.truncated:
                return web.json_response({"unexpected": "shape"})
            text = json.dumps(render(track, track.shown or QUEUED))
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        return web.json_response(render(track, step))

    # --- internals --------------------------------------------------------------------
    def _reject_response(self, request: web.Request, exc: Reject) -> web.Response:
        if self.record:
            self.rejections.append((request.path, exc.status, exc.detail or exc.message or ""))
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = retry_after_header(exc.retry_after)
        if exc.html:
            reason = DEFAULT_MESSAGES.get(exc.status, "Error")
            text = HTML_ERROR.format(status=exc.status, reason=reason)
            return web.Response(
                status=exc.status, text=text, content_type="text/html", headers=headers
            )
        body = exc.body
        if body is None:
            message = exc.message or self.message_for(exc.status)
            body = self.error_body(exc.status, message, exc.code, exc.retry_after)
        return web.json_response(body, status=exc.status, headers=headers)

    async def _aftermath(
        self, request: web.Request, response: web.StreamResponse, kind: str
    ) -> web.StreamResponse:
        log.info("%s double: task %s created, then %s", self.protocol, request[CREATED], kind)
        self.aftermaths_done.append(kind)
        if kind == "bad_gateway":  # an ordinary answer, sent like any other (middleware)
            return self._reject_response(request, Reject(502, html=True, detail="after create"))
        transport = request.transport
        if kind == "close":
            if transport is not None:
                transport.close()
            raise ConnectionResetError("double: closed after creating the task")
        body = response.body if isinstance(response, web.Response) else None
        text = bytes(body) if isinstance(body, bytes | bytearray) else b"{}"
        out = web.StreamResponse(status=200)
        out.content_type = "application/json"
        out.content_length = len(text) + 100
        await out.prepare(request)
        await out.write(text[: len(text) // 2])
        if transport is not None:
            transport.close()
        return out

    def _make_middleware(self) -> Any:
        expected = f"Bearer {self.api_key}"

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            is_media = path.startswith("/media/")
            try:
                if not is_media and request.headers.get("Authorization") != expected:
                    raise Reject(401, detail="missing or wrong Authorization header")
                response = await handler(request)
            except Reject as exc:
                response = self._reject_response(request, exc)
            except web.HTTPException as exc:  # unknown route, wrong method
                if is_media:
                    response = web.Response(status=exc.status, text=exc.reason)
                else:
                    message = f"{exc.reason}: {request.method} {path}"
                    response = self._reject_response(request, Reject(exc.status, message))
            aftermath = None
            if request.get(CREATED) is not None and self._aftermaths:
                aftermath = self._aftermaths.popleft()
            self.request_count += 1
            if self.record:
                # What the client got: 0 for a connection closed without an answer.
                seen = {"bad_gateway": 502, "close": 0}.get(aftermath or "", response.status)
                self.requests.append((request.method, path, seen))
            if aftermath is not None:
                response = await self._aftermath(request, response, aftermath)
            if is_media or not isinstance(response, web.Response) or response.prepared:
                return response
            return await self.wire.send(request, response, self._wire_rng)

        return middleware
