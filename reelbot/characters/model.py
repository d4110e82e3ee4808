"""A character training as the store keeps it, and the one codec between the two.

A training task's request column is JSON, like a video's (reelbot/generations/request.py); this
is the only place that knows its keys. Unknown keys (written by a newer version, or by
another branch's feature) are kept as they are, so a round trip through
:class:`StoredTraining` never loses anything.

Not to be confused with :class:`providers.base.TrainingRequest`, what a provider is
sent: that one carries the photos' URLs, fetched afresh when the training is sent
(:meth:`StoredTraining.for_provider` builds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from providers.base import TrainingRequest


@dataclass(frozen=True, slots=True)
class StoredTraining:
    name: str  # the character's name when the training started (for the thread's words)
    character_id: int  # our character's row
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> StoredTraining:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in stored.items() if k in known},
            extra={k: v for k, v in stored.items() if k not in known},
        )

    def to_stored(self) -> dict[str, Any]:
        stored = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **stored}

    def for_provider(self, image_urls: Sequence[str]) -> TrainingRequest:
        """What the provider is asked to train (``image_urls``: the photos, fresh)."""
        return TrainingRequest(name=self.name, image_urls=list(image_urls))
