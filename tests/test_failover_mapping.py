"""Failover's options mapping and decisions (reelbot/failover/mapping.py), at unit level: for
each pair of providers, a request made for the first, as the second takes it; and
whatever the mapping gives passes the second adapter's own local checks."""

from __future__ import annotations

from typing import Any

import pytest

from providers import PROVIDER_IDS, provider_class
from providers.base import Delivery, ErrorKind, ProviderError
from reelbot.failover.health import Health, Outcome, apply
from reelbot.failover.mapping import (
    ACCEPTS,
    Unfit,
    candidates,
    dry_check,
    map_request,
    may_move,
    moved_note,
    nearest_duration,
    options,
    refusal_moves,
)
from reelbot.generations.request import VideoRequest

IMG = {"sha256": "ab", "content_type": "image/png", "url": "https://cdn.example/a.png"}
# A request each provider could have been given by /animate.
REQUESTS: dict[str, dict[str, Any]] = {
    "higgsfield": {"duration": 8, "aspect_ratio": "16:9", "resolution": "1080p", "seed": 7},
    "higgsfield_feed": {
        "image": IMG,
        "model": "turbo",
        "aspect_ratio": "9:16",
        "seed": 3,
        "motion": "Face Punch",
    },
    "hiapi": {"model": "seedance-2-0", "duration": 12, "aspect_ratio": "1:1", "resolution": "480p"},
    "foxapi": {
        "image": IMG,
        "model": "happyhorse-1.0-image-to-video",
        "duration": 5,
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "seed": 1,
    },
    "gptge": {"model": "kling-v1", "duration": 5, "aspect_ratio": "16:9", "negative_prompt": "x"},
}
HH_T2V, HH_I2V, MINIMAX = (
    "happyhorse-1.0-text-to-video",
    "happyhorse-1.0-image-to-video",
    "MiniMax-Hailuo-2.3",
)
# (from, to) → the mapped options (prompt and image aside), or why it cannot go there.
EXPECTED: dict[tuple[str, str], dict[str, Any] | str] = {
    ("higgsfield", "higgsfield_feed"): "it only animates an image",
    ("higgsfield", "hiapi"): {  # hiapi's default model takes no seed
        "model": "seedance-2-0", "duration": 8, "aspect_ratio": "16:9", "resolution": "1080p",
    },
    ("higgsfield", "foxapi"): {
        "model": HH_T2V, "duration": 8, "aspect_ratio": "16:9", "resolution": "1080p", "seed": 7,
    },
    # MiniMax: 6 or 10 s (8 → the longer), 1080p only at 6 s, no aspect ratio, no seed.
    ("higgsfield", "gptge"): {"model": MINIMAX, "duration": 10, "resolution": "720p"},
    ("higgsfield_feed", "higgsfield"): "it has no motion templates",
    ("higgsfield_feed", "hiapi"): "it has no motion templates",
    ("higgsfield_feed", "foxapi"): "it has no motion templates",
    ("higgsfield_feed", "gptge"): "it has no motion templates",
    ("hiapi", "higgsfield"): {"duration": 12, "aspect_ratio": "1:1", "resolution": "480p"},
    ("hiapi", "higgsfield_feed"): "it only animates an image",
    ("hiapi", "foxapi"): {
        "model": HH_T2V, "duration": 12, "aspect_ratio": "1:1", "resolution": "480p",
    },
    ("hiapi", "gptge"): {"model": MINIMAX, "duration": 10, "resolution": "480p"},
    ("foxapi", "higgsfield"): {
        "duration": 5, "aspect_ratio": "16:9", "resolution": "720p", "seed": 1,
    },
    ("foxapi", "higgsfield_feed"): {"model": "turbo", "aspect_ratio": "16:9", "seed": 1},
    ("foxapi", "hiapi"): {
        "model": "seedance-2-0", "duration": 5, "aspect_ratio": "16:9", "resolution": "720p",
    },
    ("foxapi", "gptge"): {"model": MINIMAX, "duration": 6, "resolution": "720p"},
    ("gptge", "higgsfield"): "it takes no negative prompt",
    ("gptge", "higgsfield_feed"): "it only animates an image",
    ("gptge", "hiapi"): "it takes no negative prompt",
    ("gptge", "foxapi"): "it takes no negative prompt",
}  # fmt: skip
PAIRS = [(s, t) for s in PROVIDER_IDS for t in PROVIDER_IDS if s != t]


def test_every_pair_is_in_the_table() -> None:
    assert sorted(EXPECTED) == sorted(PAIRS)
    assert set(ACCEPTS) == set(PROVIDER_IDS)


