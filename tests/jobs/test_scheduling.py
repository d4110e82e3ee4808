"""The poll-timing policy: adaptive without history, completion-time aware with it."""

from __future__ import annotations

import pytest

from reelbot.jobs.scheduling import (
    CompletionModel,
    backoff,
    callback_safety_net,
    next_poll_interval,
)

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


def test_a_task_with_a_callback_is_polled_once_it_is_late_and_before_its_timeout() -> None:
    model = CompletionModel(capacity=100, min_samples=30)
    for i in range(100):
        model.observe(600 + i * 6)  # generations take 600-1200 s
    net = {"ceiling": CEILING, "timeout": 3600.0, "model": model}
    # Without a model: the sparse net (5 x ceiling).
    assert callback_safety_net(1.0, ceiling=CEILING, timeout=3600.0) == 300.0
    # With one: nothing until the task is later than almost every completion.
    assert callback_safety_net(1.0, age=0.0, **net) == pytest.approx(model.quantile(0.995))
    # Late already: the sparse net again.
    assert callback_safety_net(1.0, age=1500.0, **net) == 300.0
    # Never past half of the timeout, so a lost callback still gets net polls.
    slow = CompletionModel(capacity=100, min_samples=30)
    for _ in range(100):
        slow.observe(3000.0)
    assert callback_safety_net(1.0, age=0.0, ceiling=CEILING, timeout=3600.0, model=slow) == 1800


def test_a_task_almost_done_is_polled_densely_whatever_its_age() -> None:
    model = CompletionModel(capacity=100, min_samples=30)
    for i in range(100):
        model.observe(600 + i * 6)
    early = interval(100, model)
    assert early > 10 * FLOOR
    # hiapi's "archiving" (95 %), seen long before the usual completion time.
    assert interval(100, model, progress=95) <= 2 * FLOOR
    assert interval(100, model, previous_progress=95, progress=95) <= 2 * FLOOR


def test_backoff_honours_retry_after_and_grows_otherwise() -> None:
    assert backoff(1, floor=FLOOR, ceiling=CEILING, retry_after=7) == 7
    assert backoff(1, floor=FLOOR, ceiling=CEILING) < backoff(5, floor=FLOOR, ceiling=CEILING)
    assert backoff(50, floor=FLOOR, ceiling=CEILING) <= CEILING
