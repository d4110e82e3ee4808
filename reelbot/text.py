"""Outgoing text, clipped to Discord's limits (shared/DISCORD.md §6).

Every string the bot sends to Discord that it did not write itself in full
(provider error codes and states, model names, URLs, file names, what a member
typed) passes through here. Discord refuses an over-long field with
400/50035 and never shortens anything itself, so we do, visibly.

Lengths are checked both in Unicode code points and in UTF-16 code units (the
docs do not say which Discord counts; an astral-plane emoji is one of the first
and two of the second), so clipped text fits under either reading. A cut never
splits a surrogate pair (Python strings hold code points), a combining sequence,
a ``<@id>``/``<#id>``/``<t:…>`` token, a markdown link or inline code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

# Limits (shared/DISCORD.md §6).
CONTENT = 2000
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_TOTAL = 6000
MAX_EMBEDS = 10
FILENAME = 1024
THREAD_NAME = 100
CHOICE_NAME = 100
CHOICE_VALUE = 100
MAX_CHOICES = 25
BUTTON_LABEL = 80
OPTION_MAX_LENGTH = 6000  # the most a string option may declare, and what Discord accepts
ArchiveDuration = Literal[60, 1440, 4320, 10080]
THREAD_ARCHIVE_DURATIONS: tuple[ArchiveDuration, ...] = (60, 1440, 4320, 10080)

ELLIPSIS = "…"
SHORTENED = "\n-# (shortened to fit Discord's limit)"

# Tokens a cut must not land inside: mentions, channel links, timestamps, custom
# emoji, masked links and inline code.
_TOKEN = re.compile(
    r"<@[!&]?\d+>|<#\d+>|<t:-?\d+(?::[tTdDfFR])?>|<a?:\w+:\d+>"
    r"|\[[^\]\n]*\]\([^)\s]*\)|`[^`\n]*`"
)
# Code points that belong to the character before them: a cut just before one
# would leave a base without its accent, skin tone or joined emoji.
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f"}


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def size(text: str) -> int:
    """The larger of the two counts Discord might use."""
    return max(len(text), utf16_len(text))


def fits(text: str, limit: int) -> bool:
    return size(text) <= limit


def _attached(ch: str) -> bool:
    return (
        ch in _JOINERS
        or unicodedata.combining(ch) != 0
        or 0x1F3FB <= ord(ch) <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= ord(ch) <= 0xE007F  # emoji tag sequences (flags)
    )


def _cut_point(text: str, budget: int) -> int:
    """The largest index ``i`` with ``size(text[:i]) <= budget``, moved back so the
    cut lands between whole characters and outside any token."""
    index = units = 0
    for ch in text:
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > budget:
            break
        index += 1
    # Never leave a joiner, accent or the second half of a ZWJ emoji dangling.
    while 0 < index < len(text) and (_attached(text[index]) or text[index - 1] == "\u200d"):
        index -= 1
    for match in _TOKEN.finditer(text, 0, len(text)):
        if match.start() >= index:
            break
        if match.start() < index < match.end():
            index = match.start()
            break
    return index


def clip(text: str, limit: int, *, marker: str = ELLIPSIS) -> str:
    """``text`` if it fits ``limit``; else its longest clean prefix plus ``marker``."""
    if fits(text, limit):
        return text
    if size(marker) >= limit:
        marker = ""
    budget = limit - size(marker)
    return text[: _cut_point(text, budget)].rstrip() + marker


def clip_message(
    head: str, tail: str = "", *, limit: int = CONTENT, marker: str = SHORTENED
) -> str:
    """``head + tail`` within ``limit``, shortening ``head`` only.

    ``tail`` is what must survive (a footer such as ``-# Task #12`` that other
    code looks for); ``marker`` says, in the message, that it was shortened.
    """
    whole = head + tail
    if fits(whole, limit):
        return whole
    room = limit - size(tail)
    if room <= size(marker):
        return clip(whole, limit)
    return clip(head, room, marker=marker) + tail


def clip_filename(name: str, limit: int = FILENAME) -> str:
    """A file name within ``limit``, keeping its extension (so Discord embeds it)."""
    if fits(name, limit):
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or size(ext) > 16:
        return clip(name, limit, marker="")
    return clip(stem, limit - size(ext) - 1, marker="") + "." + ext


def clip_thread_name(name: str, fallback: str) -> str:
    """A thread name of 1–100 characters on one line."""
    name = " ".join(name.split())
    return clip(name, THREAD_NAME) if name else clip(fallback, THREAD_NAME)


def archive_duration(minutes: int) -> ArchiveDuration:
    """The nearest ``auto_archive_duration`` Discord accepts, not shorter than asked."""
    for allowed in THREAD_ARCHIVE_DURATIONS:
        if minutes <= allowed:
            return allowed
    return THREAD_ARCHIVE_DURATIONS[-1]


def choices(items: Iterable[tuple[str, str]], limit: int = MAX_CHOICES) -> list[tuple[str, str]]:
    """Autocomplete choices Discord accepts: at most 25, names 1–100 (clipped),
    values 1–100. A longer value is dropped, not clipped: a shortened id would
    name a different thing (or nothing)."""
    kept: list[tuple[str, str]] = []
    for name, value in items:
        if not value or not fits(value, CHOICE_VALUE):
            continue
        label = " ".join(name.split()) or value
        kept.append((clip(label, CHOICE_NAME), value))
        if len(kept) >= limit:
            break
    return kept


def masked_link(label: str, url: str) -> str:
    """``[label](url)``, with the characters that would end the link escaped."""
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label.replace(']', '')}]({safe})"
