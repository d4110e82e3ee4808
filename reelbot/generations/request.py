"""A video request as the store keeps it, and the one codec between the two.

The request column is JSON; this is the only place that knows its keys. Every layer
from the cogs to the worker passes :class:`VideoRequest` and changes one with
``dataclasses.replace``; the JSON is made (``to_stored``) and read (``from_stored``,
``of``) only at the store's edge. Unknown keys (written by a newer version, or by
another branch's feature) are kept as they are, so a round trip through
:class:`VideoRequest` never loses anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from providers.base import GenerationRequest, InputImage
from reelbot.store.models import TaskRow


@dataclass(frozen=True, slots=True)
class Moved:
    """Failover's record on a request it moved (stored as ``{"from", "tried", "note"}``):
    where it came from, every provider it was sent to before, and what the status
    message says ("hiapi is unavailable: sent to foxapi")."""

    origin: str
    tried: tuple[str, ...]
    note: str
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Moved:
        tried = stored.get("tried")
        return cls(
            origin=str(stored.get("from", "")),
            tried=tuple(str(p) for p in tried) if isinstance(tried, list) else (),
            note=str(stored.get("note") or ""),
            extra={k: v for k, v in stored.items() if k not in ("from", "tried", "note")},
        )

    def to_stored(self) -> dict[str, Any]:
        return {**self.extra, "from": self.origin, "tried": list(self.tried), "note": self.note}


@dataclass(frozen=True, slots=True)
class VideoRequest:
    prompt: str
    model: str | None = None
    image: dict[str, Any] | None = None  # the first frame's stored description (InputStore)
    duration: int | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    motion: str | None = None
    character: str | None = None  # our character's name, as the member chose it
    character_id: int | None = None  # our character's row
    character_model_id: str | None = None  # the provider's id of it
    # Whether the member named the provider: only a request that named none may fail
    # over (SPEC §4). None: stored before the flag existed, which counts as named.
    provider_chosen: bool | None = None
    failover: Moved | None = None  # set when failover moved it
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> VideoRequest:
        """Decode a stored request; ValueError when it is not a video request (no prompt:
        a training's, or a row from before requests had one)."""
        if not isinstance(stored.get("prompt"), str):
            raise ValueError("not a video request: it has no prompt")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in stored.items() if k in known}
        extra = {k: v for k, v in stored.items() if k not in known}
        moved = values.pop("failover", None)
        if isinstance(moved, dict):
            values["failover"] = Moved.from_stored(moved)
        elif moved is not None:  # a shape this version cannot read: kept untouched
            extra["failover"] = moved
        return cls(**values, extra=extra)

    @classmethod
    def of(cls, task: TaskRow) -> VideoRequest:
        """The request of a video task (ValueError for a task of another kind)."""
        if task.kind != "video":
            raise ValueError(f"task {task.id} is a {task.kind} task, not a video request")
        return cls.from_stored(task.request)

    def to_stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            stored[f.name] = value.to_stored() if isinstance(value, Moved) else value
        return {**self.extra, **stored}

    def unmoved(self) -> VideoRequest:
        """Without failover's record, whatever its shape: a re-run starts where the
        request ended up, and the old note was about the old task."""
        extra = {k: v for k, v in self.extra.items() if k != "failover"}
        return dataclasses.replace(self, failover=None, extra=extra)

    @property
    def tried(self) -> tuple[str, ...]:
        """The providers failover already sent this request to."""
        return self.failover.tried if self.failover is not None else ()

    @property
    def has_character(self) -> bool:
        return bool(self.character_id or self.character_model_id)

    def generation(self, image: InputImage | None) -> GenerationRequest:
        """What the provider is asked for (``image``: the first frame, read or described)."""
        return GenerationRequest(
            prompt=self.prompt,
            model=self.model,
            image=image,
            duration=self.duration,
            aspect_ratio=self.aspect_ratio,
            resolution=self.resolution,
            seed=self.seed,
            negative_prompt=self.negative_prompt,
            motion=self.motion,
            character_id=self.character_model_id,
        )


def video_request(task: TaskRow) -> VideoRequest | None:
    """The request of a video task; None for a task of another kind (a training's
    request is its character's, reelbot/characters)."""
    return VideoRequest.of(task) if task.kind == "video" else None
