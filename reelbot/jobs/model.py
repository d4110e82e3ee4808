"""A video request as the store keeps it, and the one codec between the two.

The request column is JSON; this is the only place that knows its keys. Unknown keys
(written by a newer version, or by another branch's feature) are kept as they are, so
a round trip through :class:`VideoRequest` never loses anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from providers.base import GenerationRequest, InputImage


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
    character_id: int | None = None  # our character's row
    character_model_id: str | None = None  # the provider's id of it
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> VideoRequest:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in stored.items() if k in known},
            extra={k: v for k, v in stored.items() if k not in known},
        )

    def to_stored(self) -> dict[str, Any]:
        stored = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "extra" and getattr(self, f.name) is not None
        }
        return {**self.extra, **stored}

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
