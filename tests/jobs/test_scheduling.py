"""The poll-timing policy: adaptive without history, completion-time aware with it."""

from __future__ import annotations

import pytest

from reelbot.jobs.scheduling import CompletionModel, backoff, next_poll_interval

FLOOR, CEILING = 1.0, 60.0


def interval(age: float, model: CompletionModel | None = None, **kw) -> float:
    args = {"previous_progress": None, "progress": None, "since_last_poll": 1.0} | kw
    return next_poll_interval(age=age, floor=FLOOR, ceiling=CEILING, model=model, **args)


def test_without_history_the_interval_grows_with_age_within_bounds() -> None:
    assert interval(0) == FLOOR
    assert interval(70) == pytest.approx(10)
    assert interval(10_000) == CEILING


def test_moving_progress_pulls_the_next_poll_closer() -> None:
    slow = interval(300)
    # 50% → 90% in 40 s: about 10 s to go.
    assert interval(300, previous_progress=50, progress=90, since_last_poll=40) < slow


def test_a_learned_model_stays_away_early_and_polls_often_near_completion() -> None:
    model = CompletionModel(capacity=100, min_samples=30)
    for i in range(100):
        model.observe(100 + i * 0.5)  # generations take 100-150 s
    assert model.ready
    early = interval(5, model)
    assert early > 10 * FLOOR  # no point asking 95 s before anything finishes
    near = interval(110, model)
    assert near <= 2 * FLOOR  # inside the completion zone: poll about every floor
    assert interval(10_000, model) <= CEILING


def test_backoff_honours_retry_after_and_grows_otherwise() -> None:
    assert backoff(1, floor=FLOOR, ceiling=CEILING, retry_after=7) == 7
    assert backoff(1, floor=FLOOR, ceiling=CEILING) < backoff(5, floor=FLOOR, ceiling=CEILING)
    assert backoff(50, floor=FLOOR, ceiling=CEILING) <= CEILING
