"""The simulated demand: how long generations take, and a steady state of N in flight.

Each provider's completion time is log-normal around its own median (generation
time is fairly consistent per model; queues spread it), the medians scaled by
``--median``. A benchmark of a few minutes cannot wait for 10,000 fresh tasks to
finish, so it starts from a *steady state*: the tasks in flight at a random
instant. Their durations are then length-biased (long tasks are more likely to be
in flight: for a log-normal that is the same law with mu + sigma^2) and their ages
uniform over their duration. New tasks arrive at the completion rate, N / E[T], so
N stays about constant and completions during the run follow the plain law.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from providers import PROVIDER_IDS

# Relative medians: hiapi's model is quick, gptge's families are the slowest.
MULTIPLIERS: dict[str, float] = {
    "higgsfield": 1.0,
    "higgsfield_feed": 0.75,
    "hiapi": 0.5,
    "foxapi": 1.25,
    "gptge": 1.5,
}
MIN_SECONDS = 5.0


@dataclass(frozen=True)
class Workload:
    median: float = 900.0  # seconds, scaled per provider by MULTIPLIERS
    sigma: float = 0.3  # log-normal shape: 0.3 is a coefficient of variation of ~31 %
    providers: tuple[str, ...] = PROVIDER_IDS
    multipliers: dict[str, float] = field(default_factory=lambda: dict(MULTIPLIERS))

    def provider_for(self, serial: int) -> str:
        return self.providers[serial % len(self.providers)]

    def median_for(self, pid: str) -> float:
        return self.median * self.multipliers.get(pid, 1.0)

    def mean_for(self, pid: str) -> float:
        return self.median_for(pid) * math.exp(self.sigma**2 / 2)

    @property
    def mean(self) -> float:
        """E[T] over the provider mix (round robin)."""
        return sum(self.mean_for(p) for p in self.providers) / len(self.providers)

    def duration(self, pid: str, rng: random.Random) -> float:
        """A fresh task's completion time."""
        mu = math.log(self.median_for(pid))
        return max(MIN_SECONDS, rng.lognormvariate(mu, self.sigma))

    def in_flight(self, pid: str, rng: random.Random) -> tuple[float, float]:
        """(duration, age) of a task found in flight at a random instant."""
        mu = math.log(self.median_for(pid)) + self.sigma**2
        total = max(MIN_SECONDS, rng.lognormvariate(mu, self.sigma))
        return total, rng.uniform(0.0, total)

    def describe(self) -> dict[str, object]:
        return {
            "completion_time": "log-normal per provider",
            "sigma": self.sigma,
            "median_s": {p: round(self.median_for(p), 1) for p in self.providers},
            "mean_s": round(self.mean, 1),
        }
