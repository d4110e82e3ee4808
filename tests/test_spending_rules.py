"""The pure rules behind /settings and spending: banned-word matching and limit choice."""

from __future__ import annotations

import pytest

from reelbot.settings import banned_entry, find_banned, words_of
from reelbot.store.models import BudgetExceeded, QuotaExceeded, QuotaStatus
from reelbot.store.shared import check_charge, resolve_limit

BANNED = [banned_entry(w) for w in ("ass", "blood bath", "Straße", "кровь")]


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        ("an ASS here", "ass"),
        ("what an ass!", "ass"),
        ("(ass)", "ass"),
        ("ＡＳＳ", "ass"),  # fullwidth: NFKC
        ("a BLOOD bath", "blood bath"),
        ("blood...\n\tbath", "blood bath"),  # a phrase across punctuation and whitespace
        ("STRASSE", "strasse"),  # casefold: ß = ss
        ("Кровь на снегу", "кровь"),  # Cyrillic, upper case
        ("a classic car", None),  # near miss: not a whole word
        ("assassin in a passage", None),
        ("bloodbath", None),
        ("blood and bath", None),
        ("кровью", None),  # a longer Cyrillic word
        ("ass̈", None),  # a combining mark belongs to the word
    ],
)
def test_banned_words_are_whole_words_case_insensitive_and_unicode_aware(
    prompt: str, match: str | None
) -> None:
    assert find_banned(prompt, BANNED) == match


def test_entries_are_stored_normalised() -> None:
    assert banned_entry("  Blood,  ") == "blood"
    assert banned_entry("Blood   BATH") == "blood bath"
    assert banned_entry("!!!") is None
    assert words_of("a-b c") == ["a", "b", "c"]


def test_limit_resolution_order() -> None:
    def pick(**kw):
        args = dict(
            user_limit=None, role_limits={}, role_ids=(), guild_default=None, global_default=10
        )
        args.update(kw)
        return resolve_limit(**args)

    assert pick() == (10, "default", None)
    assert pick(guild_default=3) == (3, "guild", None)
    assert pick(guild_default=3, role_limits={1: 2, 2: 7}, role_ids=(1, 2)) == (7, "role", 2)
    assert pick(role_limits={1: 2, 2: 0}, role_ids=(1, 2)) == (0, "role", 2)
    assert pick(role_limits={1: 2}, role_ids=(5,), guild_default=4) == (4, "guild", None)
    assert pick(user_limit=1, role_limits={1: 9}, role_ids=(1,)) == (1, "user", None)


def status(**kw) -> QuotaStatus:
    base = dict(limit=5, used=4, day="2026-12-01", resets_at=0.0, source="user")
    base.update(kw)
    return QuotaStatus(**base)


def test_budget_binds_even_unenforced_requests_and_the_limit_only_enforced_ones() -> None:
    check_charge(status(), 1, enforce=True)
    with pytest.raises(QuotaExceeded):
        check_charge(status(), 2, enforce=True)
    check_charge(status(), 2, enforce=False)
    with pytest.raises(BudgetExceeded):
        check_charge(status(server_used=9, server_limit=10), 2, enforce=False)
    check_charge(status(limit=0, server_used=8, server_limit=10), 2, enforce=True)
