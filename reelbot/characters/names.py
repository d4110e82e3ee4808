"""How a character is named and referred to: the name rule, and ``#<id>`` references."""

from __future__ import annotations

import re

from reelbot.generations.service import UserError
from reelbot.store.models import CharacterRow

NAME_PATTERN = re.compile(r"^[\w][\w .'-]{0,31}$")


def validate_name(name: str) -> str:
    name = " ".join(name.split())
    if not NAME_PATTERN.match(name):
        raise UserError(
            "A character name is 1–32 letters, digits, spaces, `.`, `'` or `-`, "
            "starting with a letter or digit."
        )
    return name


def character_ref(character: CharacterRow) -> str:
    """What autocomplete sends for a character: ``#<id>``.

    Names start with a letter or digit (NAME_PATTERN), never ``#``, so a reference is
    never mistaken for a name and a name (even "7") never for an id.
    """
    return f"#{character.id}"


def matching(candidates: list[CharacterRow], ref: str) -> list[CharacterRow]:
    """The candidates ``ref`` names: by ``#<id>`` if it is one, else by name (any case)."""
    wanted = ref.strip()
    if wanted.startswith("#") and wanted[1:].isdigit():
        return [c for c in candidates if c.id == int(wanted[1:])]
    return [c for c in candidates if c.name.lower() == wanted.lower()]
