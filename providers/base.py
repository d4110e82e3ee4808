"""The one interface every video provider speaks, and the normalised types it returns.

Each protocol module turns its own wire format into these types; nothing outside
``providers/`` ever sees a provider's raw JSON.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

# The error types live below this module and the HTTP layer; re-exported from here.
from providers.errors import RETRYABLE_KINDS, Delivery, ErrorKind, ProviderError
from providers.http import ProviderHttp

# The error types live in providers.errors (providers.http needs them too); adapters
# and the bot import them from here along with the rest of the interface.
__all__ = [
    "ALL_OPTIONS",
    "RETRYABLE_KINDS",
    "Capabilities",
    "Delivery",
    "ErrorKind",
    "GenerationRequest",
    "InputImage",
    "Motion",
    "Output",
    "Provider",
    "ProviderError",
    "ProviderHttp",
    "SubmitCall",
    "TaskState",
    "TaskStatus",
    "TrainingRequest",
]

TaskState = Literal["queued", "running", "succeeded", "failed"]

# Options of /animate a provider may or may not honour (SPEC §3). Anything not in
# ``Provider.options`` is refused before submission with a message naming providers
# that can.
ALL_OPTIONS = frozenset(
    {"duration", "aspect_ratio", "resolution", "seed", "negative_prompt", "motion", "character"}
)


@dataclass(frozen=True, slots=True)
class Output:
    """One result of a task. Exactly one of ``url``, ``data_base64``, ``file_id`` is set."""

    kind: str  # video | image | first_frame | last_frame | thumbnail | audio | ...
    url: str | None = None
    data_base64: str | None = None
    file_id: str | None = None
    expires_at: float | None = None  # unix seconds, when the provider says
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """Normalised answer to "how is task X doing?"."""

    state: TaskState
    progress: int | None = None  # 0-100 where the provider reports it
    outputs: tuple[Output, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    credits: float | None = None  # credits/usage the provider reported for this task
    raw_state: str | None = None  # the provider's own word, for logs and status messages

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class InputImage:
    """The first frame for image-to-video.

    ``url`` is a currently valid public URL (a fresh Discord CDN URL); ``data`` is the
    image itself, kept by the bot so a re-run days later does not depend on an
    expired URL. Providers that accept data URLs may use ``data_url``.
    """

    url: str | None
    data: bytes
    content_type: str

    @property
    def data_url(self) -> str:
        import base64

        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"

    def best_reference(self) -> str:
        """A URL when we have one, else the inline data URL."""
        return self.url or self.data_url


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    prompt: str
    model: str | None = None
    image: InputImage | None = None
    duration: int | None = None
    aspect_ratio: str | None = None  # "16:9" | "9:16" | "1:1"
    resolution: str | None = None  # "480p" | "720p" | "1080p"
    seed: int | None = None
    negative_prompt: str | None = None
    motion: str | None = None  # motion template id or name (higgsfield_feed)
    character_id: str | None = None  # provider-side character/model id
    # Where the provider may POST when the task finishes (SPEC §6); None = poll only.
    # A provider (or model family) without callbacks leaves it out of the request.
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitCall:
    """The request that creates a task, as sent: kept so a resend is byte-identical.

    hiapi refuses (422) a resend under the same Idempotency-Key whose body differs, and
    a refreshed image URL would make it differ, so the first body is stored and reused.
    """

    path: str
    body: str  # the exact JSON text of the first attempt

    @classmethod
    def of(cls, path: str, body: object) -> SubmitCall:
        return cls(path, json.dumps(body, separators=(",", ":"), ensure_ascii=False))

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "body": self.body})

    @classmethod
    def from_json(cls, text: str) -> SubmitCall:
        data = json.loads(text)
        return cls(str(data["path"]), str(data["body"]))


@dataclass(frozen=True, slots=True)
class Motion:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    name: str
    image_urls: Sequence[str]


@dataclass(slots=True)
class Capabilities:
    text_to_video: bool = True
    image_to_video: bool = True
    cancel: bool = False
    progress: bool = False
    credits: bool = False
    characters: bool = False
    idempotent_submit: bool = False
    callbacks: bool = False  # takes a callback URL on submit (some models may not)
    options: frozenset[str] = field(default_factory=frozenset)


class Provider(ABC):
    """A video-generation API. One instance per configured provider, shared by all tasks.

    Instances hold no per-task state: everything needed to resume a task is its
    provider id plus the provider task id (fal-client's ``from_request_id`` idea).
    """

    id: ClassVar[str]
    display_name: ClassVar[str]
    default_base_url: ClassVar[str | None]
    capabilities: ClassVar[Capabilities]

    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    # --- generation -----------------------------------------------------------------
    async def submit(self, request: GenerationRequest, *, idempotency_key: str) -> str:
        """Create a task and return the provider's task id.

        Raises ProviderError. ``idempotency_key`` is stable for one bot task; only
        providers with ``capabilities.idempotent_submit`` send it.
        """
        call = await self.prepare_submit(request)
        return await self.send_submit(call, idempotency_key=idempotency_key)

    @abstractmethod
    async def prepare_submit(self, request: GenerationRequest) -> SubmitCall:
        """Validate and build the create request without sending it (ProviderError
        INVALID, never sent, when the provider cannot honour it)."""

    @abstractmethod
    async def send_submit(self, call: SubmitCall, *, idempotency_key: str) -> str:
        """Send a prepared create request (again, byte for byte) and return the task id."""

    @abstractmethod
    async def status(self, task_id: str) -> TaskStatus:
        """Query a task. Raises ProviderError for transport/envelope errors."""

    async def cancel(self, task_id: str) -> bool:
        """Ask the provider to cancel. Returns True when the provider accepted."""
        return False

    async def resolve_output(self, output: Output) -> Output:
        """Turn an output that needs a second call (gptge ``file_id``) into a URL one."""
        return output

    def models(self) -> list[str]:
        """Model ids offered in autocomplete, default first."""
        return []

    def default_model(self) -> str | None:
        models = self.models()
        return models[0] if models else None

    async def motions(self, search: str = "") -> list[Motion]:
        """Motion templates (higgsfield_feed); empty for providers without them."""
        return []

    # --- characters (identity training) ---------------------------------------------
    async def train_character(self, request: TrainingRequest) -> str:
        """Start identity training, return the provider's model/character id."""
        raise ProviderError(
            ErrorKind.INVALID, f"{self.display_name} cannot train characters", code="unsupported"
        )

    async def character_status(self, model_id: str) -> TaskStatus:
        raise ProviderError(
            ErrorKind.INVALID, f"{self.display_name} cannot train characters", code="unsupported"
        )

    async def delete_character(self, model_id: str) -> bool:
        """Delete the provider-side model where the API allows; True if deleted."""
        return False
