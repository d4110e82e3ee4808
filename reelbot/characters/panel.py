"""What members read about characters: the panel at the top of a character's thread
(posted once, then edited as the character changes), the reply to posted photos, and
/character list."""

from __future__ import annotations

import logging

import discord

from reelbot import text
from reelbot.characters.photos import MAX_IMAGES, MIN_IMAGES, CollectResult
from reelbot.store.models import CharacterRow
from reelbot.vocabulary import NO_PINGS

log = logging.getLogger(__name__)

STATE_ICONS = {"collecting": "📸", "training": "⏳", "ready": "✅", "failed": "❌"}
PROBLEMS_SHOWN = 10  # problems listed in one reply to posted photos


def panel_text(character: CharacterRow) -> str:
    count = character.image_count
    lines = [f"📸 **Character `{character.name}`** — by <@{character.owner_id}>"]
    if character.state == "collecting":
        need = max(0, MIN_IMAGES - count)
        lines += [
            f"Photos collected: **{count}** (need {MIN_IMAGES}–{MAX_IMAGES}).",
            "Post clear photos of **one person** here (PNG, JPEG or WebP up to 20 MiB each, "
            "several per message is fine, or a .zip).",
            (
                f"{need} more to go."
                if need
                else f"Ready to train: run `/character train name:{character.name}`."
            ),
        ]
    elif character.state == "training":
        lines.append(f"Training on {character.provider} with {count} photos…")
    elif character.state == "ready":
        lines.append(f"✅ Ready. Use it with `/animate character:{character.name}`.")
    else:
        lines.append(f"❌ Training failed: {text.clip(character.error or 'unknown error', 400)}")
    return "\n".join(lines)


async def refresh(client: discord.Client, character: CharacterRow | None) -> None:
    """Edit the thread's panel to show ``character`` as it is now (if it has one)."""
    if character is None or not character.thread_id or not character.panel_message_id:
        return
    channel = client.get_partial_messageable(character.thread_id, guild_id=character.guild_id)
    try:
        await channel.get_partial_message(character.panel_message_id).edit(
            content=panel_text(character), allowed_mentions=NO_PINGS
        )
    except discord.HTTPException:
        log.info("character %s: panel message not editable", character.id)


def collected_text(result: CollectResult, total: int) -> str:
    """The reply to a message of photos: what was taken, what not and why."""
    parts = [f"Got {result.added} new photo(s) — {total} in total."]
    if result.duplicates:
        parts.append(f"{result.duplicates} duplicate(s) skipped.")
    if result.full:
        parts.append(f"{result.full} over the {MAX_IMAGES}-photo limit skipped.")
    if result.problems:
        parts.append("Not used: " + "; ".join(result.problems[:PROBLEMS_SHOWN]) + ".")
    return text.clip_message(" ".join(parts))


def listing_text(found: list[CharacterRow], viewer_id: int) -> str:
    """/character list: one line per character ``viewer_id`` can see."""
    if not found:
        return "No characters yet. Start one with `/character create`."
    lines = []
    for c in found:
        shared = " · shared" if c.shared else ""
        owner = "" if c.owner_id == viewer_id else f" · by <@{c.owner_id}>"
        lines.append(
            f"{STATE_ICONS.get(c.state, '')} **{c.name}** ({c.state}, "
            f"{c.image_count} photos, {c.provider}{shared}){owner}"
        )
    return text.clip_message("\n".join(lines))
