"""The stored training request and its one codec (reelbot/characters/model.py)."""

from __future__ import annotations

import pytest

from providers.base import TrainingRequest
from reelbot.characters.model import StoredTraining

STORED = {"name": "Ava", "character_id": 3, "some_future_key": {"kept": True}}


def test_a_round_trip_keeps_every_key_and_adds_none() -> None:
    assert StoredTraining.from_stored(STORED).to_stored() == STORED
    plain = {"name": "Ava", "character_id": 3}
    assert StoredTraining.from_stored(plain).to_stored() == plain


def test_known_keys_are_fields_and_unknown_ones_extra() -> None:
    training = StoredTraining.from_stored(STORED)
    assert (training.name, training.character_id) == ("Ava", 3)
    assert training.extra == {"some_future_key": {"kept": True}}


def test_what_is_built_is_what_is_read_back() -> None:
    stored = StoredTraining("Bo", 9).to_stored()
    assert stored == {"name": "Bo", "character_id": 9}
    assert StoredTraining.from_stored(stored) == StoredTraining("Bo", 9)


def test_a_known_key_wins_over_a_same_named_extra() -> None:
    # extra only ever holds keys the fields do not; one built by hand must not shadow them.
    training = StoredTraining("Cy", 4, extra={"name": "stale", "other": 1})
    assert training.to_stored() == {"name": "Cy", "character_id": 4, "other": 1}


def test_a_request_missing_a_key_is_refused_not_guessed() -> None:
    with pytest.raises(TypeError):
        StoredTraining.from_stored({"name": "Ava"})


def test_the_provider_is_asked_with_the_name_and_the_fresh_urls() -> None:
    urls = ("https://cdn/1.png", "https://cdn/2.png")
    asked = StoredTraining.from_stored(STORED).for_provider(urls)
    assert asked == TrainingRequest(name="Ava", image_urls=list(urls))
