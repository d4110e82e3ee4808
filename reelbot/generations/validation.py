"""Input validation: what a member typed is text we can store and show.

``clean_text`` trims a prompt and refuses what would hide or disguise text (invisible
format characters, bidi overrides, blank letters) while allowing what real text and
emoji use; ``hidden_character`` says where and why. :class:`UserError` is every
refusal's type: the cogs show its message to the member, ephemerally.
"""

from __future__ import annotations

import unicodedata


class UserError(Exception):
    """Bad input or a refused action; the message is shown to the user, ephemerally."""


def clean_text(value: str, *, field: str, limit: int) -> str:
    """Trimmed text without hidden characters (newlines, tabs and emoji sequences are fine)."""
    value = value.strip()
    if not value:
        raise UserError(f"The {field} is empty. Describe what you want to see.")
    if len(value) > limit:
        raise UserError(f"The {field} is {len(value)} characters long; the limit is {limit}.")
    hidden = hidden_character(value)
    if hidden is not None:
        index, why = hidden
        raise UserError(
            f"The {field} contains an invisible control character "
            f"(U+{ord(value[index]):04X}{why}); please remove it."
        )
    return value


# --- what counts as hidden ----------------------------------------------------------------
# Python's unicodedata has no Extended_Pictographic property: these ranges cover it
# (and the Unicode 15+ emoji that this Python still lists as unassigned).
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x21AA), (0x231A, 0x23FF),
    (0x24C2, 0x24C2), (0x25AA, 0x25FE), (0x2600, 0x27BF), (0x2934, 0x2935),
    (0x2B05, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299),
    (0x1F000, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
# Scripts whose spelling uses ZWJ/ZWNJ (Arabic, Syriac, Thaana, N'Ko, Indic, Sinhala,
# Tibetan, Myanmar, Khmer, Mongolian...): a joiner after their letters is real text.
_JOINING_SCRIPTS = (
    (0x0600, 0x08FF), (0x0900, 0x0DFF), (0x0F00, 0x0FFF), (0x1000, 0x109F),
    (0x1780, 0x18AF), (0xA8E0, 0xA8FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),
)  # fmt: skip
_RTL_SCRIPTS = ((0x0590, 0x08FF), (0xFB1D, 0xFDFF), (0xFE70, 0xFEFF), (0x10800, 0x10FFF))
ZWJ, ZWNJ, VS16, BLACK_FLAG, CANCEL_TAG = 0x200D, 0x200C, 0xFE0F, 0x1F3F4, 0xE007F
# Embeddings, overrides and isolates reorder what follows ("Trojan Source").
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_DIRECTION_MARKS = frozenset({0x200E, 0x200F, 0x061C})  # LRM, RLM, ALM: only in RTL text
_BLANK_LETTERS = frozenset({0x3164, 0xFFA0})  # Hangul fillers: letters that show nothing
_TAG_SPEC = frozenset(range(0xE0030, 0xE003A)) | frozenset(range(0xE0061, 0xE007B))
_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn")


def _within(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_selector(cp: int) -> bool:
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _flag_tag_end(cps: list[int], i: int) -> int | None:
    """Index after a valid flag tag sequence starting at ``cps[i]`` (🏴 + 2–7 tag letters
    or digits + CANCEL TAG, as in 🏴󠁧󠁢󠁳󠁣󠁴󠁿), else None."""
    j = i + 1
    while j < len(cps) and cps[j] in _TAG_SPEC:
        j += 1
    if 2 <= j - i - 1 <= 7 and j < len(cps) and cps[j] == CANCEL_TAG:
        return j + 1
    return None


def hidden_character(value: str) -> tuple[int, str] | None:
    """(index, why) of the first character that hides or disguises text, or None.

    Allowed: ZWJ between emoji (👨‍👩‍👧, 🧑🏽‍🚀) and after letters of scripts that spell with
    it, ZWNJ after such letters (Persian), one variation selector after a visible base
    (❤️, ☺︎, keycaps 1️⃣), tag characters only inside a flag tag sequence, and direction
    marks only in text that has right-to-left letters. Refused: other format and control
    characters (zero-width spaces, word joiners, soft hyphens, BOMs), bidi embeddings,
    overrides and isolates, blank letters, private-use and unassigned code points.
    """
    cps = [ord(ch) for ch in value]
    has_rtl = any(_within(cp, _RTL_SCRIPTS) for cp in cps)
    i = 0
    while i < len(cps):
        cp = cps[i]
        prev = cps[i - 1] if i else None
        nxt = cps[i + 1] if i + 1 < len(cps) else None
        if cp == BLACK_FLAG and nxt is not None and 0xE0000 <= nxt <= 0xE007F:
            end = _flag_tag_end(cps, i)
            if end is None:
                return i + 1, ", a tag character outside a flag"
            i = end
            continue
        if _is_selector(cp):
            base = value[i - 1] if i else ""
            if (
                not base
                or base.isspace()
                or _is_selector(prev or 0)
                or (unicodedata.category(base) in _REFUSED_CATEGORIES)
            ):
                return i, ", a variation selector without a character to vary"
        elif cp in (ZWJ, ZWNJ):
            before = cps[i - 2] if prev == VS16 and i >= 2 else prev
            between_emoji = (
                cp == ZWJ
                and before is not None
                and nxt is not None
                and _within(before, _PICTOGRAPHIC)
                and _within(nxt, _PICTOGRAPHIC)
            )
            in_script = prev is not None and _within(prev, _JOINING_SCRIPTS)
            if not (between_emoji or in_script) or nxt in (ZWJ, ZWNJ):
                return i, ", a zero-width joiner outside an emoji or a word"
        elif cp in _DIRECTION_MARKS:
            if not has_rtl:
                return i, ", a direction mark in left-to-right text"
        elif cp in _BIDI_CONTROLS:
            return i, ", a text-direction control that can disguise the text"
        elif cp in _BLANK_LETTERS:
            return i, ", a blank filler"
        elif value[i] not in "\n\t":
            category = unicodedata.category(value[i])
            if category in _REFUSED_CATEGORIES and not (
                category == "Cn" and _within(cp, _PICTOGRAPHIC)  # newer emoji
            ):
                return i, ""
        i += 1
    return None