@pytest.mark.parametrize(("source", "target"), PAIRS)
async def test_options_mapping_for_each_pair(source: str, target: str) -> None:
    cls = provider_class(target)
    stored = {"prompt": "a lighthouse at dusk", **REQUESTS[source], "provider_chosen": False}
    request = VideoRequest.from_stored(stored)
    mapped = map_request(request, target, cls.capabilities, default_model=cls(None).default_model())  # type: ignore[arg-type]
    expected = EXPECTED[(source, target)]
    if isinstance(expected, str):
        assert isinstance(mapped, Unfit) and mapped.reason == expected
        return
    assert not isinstance(mapped, Unfit)
    # What the mapping gives, the new provider's adapter accepts (its local checks).
    assert await dry_check(cls(None), mapped) is None  # type: ignore[arg-type]
    got = mapped.to_stored()
    assert got.pop("prompt") == "a lighthouse at dusk"
    assert got.pop("provider_chosen") is False
    assert got.pop("image", None) == stored.get("image")
    assert got == expected


@pytest.mark.parametrize(
    ("provider", "asked", "given"),
    [("gptge", 8, 10), ("gptge", 7, 6), ("gptge", 30, 10), ("gptge", 1, 6),
     ("hiapi", 2, 4), ("hiapi", 20, 15), ("hiapi", 9, 9), ("foxapi", 7, 7)],
)  # fmt: skip
def test_duration_goes_to_the_nearest_the_provider_accepts(provider, asked, given) -> None:
    assert nearest_duration(asked, ACCEPTS[provider]) == given


def test_a_character_request_is_never_moved() -> None:
    cls = provider_class("foxapi")
    request = VideoRequest(
        prompt="p", character_id=4, character_model_id="m", provider_chosen=False
    )
    assert isinstance(map_request(request, "foxapi", cls.capabilities), Unfit)
    assert not may_move(request)
    assert not may_move(VideoRequest(prompt="p", character_model_id="m", provider_chosen=False))


def test_only_requests_that_named_no_provider_move() -> None:
    assert may_move(VideoRequest.from_stored({"prompt": "p", "provider_chosen": False}))
    assert not may_move(VideoRequest.from_stored({"prompt": "p", "provider_chosen": True}))
    # Stored before the flag: as named.
    assert not may_move(VideoRequest.from_stored({"prompt": "p"}))


def test_a_move_leaves_the_old_note_and_unknown_keys_behind() -> None:
    cls = provider_class("foxapi")
    request = VideoRequest.from_stored(
        {
            "prompt": "p",
            "provider_chosen": False,
            "failover": {"from": "gptge", "tried": ["gptge"], "note": "gptge is unavailable"},
            "from_a_newer_version": 1,
        }
    )
    mapped = map_request(request, "foxapi", cls.capabilities)
    assert isinstance(mapped, VideoRequest)
    assert mapped.failover is None and mapped.extra == {}
    assert mapped.to_stored() == {"prompt": "p", "provider_chosen": False, "model": HH_T2V}


def _err(kind: ErrorKind, delivery: Delivery, status: int | None = None, code: str | None = None):
    return ProviderError(kind, "x", http_status=status, delivery=delivery, code=code)


def test_which_refusals_move_a_request_and_never_an_ambiguous_submit() -> None:
    R, A, N = Delivery.REFUSED, Delivery.AMBIGUOUS, Delivery.NOT_SENT
    assert refusal_moves(_err(ErrorKind.CREDITS, R, 402), retries_left=True)
    assert not refusal_moves(_err(ErrorKind.RATE_LIMITED, R, 429), retries_left=True)
    assert refusal_moves(_err(ErrorKind.RATE_LIMITED, R, 429), retries_left=False)
    assert refusal_moves(_err(ErrorKind.TRANSIENT, N, code="connection_error"), retries_left=True)
    assert not refusal_moves(_err(ErrorKind.TRANSIENT, A, 502), retries_left=False)
    assert not refusal_moves(
        _err(ErrorKind.TRANSIENT, A, code="connection_error"), retries_left=False
    )
    assert not refusal_moves(_err(ErrorKind.INVALID, R, 400), retries_left=False)
    assert not refusal_moves(_err(ErrorKind.TRANSIENT, N, code="timeout"), retries_left=False)


def test_the_first_failover_provider_that_is_up_and_fits_takes_it() -> None:
    caps = {pid: provider_class(pid).capabilities for pid in PROVIDER_IDS}
    models = {pid: provider_class(pid)(None).default_model() for pid in PROVIDER_IDS}  # type: ignore[arg-type]
    down, _ = apply(Health("foxapi"), Outcome.CREDITS, now=100.0)
    request = VideoRequest(prompt="p", duration=8, provider_chosen=False)
    order = ["hiapi", "higgsfield_feed", "foxapi", "gptge", "nope"]
    assert candidates("hiapi", order, caps) == ["higgsfield_feed", "foxapi", "gptge"]
    found, why = options(
        request,
        "hiapi",
        order=order,
        capabilities=caps,
        default_models=models,
        health={"foxapi": down},
        now=101.0,
    )
    assert [o.target for o in found] == ["gptge"]
    assert why == {"higgsfield_feed": "it only animates an image", "foxapi": "it is down too"}
    assert found[0].request.duration == 10
    note = moved_note("hiapi", "gptge", None, _err(ErrorKind.CREDITS, Delivery.REFUSED, 402))
    assert note == "hiapi is unavailable: sent to gptge (hiapi is out of credits)"
    assert moved_note("hiapi", "foxapi", None, None) == "hiapi is unavailable: sent to foxapi"
