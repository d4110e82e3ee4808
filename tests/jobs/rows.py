"""Task rows, a kinds registry and a recording Discord client for the unit tests of
the worker half (below end to end)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from reelbot.generations.kind import VideoKind
from reelbot.jobs.delivery import Delivery, DeliverySettings
from reelbot.jobs.inputs import InputStore
from reelbot.jobs.kinds import JobKinds
from reelbot.store.models import TaskRow

BASE: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskRow)}


def task_row(**kw: Any) -> TaskRow:
    """A video task of one requester in one thread; ``kw`` sets the rest."""
    return TaskRow(
        **{
            **BASE,
            "id": 9,
            "kind": "video",
            "provider": "foxapi",
            "state": "running",
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
            **kw,
        }
    )


def finished_task(**kw: Any) -> TaskRow:
    """Done at the provider, with an output that can never be fetched."""
    no_source = {"kind": "video", "url": None, "data_base64": None, "file_id": None}
    return task_row(**{"state": "succeeded", "outputs": [no_source], **kw})


def video_kind() -> JobKinds:
    """The registry with the video kind alone (its inputs are never read here)."""
    kinds = JobKinds()
    kinds.register(VideoKind(InputStore(Path("unused-inputs"))))
    return kinds


class Message:
    def __init__(self, edits: list[str]) -> None:
        self.edits = edits

    async def edit(self, *, content: str, **_: Any) -> None:
        self.edits.append(content)


class Channel:
    """Records what is posted (``sent``) and every edit of its messages (``edits``)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.edits: list[str] = []

    async def send(self, *, content: str, **_: Any) -> Any:
        self.sent.append(content)
        return SimpleNamespace(id=555, content=content)

    def get_partial_message(self, message_id: int) -> Message:
        return Message(self.edits)


class Client:
    """discord.Client as Delivery uses it: one channel for every id."""

    user = None

    def __init__(self) -> None:
        self.channel = Channel()

    def get_guild(self, guild_id: int) -> None:
        return None

    def get_partial_messageable(self, channel_id: int, *, guild_id: int) -> Channel:
        return self.channel


def delivery_to(channel_client: Client, store: Any = None) -> Delivery:
    """A Delivery that posts to ``channel_client`` and reads or writes ``store``."""
    return Delivery(
        client=channel_client,  # type: ignore[arg-type]
        store=store,
        providers={},
        session=None,  # type: ignore[arg-type]
        settings=DeliverySettings(max_download_bytes=1 << 20, allow_local_urls=False),
        kinds=video_kind(),
    )
