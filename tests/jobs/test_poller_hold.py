"""Quiet polls (nothing a member sees changed, next poll soon) keep their task in
memory, leased, instead of a store write and a claim per poll; anything else is
recorded as before."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from reelbot.jobs.poller import HOLD_AFTER_EDIT, HOLD_MAX_INTERVAL, Lane, Poller, PollerSettings
from reelbot.store.models import TaskRow

BASE: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskRow)}


def running(**kw: Any) -> TaskRow:
    fields = {
        **BASE,
        "id": 7,
        "kind": "video",
        "provider": "hiapi",
        "request": {},
        "state": "running",
        "raw_state": "handling",
        "progress": None,
        "outputs": [],
        "attempts": 3,
        "error_streak": 0,
        "not_found_streak": 0,
        "created_at": 0.0,
        "updated_at": 0.0,
        "status_edited_at": 0.0,
        **kw,
    }
    return TaskRow(**fields)


def quiet(now: float, **kw: Any) -> dict[str, Any]:
    return {
        "attempts": 4,
        "error_streak": 0,
        "not_found_streak": 0,
        "raw_state": "handling",
        "state": "running",
        "progress": None,
        "poll_interval": 1.8,
        "next_action_at": now + 1.8,
        **kw,
    }


def poller() -> Poller:
    settings = PollerSettings(poll_interval=1, poll_max_interval=60, task_timeout=3600)
    return Poller(
        store=None,  # type: ignore[arg-type]  # a held poll touches no store
        providers={},
        settings=settings,
        inputs=None,  # type: ignore[arg-type]
        deliver=None,  # type: ignore[arg-type]
        on_status=None,  # type: ignore[arg-type]
    )


async def test_a_quiet_poll_keeps_its_task_and_hands_it_back_when_due() -> None:
    p, lane, now = poller(), Lane("hiapi", 8), time.time()
    outcome = quiet(now, next_action_at=now + 0.05)
    assert p._hold(lane, running(), outcome)
    assert 7 in p.in_hand and 7 in p._held and not lane.ready
    p._start_ready = lambda lane: None  # type: ignore[method-assign]  # keep it waiting
    await asyncio.sleep(0.1)
    assert 7 not in p._held and len(lane.ready) == 1
    kept = lane.take()
    assert kept.attempts == 4 and kept.updated_at >= now  # as if recorded


@pytest.mark.parametrize(
    ("task_fields", "outcome_fields"),
    [
        ({}, {"state": "succeeded", "next_action_at": 0.0}),  # finished: recorded
        ({}, {"progress": 50}),  # progress moved: shown, so recorded
        ({}, {"raw_state": "archiving", "progress": 95}),
        ({}, {"next_action_at": HOLD_MAX_INTERVAL + 30.0}),  # far off: recorded
        ({}, {"error_streak": 1}),  # an error: recorded
        ({"error_streak": 2}, {}),  # the first answer after errors resets the streak
        ({"state": "submitting"}, {}),
    ],
)
async def test_anything_else_is_recorded(
    task_fields: dict[str, Any], outcome_fields: dict[str, Any]
) -> None:
    now = time.time()
    task = running(**task_fields)
    task = dataclasses.replace(task, status_edited_at=now - 2 * HOLD_AFTER_EDIT)
    outcome = quiet(now) | outcome_fields
    if outcome_fields.get("next_action_at"):
        outcome["next_action_at"] = now + outcome_fields["next_action_at"]
    p = poller()
    assert not p._hold(Lane("hiapi", 8), task, outcome)
    assert not p._held


async def test_a_status_edited_just_now_is_recorded_once_more() -> None:
    # A change shown a moment ago may have been throttled: the next recorded poll
    # re-renders it, so the task is not kept until HOLD_AFTER_EDIT has passed.
    now = time.time()
    p = poller()
    assert not p._hold(Lane("hiapi", 8), running(status_edited_at=now - 1.0), quiet(now))
    assert p._hold(
        Lane("hiapi", 8), running(status_edited_at=now - HOLD_AFTER_EDIT - 1), quiet(now)
    )
    for _, _, timer in p._held.values():
        timer.cancel()
