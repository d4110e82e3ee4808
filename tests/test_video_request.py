"""The stored video request and its one codec (reelbot/generations/request.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from providers.base import InputImage
from reelbot.generations.request import Moved, VideoRequest, video_request
from tests.jobs.rows import finished_task

STORED = {
    "prompt": "a fox",
    "model": "m1",
    "image": {"sha256": "ab", "content_type": "image/png", "url": "https://x/y.png"},
    "seed": 7,
    "character_id": 3,
    "character_model_id": "prov-char-3",
    "some_future_key": {"kept": True},
}
# Every field this version knows, as /animate, a character and failover store it.
EVERY_FIELD: dict[str, Any] = {
    "prompt": "a fox",
    "model": "m1",
    "image": {"sha256": "ab", "content_type": "image/png", "status_message_id": 9},
    "duration": 6,
    "aspect_ratio": "9:16",
    "resolution": "720p",
    "seed": 0,
    "negative_prompt": "rain",
    "motion": "Face Punch",
    "character": "Tia",
    "character_id": 3,
    "character_model_id": "prov-char-3",
    "provider_chosen": False,
    "failover": {"from": "hiapi", "tried": ["hiapi"], "note": "hiapi is unavailable"},
}


def test_a_round_trip_keeps_every_key_and_adds_none() -> None:
    assert VideoRequest.from_stored(STORED).to_stored() == STORED
    assert VideoRequest.from_stored({"prompt": "p"}).to_stored() == {"prompt": "p"}


def test_every_field_is_decoded_into_its_own_attribute_and_back() -> None:
    request = VideoRequest.from_stored(EVERY_FIELD)
    assert request.extra == {}  # nothing this version knows is left untyped
    assert request.failover == Moved(origin="hiapi", tried=("hiapi",), note="hiapi is unavailable")
    assert request.tried == ("hiapi",) and request.has_character
    assert request.provider_chosen is False and request.seed == 0  # falsy, still stored
    assert request.to_stored() == EVERY_FIELD
    known = {f.name for f in dataclasses.fields(VideoRequest)} - {"extra"}
    assert known == set(EVERY_FIELD)


def test_a_failover_record_it_cannot_read_is_kept_as_it_was() -> None:
    stored = {"prompt": "p", "failover": "moved by a newer version"}
    request = VideoRequest.from_stored(stored)
    assert request.failover is None and request.tried == ()
    assert request.to_stored() == stored
    newer = {**EVERY_FIELD["failover"], "at": 1700000000}  # a key of a newer version
    assert VideoRequest.from_stored({"prompt": "p", "failover": newer}).to_stored() == {
        "prompt": "p",
        "failover": newer,
    }


def test_a_request_without_its_failover_record_keeps_everything_else() -> None:
    for record in (EVERY_FIELD["failover"], "moved by a newer version"):
        stored = {**EVERY_FIELD, "failover": record, "future": 1}
        unmoved = VideoRequest.from_stored(stored).unmoved()
        assert unmoved.to_stored() == {k: v for k, v in stored.items() if k != "failover"}


def test_a_training_s_request_is_not_a_video_request() -> None:
    with pytest.raises(ValueError, match="no prompt"):
        VideoRequest.from_stored({"name": "Tia", "character_id": 3})
    training = finished_task(kind="training", request={"name": "Tia", "character_id": 3})
    with pytest.raises(ValueError, match="training"):
        VideoRequest.of(training)
    assert video_request(training) is None
    video = video_request(finished_task(request=EVERY_FIELD))
    assert video is not None and video.prompt == "a fox"


def test_the_provider_is_asked_with_the_provider_s_character_id() -> None:
    image = InputImage(url="https://x/y.png", data=b"", content_type="image/png")
    asked = VideoRequest.from_stored(STORED).generation(image)
    assert asked.prompt == "a fox" and asked.model == "m1" and asked.seed == 7
    assert asked.character_id == "prov-char-3" and asked.image is image
    assert asked.duration is None
