"""The stored video request and its one codec (reelbot/jobs/model.py)."""

from __future__ import annotations

from providers.base import InputImage
from reelbot.jobs.model import VideoRequest

STORED = {
    "prompt": "a fox",
    "model": "m1",
    "image": {"sha256": "ab", "content_type": "image/png", "url": "https://x/y.png"},
    "seed": 7,
    "character_id": 3,
    "character_model_id": "prov-char-3",
    "some_future_key": {"kept": True},
}


def test_a_round_trip_keeps_every_key_and_adds_none() -> None:
    assert VideoRequest.from_stored(STORED).to_stored() == STORED
    assert VideoRequest.from_stored({"prompt": "p"}).to_stored() == {"prompt": "p"}


def test_the_provider_is_asked_with_the_provider_s_character_id() -> None:
    image = InputImage(url="https://x/y.png", data=b"", content_type="image/png")
    asked = VideoRequest.from_stored(STORED).generation(image)
    assert asked.prompt == "a fox" and asked.model == "m1" and asked.seed == 7
    assert asked.character_id == "prov-char-3" and asked.image is image
    assert asked.duration is None
