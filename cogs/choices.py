"""Autocomplete answers for every cog, within Discord's limits (reelbot.text.choices)."""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from reelbot import text


def choices(items: Iterable[tuple[str, str]]) -> list[app_commands.Choice[str]]:
    """(name, value) pairs as choices: at most 25, names clipped, over-long values dropped."""
    return [app_commands.Choice(name=n, value=v) for n, v in text.choices(items)]
