"""When to look at a task next. Pure functions, so the policy is easy to test and tune."""

from __future__ import annotations

import random


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def next_poll_interval(
    *,
    age: float,
    floor: float,
    ceiling: float,
    previous_progress: int | None,
    progress: int | None,
    since_last_poll: float,
) -> float:
    """Adaptive poll interval.

    Without progress information the interval grows with the task's age (about a
    seventh of it), so a task that has run for ten minutes is not polled every five
    seconds, while the delay between completion and delivery stays a small fraction
    of the whole wait. When progress moves, the expected time to completion (from
    the observed rate) pulls the next poll closer.
    """
    interval = clamp(age / 7.0, floor, ceiling)
    if (
        progress is not None
        and previous_progress is not None
        and progress > previous_progress
        and since_last_poll > 0
    ):
        rate = (progress - previous_progress) / since_last_poll
        eta = (100 - progress) / rate
        interval = clamp(min(interval, eta), floor, ceiling)
    return interval


def backoff(
    streak: int, *, floor: float, ceiling: float, retry_after: float | None = None
) -> float:
    """Delay after the ``streak``-th consecutive error: exponential with jitter, or Retry-After."""
    if retry_after is not None:
        return clamp(retry_after, floor, max(ceiling, retry_after))
    base = floor * (2 ** min(streak, 10))
    return clamp(base * random.uniform(0.8, 1.2), floor, ceiling)
