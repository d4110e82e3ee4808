"""Failover at submit (SPEC §4 "Failover", issue 16): pure, table-driven decisions.

A request that named no provider (``VideoRequest.provider_chosen`` False) and whose
provider is down or refused it (402, 429 past its retries, a connection that never
opened) may be moved to the first provider of ``FAILOVER_PROVIDERS`` that is up and
can honour it. Never after an ambiguous submit (the caller only asks when nothing
was sent), never with a character (bound to its provider), never when the member
named the provider.

Options are mapped, not dropped silently where the new provider has an equivalent:
duration to the nearest it accepts, aspect ratio and resolution to the nearest it
offers, the model to the new provider's default. A capability the member asked for
and the new provider lacks (image-to-video, motion, negative prompt) makes it unfit.
The adapter's own local checks (a dry submit, as /animate's precheck) have the last
word, in the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from providers.base import (
    Capabilities,
    Delivery,
    ErrorKind,
    InputImage,
    Provider,
    ProviderError,
)
from reelbot.failover.health import Health, is_available
from reelbot.generations.request import VideoRequest

CONNECTION_CODE = "connection_error"  # providers/http.py: ClientConnectorError
ASPECT_ORDER = ("9:16", "3:4", "1:1", "4:3", "16:9", "21:9")  # narrow → wide
RESOLUTION_ORDER = ("480p", "720p", "1080p")


@dataclass(frozen=True, slots=True)
class Accepts:
    """What one provider takes, as far as mapping needs to know (its default model).

    ``durations``: the exact lengths it makes; ``duration_range``: (low, high) it makes;
    neither: any length it is given. ``aspect_ratios`` / ``resolutions``: None when it
    takes any (or decides itself); a missing option (``Capabilities.options``) is dropped.
    """

    text_model: str | None = None  # None: the provider's default model
    image_model: str | None = None
    durations: tuple[int, ...] = ()
    duration_range: tuple[int, int] | None = None
    aspect_ratios: frozenset[str] | None = None
    resolutions: frozenset[str] | None = None
    seed: bool = True
    negative_prompt: bool = True
    # (resolution, duration): this resolution only at this length (MiniMax's 1080p: 6 s).
    resolution_only_at: Mapping[str, int] = field(default_factory=dict)


_WIDE = frozenset({"16:9", "9:16", "1:1"})
_ALL_RES = frozenset(RESOLUTION_ORDER)

# The default model of each provider, and what it takes (providers/*.py).
ACCEPTS: dict[str, Accepts] = {
    "higgsfield": Accepts(),
    "higgsfield_feed": Accepts(text_model="turbo", image_model="turbo"),
    "hiapi": Accepts(
        text_model="seedance-2-0",
        image_model="seedance-2-0",
        duration_range=(4, 15),
        aspect_ratios=_WIDE,
        resolutions=_ALL_RES,
        seed=False,
    ),
    "foxapi": Accepts(
        text_model="happyhorse-1.0-text-to-video",
        image_model="happyhorse-1.0-image-to-video",
    ),
    "gptge": Accepts(
        text_model="MiniMax-Hailuo-2.3",
        image_model="MiniMax-Hailuo-2.3",
        durations=(6, 10),
        aspect_ratios=frozenset(),  # MiniMax takes none: the option is dropped
        resolutions=_ALL_RES,
        seed=False,
        negative_prompt=False,
        resolution_only_at={"1080p": 6},
    ),
}


@dataclass(frozen=True, slots=True)
class Unfit:
    reason: str


def nearest_duration(duration: int, accepts: Accepts) -> int:
    if accepts.durations:
        # The nearest; between two, the longer (a member asking 8 of 6|10 gets 10).
        return min(accepts.durations, key=lambda d: (abs(d - duration), -d))
    if accepts.duration_range is not None:
        low, high = accepts.duration_range
        return max(low, min(high, duration))
    return duration


def _nearest(value: str, order: Sequence[str], offered: Iterable[str]) -> str | None:
    offered = [o for o in order if o in set(offered)]
    if not offered:
        return None
    if value not in order:
        return offered[0]
    at = order.index(value)
    return min(offered, key=lambda o: (abs(order.index(o) - at), -order.index(o)))


def map_request(
    request: VideoRequest,
    target: str,
    caps: Capabilities,
    *,
    default_model: str | None = None,
) -> VideoRequest | Unfit:
    """The request as ``target`` would take it, or why it cannot. What is about the
    member's request itself (prompt, image, seed, negative prompt, motion, whether they
    named the provider) is carried; the model and the sizes are ``target``'s; anything
    else (a failover note, keys this version does not know) stays behind."""
    accepts = ACCEPTS.get(target, Accepts())
    options = caps.options
    has_image = bool(request.image)
    if request.has_character:
        return Unfit("a character is bound to its provider")
    if has_image and not caps.image_to_video:
        return Unfit("it cannot start from an image")
    if not has_image and not caps.text_to_video:
        return Unfit("it only animates an image")
    if request.motion and "motion" not in options:
        return Unfit("it has no motion templates")
    if request.negative_prompt and (
        "negative_prompt" not in options or not accepts.negative_prompt
    ):
        return Unfit("it takes no negative prompt")
    model = (accepts.image_model if has_image else accepts.text_model) or default_model
    seed = request.seed if "seed" in options and accepts.seed else None
    duration = None
    if request.duration is not None and "duration" in options:
        duration = nearest_duration(int(request.duration), accepts)
    aspect = None
    if request.aspect_ratio and "aspect_ratio" in options:
        if accepts.aspect_ratios is None:
            aspect = request.aspect_ratio
        else:
            aspect = _nearest(request.aspect_ratio, ASPECT_ORDER, accepts.aspect_ratios)
    resolution = None
    if request.resolution and "resolution" in options:
        offered = accepts.resolutions if accepts.resolutions is not None else _ALL_RES
        allowed = [
            r
            for r in offered
            if r not in accepts.resolution_only_at
            or (duration or accepts.resolution_only_at[r]) == accepts.resolution_only_at[r]
        ]
        resolution = (
            request.resolution
            if accepts.resolutions is None
            else _nearest(request.resolution, RESOLUTION_ORDER, allowed)
        )
    return VideoRequest(
        prompt=request.prompt,
        image=request.image,
        seed=seed,
        negative_prompt=request.negative_prompt,
        motion=request.motion,
        provider_chosen=request.provider_chosen,
        model=model or None,
        duration=duration,
        aspect_ratio=aspect,
        resolution=resolution,
    )


# --- deciding -----------------------------------------------------------------------------------
def may_move(request: VideoRequest) -> bool:
    """Only a request the member gave no provider for, and without a character. A
    request stored before the flag existed counts as named: it is never moved."""
    return request.provider_chosen is False and not request.has_character


def refusal_moves(exc: ProviderError, *, retries_left: bool) -> bool:
    """Does this failed submit let the request go elsewhere? Only when nothing was made:
    out of credits (402), a rate limit past its retries, a connection that never opened.
    An ambiguous submit never (SPEC §4 "Never pay twice")."""
    if exc.ambiguous:
        return False
    if exc.kind is ErrorKind.CREDITS or exc.http_status == 402:
        return True
    if exc.kind is ErrorKind.RATE_LIMITED:
        return not retries_left
    return is_connection_refused(exc)


def refused_by_provider(exc: ProviderError) -> bool:
    """A refusal about the provider rather than the request (out of credits, a rate
    limit, a bad key, no connection): a failure then names providers that are up."""
    if exc.ambiguous:
        return False
    if exc.kind in (ErrorKind.CREDITS, ErrorKind.RATE_LIMITED, ErrorKind.AUTH):
        return True
    return is_connection_refused(exc)


def is_connection_refused(exc: ProviderError) -> bool:
    """The connection never opened: nothing reached the provider."""
    return (
        exc.kind is ErrorKind.TRANSIENT
        and exc.delivery is Delivery.NOT_SENT
        and exc.code == CONNECTION_CODE
    )


def candidates(current: str, order: Sequence[str], configured: Iterable[str]) -> list[str]:
    """FAILOVER_PROVIDERS in order, configured ones only, without the current one."""
    have = set(configured)
    seen: list[str] = []
    for pid in order:
        if pid != current and pid in have and pid not in seen:
            seen.append(pid)
    return seen


@dataclass(frozen=True, slots=True)
class Option:
    target: str
    request: VideoRequest


def options(
    request: VideoRequest,
    current: str,
    *,
    order: Sequence[str],
    capabilities: Mapping[str, Capabilities],
    default_models: Mapping[str, str | None],
    health: Mapping[str, Health],
    now: float,
) -> tuple[list[Option], dict[str, str]]:
    """Where the request could go, best first, and why each other candidate cannot."""
    found: list[Option] = []
    why: dict[str, str] = {}
    for pid in candidates(current, order, capabilities):
        if not is_available(health.get(pid), now=now):
            why[pid] = "it is down too"
            continue
        mapped = map_request(request, pid, capabilities[pid], default_model=default_models.get(pid))
        if isinstance(mapped, Unfit):
            why[pid] = mapped.reason
            continue
        found.append(Option(pid, mapped))
    return found, why


def unavailable(provider: str, health: Health | None, exc: ProviderError | None = None) -> str:
    """ "hiapi is out of credits" / "hiapi is unavailable": the first half of the note."""
    if (exc is not None and (exc.kind is ErrorKind.CREDITS or exc.http_status == 402)) or (
        health is not None and health.out_of_credits
    ):
        return f"{provider} is out of credits"
    return f"{provider} is unavailable"


def moved_note(provider: str, target: str, health: Health | None, exc: ProviderError | None) -> str:
    """What the status message says: "hiapi is unavailable: sent to foxapi", and why
    when it is known ("… (out of credits)")."""
    note = f"{provider} is unavailable: sent to {target}"
    if unavailable(provider, health, exc).endswith("out of credits"):
        note += f" ({provider} is out of credits)"
    return note


def up_providers(configured: Iterable[str], health: Mapping[str, Health], now: float) -> list[str]:
    return [p for p in configured if is_available(health.get(p), now=now)]


# --- the adapter's own checks ---------------------------------------------------------------
class _WouldSend(Exception):
    """The request passed the adapter's local checks and was about to be sent."""


class _NoNetwork:
    """The transport of a dry adapter copy: it never sends anything."""

    async def request_json(self, *args: Any, **kwargs: Any) -> Any:
        raise _WouldSend


async def dry_check(provider: Provider, request: VideoRequest) -> str | None:
    """Run the adapter's local checks on a request without sending anything: None when
    it would send it, else the adapter's reason (as /animate's precheck)."""
    image = None
    if request.image:
        meta = request.image
        image = InputImage(
            url=meta.get("url") or "https://example.invalid/first-frame.png",
            data=b"",
            content_type=meta.get("content_type", "image/png"),
        )
    dry = type(provider)(_NoNetwork())  # type: ignore[arg-type]
    try:
        await dry.submit(request.generation(image), idempotency_key="failover-check")
    except _WouldSend:
        return None
    except ProviderError as exc:
        if exc.kind is ErrorKind.INVALID:
            return exc.message
        return None
    except Exception:  # noqa: BLE001  (a check needing more than we have: the submit decides)
        return None
    return None
