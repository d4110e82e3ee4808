"""Status edits (Delivery.update_status): each visible change once, no more."""

from __future__ import annotations

import dataclasses
from typing import Any

from reelbot import messages
from reelbot.generations.request import VideoRequest
from reelbot.jobs.delivery import Delivery
from reelbot.store.models import TaskRow
from tests.jobs.rows import Channel, Client, delivery_to, task_row

ETA = "usually ready in about 5 min"


def task(**kw: Any) -> TaskRow:
    """In flight, with its status message posted."""
    base: dict[str, Any] = {
        "id": 7,
        "raw_state": "processing",
        "progress": 50,
        "status_message_id": 99,
        "attempts": 0,
        "created_at": 1000.0,
        "updated_at": 1000.0,
    }
    return task_row(**{**base, **kw})


def delivery() -> tuple[Delivery, Channel]:
    client = Client()
    d = delivery_to(client)
    d.eta = lambda _task: ETA
    return d, client.channel


async def test_the_done_edit_is_made_once_though_delivery_sees_the_older_text() -> None:
    """The poll that sees "succeeded" edits the message; the delivery lane claimed the
    row before that edit was recorded, so after delivering it renders from the text
    shown before: that was a second, identical edit of every finished task."""
    d, channel = delivery()
    running = task()
    shown = messages.status_text(
        running, title=messages.video_title(VideoRequest.of(running)), eta=ETA
    )
    done = dataclasses.replace(
        running, state="succeeded", progress=100, finished_at=1600.0, status_text=shown
    )
    fields = await d.update_status(done)
    assert len(channel.edits) == 1 and fields["status_text"] == channel.edits[0]
    # The delivery's copy of the row: delivered now, the status text still the old one.
    assert await d.update_status(dataclasses.replace(done, delivered=True)) == {}
    assert len(channel.edits) == 1


async def test_an_unchanged_poll_neither_edits_nor_renders(monkeypatch) -> None:
    d, channel = delivery()
    fields = await d.update_status(task(status_text="(posted at /animate)"))
    assert len(channel.edits) == 1
    polled = task(status_text=fields["status_text"], status_edited_at=fields["status_edited_at"])
    rendered: list[TaskRow] = []
    real = messages.status_text
    monkeypatch.setattr(
        messages, "status_text", lambda t, **kw: rendered.append(t) or real(t, **kw)
    )
    assert await d.update_status(polled) == {} and rendered == []
    # A change is still shown (unthrottled here: the last edit is long ago).
    moved = dataclasses.replace(polled, progress=75, status_edited_at=0.0)
    assert (await d.update_status(moved))["status_text"] == channel.edits[-1]
    assert len(channel.edits) == 2 and "75%" in channel.edits[-1]


async def test_a_throttled_change_is_shown_by_a_later_poll() -> None:
    d, channel = delivery()
    fields = await d.update_status(task(status_text="(posted at /animate)"))
    edited_at = fields["status_edited_at"]
    moved = task(progress=75, status_text=fields["status_text"], status_edited_at=edited_at)
    assert await d.update_status(moved) == {}  # within STATUS_EDIT_INTERVAL: throttled
    later = dataclasses.replace(moved, status_edited_at=edited_at - 60)
    assert "75%" in (await d.update_status(later))["status_text"]
    assert len(channel.edits) == 2
