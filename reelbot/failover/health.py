"""Health per provider (SPEC §4 "Failover", issue 16): a pure model.

The record lives in the store (``provider_health``), so every process (shards and
workers, on PostgreSQL) sees the same state; this module only decides how one
outcome changes a record, and what a submit may do given a record. No I/O here.

- *up*: submits go out as usual.
- *degraded*: still used, but something is off: the last submit was refused or never
  connected (fewer than ``DOWN_AFTER`` in a row), or under ``DEGRADED_BELOW`` of the
  recent outcomes were good.
- *down*: ``DOWN_AFTER`` refusals or connection failures of submits in a row, or a
  single 402 (out of credits). Nothing is sent to it until its cool-off ends; then
  exactly one submit (the *probe*, claimed in the store) may go. A good answer to the
  probe brings it back up; a bad one doubles the cool-off (up to ``COOLOFF_MAX``).

Only submit outcomes move a provider down or up: tasks already running there keep
being polled (an account out of credits still answers polls). Polls that fail and
tasks the provider failed count in the recent success rate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Literal

from providers.base import Delivery, ErrorKind, ProviderError

State = Literal["up", "degraded", "down"]
Transition = Literal["down", "up"]
Verdict = Literal["send", "probe", "skip"]

DOWN_AFTER = 3  # refusals / connection failures of submits in a row (SPEC §4)
COOLOFF_BASE = 30.0  # seconds of the first cool-off
COOLOFF_MAX = 15 * 60.0  # the cool-off doubles per failed probe, up to this
PROBE_LEASE = 120.0  # a probe whose answer never got recorded frees the slot after this
WINDOW = 20  # recent outcomes kept for the success rate
DEGRADED_BELOW = 0.75  # success rate under which an up provider shows as degraded
MIN_SAMPLES = 4  # outcomes needed before the success rate says anything
MAX_ERROR = 200  # characters of the last error kept


class Outcome(enum.StrEnum):
    OK = "ok"  # a submit taken, a poll answered, a task finished well
    REFUSED = "refused"  # 429 / 401 / 403 and the like: the provider will not take work
    CONNECTION = "connection"  # the connection never opened: nothing was sent
    CREDITS = "credits"  # 402 / a documented out-of-credits code
    ERROR = "error"  # ambiguous (5xx, timeout after sending) or a failed task


# Outcomes that count towards DOWN_AFTER.
COUNTED = frozenset({Outcome.REFUSED, Outcome.CONNECTION, Outcome.CREDITS})


@dataclass(frozen=True, slots=True)
class Health:
    provider: str
    state: State = "up"
    streak: int = 0  # refusals / connection failures of submits in a row
    down_since: float | None = None
    retry_at: float | None = None  # end of the cool-off: a probe may go after it
    cooloff: float = 0.0  # the current cool-off's length
    reason: str | None = None  # "credits" | "failures", while down
    last_error: str | None = None
    recent: str = ""  # newest last: "+" good, "-" bad
    probe_until: float | None = None  # a probe is in flight until then
    updated_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.state == "down"

    @property
    def success_rate(self) -> float | None:
        if len(self.recent) < MIN_SAMPLES:
            return None
        return self.recent.count("+") / len(self.recent)

    @property
    def out_of_credits(self) -> bool:
        return self.down and self.reason == "credits"


def classify(exc: ProviderError) -> Outcome | None:
    """What a failed submit says about the provider (not about the request).

    A request the provider judged (bad options, its content filter, an unknown id) says
    the provider works: OK. An ambiguous failure is bad but never proves it down. None:
    it says nothing about the provider (a bug of ours, our own deadline)."""
    if exc.kind is ErrorKind.CREDITS or exc.http_status == 402:
        return Outcome.CREDITS
    if exc.code == "internal_error":
        return None
    if exc.delivery is Delivery.AMBIGUOUS:
        return Outcome.ERROR
    if exc.kind in (ErrorKind.RATE_LIMITED, ErrorKind.AUTH):
        return Outcome.REFUSED
    if exc.kind is ErrorKind.TRANSIENT:
        # Without a word from the network: a connection that never opened (a local
        # timeout or a bug of ours says nothing about the provider).
        if exc.delivery is Delivery.NOT_SENT:
            return Outcome.CONNECTION if exc.code == "connection_error" else None
        return Outcome.REFUSED  # a 4xx the provider module deems transient (408, 425...)
    return Outcome.OK


def _recent(recent: str, good: bool) -> str:
    return (recent + ("+" if good else "-"))[-WINDOW:]


def _settle(h: Health) -> Health:
    """up / degraded for a provider that is not down."""
    rate = h.success_rate
    bad = h.streak > 0 or (rate is not None and rate < DEGRADED_BELOW)
    return replace(h, state="degraded" if bad else "up")


def apply(
    h: Health,
    outcome: Outcome,
    *,
    now: float,
    submit: bool = True,
    probe: bool = False,
    error: str | None = None,
    cooloff_base: float = COOLOFF_BASE,
    cooloff_max: float = COOLOFF_MAX,
    down_after: int = DOWN_AFTER,
) -> tuple[Health, Transition | None]:
    """The record after one outcome, and the transition it caused (log it once).

    ``submit`` False: a poll or a task's end, which only moves the success rate.
    ``probe``: this submit was the one let through after the cool-off."""
    good = outcome is Outcome.OK
    h = replace(h, recent=_recent(h.recent, good), updated_at=now)
    if not good and error:
        h = replace(h, last_error=error[:MAX_ERROR])
    if not submit:
        return (h if h.down else _settle(h)), None
    if good:
        if h.down:
            back = replace(
                h,
                streak=0,
                down_since=None,
                retry_at=None,
                cooloff=0.0,
                reason=None,
                probe_until=None,
            )
            return _settle(back), "up"
        return _settle(replace(h, streak=0)), None
    streak = h.streak + 1 if outcome in COUNTED else h.streak
    h = replace(h, streak=streak)
    if h.down:
        if probe:  # the probe failed: wait longer before the next one
            cooloff = min(max(h.cooloff, cooloff_base) * 2, cooloff_max)
            reason = "credits" if outcome is Outcome.CREDITS else h.reason
            h = replace(h, cooloff=cooloff, retry_at=now + cooloff, probe_until=None, reason=reason)
        return h, None
    if outcome is Outcome.CREDITS or streak >= down_after:
        down = replace(
            h,
            state="down",
            down_since=now,
            cooloff=cooloff_base,
            retry_at=now + cooloff_base,
            reason="credits" if outcome is Outcome.CREDITS else "failures",
            probe_until=None,
        )
        return down, "down"
    return _settle(h), None


def verdict(h: Health | None, *, now: float) -> Verdict:
    """What a submit to this provider may do now: send; be the probe (claim it in the
    store first: only one process wins); or skip it (down, cooling off or probed)."""
    if h is None or not h.down:
        return "send"
    if h.retry_at is not None and now < h.retry_at:
        return "skip"
    if h.probe_until is not None and now < h.probe_until:
        return "skip"
    return "probe"


def is_available(h: Health | None, *, now: float) -> bool:
    """Up or degraded, or down with its probe due (a failover target that may take it)."""
    return verdict(h, now=now) != "skip"


def describe(h: Health | None) -> str:
    """A short state for /providers and /health: "up", "degraded", "down since …"."""
    if h is None or h.state == "up":
        return "up"
    if h.state == "degraded":
        return "degraded"
    since = f"<t:{int(h.down_since)}:R>" if h.down_since else "recently"
    why = "out of credits" if h.reason == "credits" else "not answering"
    return f"down since {since} ({why})"
