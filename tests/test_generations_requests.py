"""Requests built from requests: Vary and Remix (reelbot/generations/service.py), pure."""

from __future__ import annotations

import pytest

from reelbot.generations.request import Moved, VideoRequest
from reelbot.generations.service import MAX_SEED, new_seed, remix, vary
from reelbot.generations.validation import UserError

ASKED = VideoRequest(
    prompt="a fox",
    model="m1",
    image={"sha256": "ab", "content_type": "image/png"},
    duration=6,
    seed=7,
    negative_prompt="rain",
    character_id=3,
    provider_chosen=False,
    failover=Moved(origin="hiapi", tried=("hiapi",), note="hiapi is unavailable"),
    extra={"from_a_newer_version": 1},
)


def test_vary_changes_the_seed_and_nothing_else() -> None:
    varied = vary(ASKED)
    assert varied.seed != ASKED.seed and 0 <= (varied.seed or 0) <= MAX_SEED
    assert varied.to_stored() == {**ASKED.to_stored(), "seed": varied.seed}


def test_a_new_seed_is_never_the_old_one() -> None:
    assert all(new_seed(0) != 0 for _ in range(200))
    assert 0 <= new_seed(None) <= MAX_SEED


def test_remix_changes_the_prompt_and_keeps_the_rest() -> None:
    remixed = remix(ASKED, "  a wolf  ", None)  # the form had no negative prompt field
    assert remixed.to_stored() == {**ASKED.to_stored(), "prompt": "a wolf"}


def test_remix_replaces_or_removes_the_negative_prompt() -> None:
    assert remix(ASKED, "a wolf", " snow ").negative_prompt == "snow"
    cleared = remix(ASKED, "a wolf", "   ")
    assert cleared.negative_prompt is None and "negative_prompt" not in cleared.to_stored()


@pytest.mark.parametrize(
    ("prompt", "negative"), [("", None), ("a\u200bwolf", None), ("ok", "\u202e")]
)
def test_remix_checks_what_was_typed_like_a_new_request(prompt: str, negative: str | None) -> None:
    with pytest.raises(UserError):
        remix(ASKED, prompt, negative)
