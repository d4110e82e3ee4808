"""When to look at a task next: pure functions, and the completion-time model they read.

Two regimes:

* **No completion model** (a provider we have not seen finish enough tasks yet): the
  interval grows with the task's age (about a seventh of it), so a task that has
  run for ten minutes is not polled every five seconds, while the delay between
  completion and delivery stays a small fraction of the whole wait.
* **With a** :class:`CompletionModel` (the provider's recent completion times): the
  poller stays away while completion is unlikely, and polls every
  ``DENSE_GAP_FACTOR * floor`` while it is likely. A completion then waits on average
  under ``floor`` for its poll, at a fraction of the polls of polling everything
  every ``floor``: completions cluster, and most of a task's life is spent before
  its provider's usual completion time.

Progress reported by the provider can only pull the next poll closer (an ETA from
the observed rate), never push it later.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque

# The dense zone: between these quantiles of the provider's recent completion times.
# Below the low one few tasks finish, and every task lives through that span, so
# polling it sparsely saves the most; above the high one only stragglers remain.
ZONE_LOW_QUANTILE = 0.04
ZONE_HIGH_QUANTILE = 0.995
# Inside the zone: detection waits uniformly 0..gap, so a gap of 1.8 * floor keeps
# the median wait at 0.9 * floor (the rest of a floor is for delivery work) and the
# 95th percentile at 1.71 * floor; the few completions outside the zone wait longer
# but stay beyond the 95th.
DENSE_GAP_FACTOR = 1.8
# Before the zone: cover 60 % of the remaining distance each time (a few polls to
# get there, and an early failure is still noticed within 60 % of the remaining wait).
APPROACH_FRACTION = 0.6
# After the zone (slower than usual): back off gently, as the age rule does.
STRAGGLER_SLOPE = 1 / 7


# Tasks the provider will call back about (SPEC §6): the callback makes them due at
# once, so polling only guards against a callback that never comes. Five times
# POLL_MAX_INTERVAL (5 min by default, about when hiapi's second callback retry would
# have come) and at most a quarter of TASK_TIMEOUT_SECONDS (a lost callback still gets
# a few polls before the timeout); never denser than the ordinary schedule.
CALLBACK_NET_FACTOR = 5.0
CALLBACK_NET_TIMEOUT_SHARE = 0.25


def callback_safety_net(interval: float, *, ceiling: float, timeout: float) -> float:
    """The poll interval of a task with a callback, from its ordinary ``interval``."""
    sparse = min(ceiling * CALLBACK_NET_FACTOR, timeout * CALLBACK_NET_TIMEOUT_SHARE)
    return max(interval, sparse)


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class CompletionModel:
    """How long one provider's generations take: its last ``capacity`` completion times.

    An empirical distribution (no assumed shape), so a provider that gets slower or
    faster moves the zone within ``capacity`` completions. Kept sorted on insert:
    ``observe`` is O(capacity) list shifting, ``quantile`` is O(1).
    """

    def __init__(self, capacity: int = 512, min_samples: int = 30) -> None:
        if capacity < min_samples or min_samples < 1:
            raise ValueError("need capacity >= min_samples >= 1")
        self.capacity = capacity
        self.min_samples = min_samples
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._recent)

    @property
    def ready(self) -> bool:
        return len(self._recent) >= self.min_samples

    def observe(self, seconds: float) -> None:
        """A task of this provider finished ``seconds`` after it was submitted."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        if len(self._recent) >= self.capacity:
            oldest = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (0 < q ≤ 1) of the recent completion times."""
        if not self._sorted:
            raise ValueError("no completion times observed yet")
        rank = math.ceil(clamp(q, 0.0, 1.0) * len(self._sorted))
        return self._sorted[max(rank, 1) - 1]


def model_interval(age: float, *, floor: float, ceiling: float, model: CompletionModel) -> float:
    """The interval from the provider's completion times alone (``model`` must be ready)."""
    dense = clamp(floor * DENSE_GAP_FACTOR, floor, ceiling)
    low = model.quantile(ZONE_LOW_QUANTILE)
    high = model.quantile(ZONE_HIGH_QUANTILE)
    if age < low:
        interval = max(dense, (low - age) * APPROACH_FRACTION)
    elif age <= high:
        interval = dense
    else:
        interval = dense + (age - high) * STRAGGLER_SLOPE
    return clamp(interval, floor, ceiling)


def next_poll_interval(
    *,
    age: float,
    floor: float,
    ceiling: float,
    previous_progress: int | None,
    progress: int | None,
    since_last_poll: float,
    model: CompletionModel | None = None,
) -> float:
    """Seconds until the next status poll of a task submitted ``age`` seconds ago.

    ``model``: the provider's completion times; without one (or before it has seen
    enough completions) the age rule applies. When progress moved since the last
    poll, the expected time to completion (from the observed rate) may pull the next
    poll closer.
    """
    if model is not None and model.ready:
        interval = model_interval(age, floor=floor, ceiling=ceiling, model=model)
    else:
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
