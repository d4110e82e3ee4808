"""Task rows and a kinds registry for unit tests below end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from reelbot.generations.kind import VideoKind
from reelbot.jobs.inputs import InputStore
from reelbot.jobs.kinds import JobKinds
from reelbot.store.models import TaskRow

BASE: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskRow)}


def finished_task(**kw: Any) -> TaskRow:
    return TaskRow(
        **{
            **BASE,
            "id": 9,
            "kind": "video",
            "provider": "foxapi",
            "state": "succeeded",
            "request": {"prompt": "a fox"},
            "guild_id": 1,
            "channel_id": 2,
            "thread_id": 3,
            "requester_id": 4,
            "delivered": False,
            "refunded": False,
            "delivery_attempts": 0,
            "error_streak": 0,
            "not_found_streak": 0,
            "attempts": 1,
            "created_at": 0.0,
            "updated_at": 0.0,
            # The provider said "done" with an output we can never fetch.
            "outputs": [{"kind": "video", "url": None, "data_base64": None, "file_id": None}],
            **kw,
        }
    )


def video_kind() -> JobKinds:
    """The registry with the video kind alone (its inputs are never read here)."""
    kinds = JobKinds()
    kinds.register(VideoKind(InputStore(Path("unused-inputs"))))
    return kinds
