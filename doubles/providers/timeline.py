"""Scripted task timelines: what a provider double answers on each status poll.

A timeline is a list of :class:`Step`. Every status poll of a task consumes one
step (or ``polls`` of them), so tests are deterministic without touching the wall
clock. Time-based steps (``Step.wait`` and ``seconds=``) compare ``loop.time()``
values lazily on the next poll, so 10,000 tasks cost no timers or coroutines.

Rules (see :func:`advance`):

* state steps (queued/running/succeed/fail/unknown_state/cancelled) are shown for
  ``polls`` polls, or for ``seconds`` when given;
* faults (rate_limit/server_error/malformed/not_found) answer exactly one poll and
  the timeline then continues;
* ``wait(seconds)`` keeps answering with the previously shown state until that much
  time has passed since the wait began;
* the last step repeats forever, so a finished task stays finished.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Output kinds a succeed step may list, and the media file each one is served from.
MEDIA_FOR_KIND: dict[str, str] = {
    "video": "sample.mp4",
    "first_frame": "first_frame.jpg",
    "last_frame": "first_frame.jpg",
    "thumbnail": "first_frame.jpg",
    "image": "input.png",
}

# gptge success shapes (``Step.succeed(form=...)``) plus foxapi's alternative shapes.
SUCCEED_FORMS = frozenset(
    {"video_url", "file_id", "base64", "kling", "doubao", "string_results", "output_object"}
)


class Kind(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEED = "succeed"
    FAIL = "fail"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"
    WAIT = "wait"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    MALFORMED = "malformed"
    NOT_FOUND = "not_found"


STATE_KINDS = frozenset(
    {Kind.QUEUED, Kind.RUNNING, Kind.SUCCEED, Kind.FAIL, Kind.UNKNOWN, Kind.CANCELLED}
)
FAULT_KINDS = frozenset({Kind.RATE_LIMIT, Kind.SERVER_ERROR, Kind.MALFORMED, Kind.NOT_FOUND})

# Normalised state a bot should derive from each state step (Task.state).
NORMALISED: dict[Kind, str] = {
    Kind.QUEUED: "queued",
    Kind.RUNNING: "running",
    Kind.UNKNOWN: "running",
    Kind.SUCCEED: "succeeded",
    Kind.FAIL: "failed",
    Kind.CANCELLED: "cancelled",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of a timeline. Build with the classmethods, not the constructor."""

    kind: Kind
    polls: int = 1
    seconds: float | None = None  # time-based duration instead of ``polls``
    progress: int | None = None
    outputs: tuple[str, ...] | None = None  # None: the protocol's default outputs
    large_bytes: int | None = None
    content_length: bool = False  # large_bytes: declare Content-Length instead of chunked
    media_missing: bool = False  # output_404: media URLs answer 404
    form: str | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float = 1.0
    status: int = 503
    html: bool = False
    truncated: bool = True
    raw: str | None = None
    url_length: int | None = None  # pad output URLs to this many characters (signed URLs)

    # --- states ---------------------------------------------------------------------
    @classmethod
    def queued(cls, polls: int = 1, *, seconds: float | None = None) -> Step:
        return cls(Kind.QUEUED, polls=polls, seconds=seconds)

    @classmethod
    def running(
        cls, progress: int | None = None, polls: int = 1, *, seconds: float | None = None
    ) -> Step:
        if progress is not None and not 0 <= progress <= 100:
            raise ValueError("progress must be 0..100")
        return cls(Kind.RUNNING, polls=polls, seconds=seconds, progress=progress)

    @classmethod
    def succeed(
        cls,
        outputs: Iterable[str] | None = None,
        large_bytes: int | None = None,
        *,
        form: str | None = None,
        content_length: bool = False,
        url_length: int | None = None,
    ) -> Step:
        """``large_bytes`` with ``form="base64"``: the inline payload is that big (gptge
        sends ~1 MB status answers); ``url_length``: output URLs that long."""
        kinds = None if outputs is None else tuple(outputs)
        for kind in kinds or ():
            if kind not in MEDIA_FOR_KIND:
                raise ValueError(f"unknown output kind {kind!r}; use one of {list(MEDIA_FOR_KIND)}")
        if form is not None and form not in SUCCEED_FORMS:
            raise ValueError(f"unknown succeed form {form!r}; use one of {sorted(SUCCEED_FORMS)}")
        if large_bytes is not None and large_bytes < 0:
            raise ValueError("large_bytes must be >= 0")
        return cls(
            Kind.SUCCEED,
            outputs=kinds,
            large_bytes=large_bytes,
            form=form,
            content_length=content_length,
            url_length=url_length,
        )

    @classmethod
    def output_404(cls, outputs: Iterable[str] | None = None, *, form: str | None = None) -> Step:
        """Succeeds, but every output URL answers 404 (expired / deleted object)."""
        step = cls.succeed(outputs, form=form)
        return cls(Kind.SUCCEED, outputs=step.outputs, form=step.form, media_missing=True)

    @classmethod
    def fail(cls, code: str | None = None, message: str | None = None, polls: int = 1) -> Step:
        """Task failure; ``None`` picks the protocol's documented default code/message."""
        return cls(Kind.FAIL, polls=polls, code=code, message=message)

    @classmethod
    def unknown_state(cls, raw: str = "weird", polls: int = 1) -> Step:
        """Put ``raw`` verbatim in the status field (also reaches e.g. hiapi ``archiving``)."""
        return cls(Kind.UNKNOWN, polls=polls, raw=raw)

    @classmethod
    def cancelled(cls) -> Step:
        return cls(Kind.CANCELLED)

    # --- faults (one poll each, then the timeline continues) --------------------------
    @classmethod
    def rate_limit(cls, retry_after: float = 1.0) -> Step:
        return cls(Kind.RATE_LIMIT, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 503, html: bool = False) -> Step:
        return cls(Kind.SERVER_ERROR, status=status, html=html)

    @classmethod
    def malformed(cls, truncated: bool = True) -> Step:
        """truncated=True: the real body cut in half; False: valid JSON of the wrong shape."""
        return cls(Kind.MALFORMED, truncated=truncated)

    @classmethod
    def not_found(cls) -> Step:
        return cls(Kind.NOT_FOUND)

    # --- time -------------------------------------------------------------------------
    @classmethod
    def wait(cls, seconds: float) -> Step:
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return cls(Kind.WAIT, seconds=seconds)


QUEUED = Step.queued()


def timed_timeline(total_seconds: float, *, queued_fraction: float = 0.2) -> list[Step]:
    """queued, then running 25/50/75 %, then succeeded exactly ``total_seconds`` after submit.

    Built from time-based steps, so the outcome does not depend on how often the bot
    polls (used by ``ProviderDouble.completion_delay`` and benchmarks).
    """
    total = max(0.0, float(total_seconds))
    queued_for = total * queued_fraction
    slice_ = (total - queued_for) / 3
    return [
        Step.queued(seconds=queued_for),
        Step.running(25, seconds=slice_),
        Step.running(50, seconds=slice_),
        Step.running(75, seconds=slice_),
        Step.succeed(),
    ]


def freeze(steps: Sequence[Step]) -> tuple[Step, ...]:
    if not steps:
        raise ValueError("a timeline needs at least one step")
    for step in steps:
        if not isinstance(step, Step):
            raise TypeError(f"timeline entries must be Step, got {type(step).__name__}")
    return tuple(steps)


@dataclass(slots=True)
class Track:
    """Per-task cursor into a timeline. Small on purpose: benchmarks hold 10,000."""

    steps: tuple[Step, ...]
    since: float  # loop.time() when the current step began
    idx: int = 0
    used: int = 0  # polls consumed by the current (poll-based) step
    shown: Step | None = None  # last state step answered (what the client believes)
    polls: int = 0
    finished_at: float = 0.0  # unix seconds of the first terminal answer
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """Normalised state last reported to the client (queued/running/succeeded/failed/...)."""
        return "queued" if self.shown is None else NORMALISED[self.shown.kind]

    def replace_timeline(self, steps: Sequence[Step], now: float) -> None:
        self.steps, self.idx, self.used, self.since = freeze(steps), 0, 0, now


def advance(track: Track, now: float) -> Step:
    """Consume one status poll and return the step to answer it with."""
    steps = track.steps
    last = len(steps) - 1
    while True:
        step = steps[track.idx]
        timed = step.kind is Kind.WAIT or step.seconds is not None
        if track.idx < last and (timed or step.polls <= 0):
            end = track.since + (step.seconds or 0.0)
            if not timed or now >= end:
                # A timed step ends at its logical end, not at this poll, so chained
                # timed steps add up exactly regardless of the poll interval.
                track.idx, track.used, track.since = track.idx + 1, 0, end if timed else now
                continue
        elif track.idx < last:
            track.used += 1
            if track.used >= step.polls:
                track.idx, track.used, track.since = track.idx + 1, 0, now
        answer = (track.shown or QUEUED) if step.kind is Kind.WAIT else step
        if answer.kind in STATE_KINDS:
            track.shown = answer
        return answer
