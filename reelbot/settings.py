"""Server settings (SPEC §3 "/settings"): where /animate works, what it refuses, and
this server's default provider and model.

The rules live here, not in cogs: ``Generations.create`` calls :meth:`check_request`
for every entry point (/animate, 🔁, the buttons, re-runs of character videos), and the
/settings cog only parses options, calls one method and sends the text it gets back.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from providers.base import Provider
from reelbot import messages, text
from reelbot.config import Config
from reelbot.store.base import Store
from reelbot.store.models import GuildSettings

MAX_BANNED = 200  # entries per server
MAX_ENTRY = 100  # characters of one banned word or phrase
AUDIT_PAGE = 10


class SettingsError(Exception):
    """A refused request or setting; the message is shown to the user, ephemerally.

    Callers turn it into ``reelbot.generations.service.UserError`` (this module cannot import the
    service, which calls it)."""


def normalise(value: str) -> str:
    """NFKC and casefold: ``ＡＳＳ``, ``Ass`` and ``ass`` are one word."""
    return unicodedata.normalize("NFKC", value).casefold()


def _word_char(ch: str) -> bool:
    # Unicode letters, digits and combining marks make words (not ASCII \\b).
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def words_of(value: str) -> list[str]:
    """The words of a text, normalised; everything else (spaces, punctuation, emoji)
    separates them."""
    out: list[str] = []
    current: list[str] = []
    for ch in normalise(value):
        if _word_char(ch):
            current.append(ch)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out


def banned_entry(raw: str) -> str | None:
    """How a banned word or phrase is stored: its words, normalised, space-separated."""
    found = words_of(raw)
    return " ".join(found) if found else None


def find_banned(value: str, entries: Iterable[str]) -> str | None:
    """The first banned entry that occurs in ``value`` as whole words (a phrase across
    any run of whitespace or punctuation), else None."""
    words = words_of(value)
    for entry in entries:
        needle = entry.split(" ")
        n = len(needle)
        if any(words[i : i + n] == needle for i in range(len(words) - n + 1)):
            return entry
    return None


def _split_words(words: str) -> list[str]:
    entries: list[str] = []
    for raw in words.split(","):
        entry = banned_entry(raw)
        if entry is None:
            continue
        if len(entry) > MAX_ENTRY:
            raise SettingsError(
                f"“{messages.short(entry, 40)}” is longer than {MAX_ENTRY} characters."
            )
        if entry not in entries:
            entries.append(entry)
    if not entries:
        raise SettingsError(
            "Give one or more words or phrases, separated by commas (e.g. `gore, blood bath`)."
        )
    return entries


def _list(items: list[str], *, empty: str) -> str:
    return ", ".join(items) if items else empty


class ServerSettings:
    def __init__(self, *, config: Config, store: Store, providers: Mapping[str, Provider]) -> None:
        self.config = config
        self.store = store
        self.providers = providers

    async def audit(
        self, guild_id: int, actor_id: int, action: str, *, target_id: int | None, details: str
    ) -> None:
        await self.store.audit(
            guild_id, actor_id, action, target_id=target_id, details=details, now=time.time()
        )

    # --- checks for every entry point -----------------------------------------------------------
    async def check_request(
        self, guild_id: int, channel_id: int, requester_id: int, request: Mapping[str, Any]
    ) -> None:
        """Raise SettingsError when this server does not allow the request: outside the
        allowed channels (``channel_id`` is the parent of a thread), or a banned word
        in the prompt or negative prompt (audited with the matched entry only)."""
        settings = await self.store.guild_settings(guild_id)
        if settings.allowed_channels and channel_id not in settings.allowed_channels:
            where = ", ".join(f"<#{c}>" for c in sorted(settings.allowed_channels))
            raise SettingsError(
                text.clip_message(
                    f"/animate does not work in this channel on this server. Use it in {where} "
                    "(or a thread there)."
                )
            )
        for field_name, label in (("prompt", "prompt"), ("negative_prompt", "negative prompt")):
            value = request.get(field_name)
            if not value:
                continue
            match = find_banned(str(value), settings.banned_words)
            if match is not None:
                # The audit keeps who, when and the entry matched: never the prompt.
                await self.audit(
                    guild_id,
                    requester_id,
                    "banned_word_refused",
                    target_id=requester_id,
                    details=f"{field_name} matched “{match}”",
                )
                raise SettingsError(
                    f"Your {label} contains “{messages.short(match, MAX_ENTRY)}”, which this "
                    "server does not allow. Nothing was submitted and no credits were used."
                )

    async def defaults(self, guild_id: int) -> tuple[str | None, str | None]:
        """This server's default provider and model, when that provider is configured."""
        settings = await self.store.guild_settings(guild_id)
        if settings.default_provider and settings.default_provider in self.providers:
            return settings.default_provider, settings.default_model
        return None, None

    # --- /settings --------------------------------------------------------------------------------
    async def show(self, guild_id: int) -> str:
        s = await self.store.guild_settings(guild_id)
        channels = _list([f"<#{c}>" for c in sorted(s.allowed_channels)], empty="every channel")
        provider = s.default_provider or f"{self.config.default_provider or 'first configured'}"
        source = "server setting" if s.default_provider else "bot default"
        model = s.default_model or "the provider's default"
        lines = [
            "**Server settings**",
            f"/animate works in: {channels}",
            f"Default provider: `{provider}` ({source}); model: {messages.short(model, 100)}",
            f"Banned words and phrases: {len(s.banned_words)} (see `/settings banned-words list`)",
            _spending_line(s, self.config),
        ]
        return text.clip_message("\n".join(lines))

    async def set_channel(
        self, guild_id: int, actor_id: int, channel_id: int, allowed: bool
    ) -> str:
        old = await self.store.set_entry(
            guild_id, "channel", str(channel_id), 1 if allowed else None
        )
        was = old is not None
        await self.audit(
            guild_id,
            actor_id,
            "settings_channel",
            target_id=channel_id,
            details=f"<#{channel_id}> allowed: {was} → {allowed}",
        )
        left = (await self.store.guild_settings(guild_id)).allowed_channels
        if left:
            where = ", ".join(f"<#{c}>" for c in sorted(left))
            return text.clip_message(f"/animate now works only in {where} (and their threads).")
        return "No channel is restricted any more: /animate works in every channel."

    async def add_words(self, guild_id: int, actor_id: int, words: str) -> str:
        entries = _split_words(words)
        current = set((await self.store.guild_settings(guild_id)).banned_words)
        new = [e for e in entries if e not in current]
        if len(current) + len(new) > MAX_BANNED:
            raise SettingsError(f"A server can ban at most {MAX_BANNED} words and phrases.")
        for entry in new:
            await self.store.set_entry(guild_id, "banned_word", entry, 0)
            await self.audit(
                guild_id,
                actor_id,
                "banned_word_add",
                target_id=None,
                details=f"“{entry}”: absent → banned",
            )
        known = [e for e in entries if e in current]
        reply = f"Banned {len(new)} new: {_list([f'“{e}”' for e in new], empty='none')}."
        if known:
            reply += f" Already banned: {', '.join(f'“{e}”' for e in known)}."
        return text.clip_message(reply)

    async def remove_words(self, guild_id: int, actor_id: int, words: str) -> str:
        entries = _split_words(words)
        removed, missing = [], []
        for entry in entries:
            old = await self.store.set_entry(guild_id, "banned_word", entry, None)
            if old is None:
                missing.append(entry)
                continue
            removed.append(entry)
            await self.audit(
                guild_id,
                actor_id,
                "banned_word_remove",
                target_id=None,
                details=f"“{entry}”: banned → absent",
            )
        reply = f"Removed {len(removed)}: {_list([f'“{e}”' for e in removed], empty='none')}."
        if missing:
            reply += f" Not banned: {', '.join(f'“{e}”' for e in missing)}."
        return text.clip_message(reply)

    async def list_words(self, guild_id: int) -> str:
        words = (await self.store.guild_settings(guild_id)).banned_words
        if not words:
            return "No banned words or phrases on this server."
        return text.clip_message(
            f"**{len(words)} banned word(s) and phrase(s):** " + ", ".join(f"“{w}”" for w in words)
        )

    async def set_defaults(
        self, guild_id: int, actor_id: int, provider: str | None, model: str | None
    ) -> str:
        if provider is None and model is not None:
            raise SettingsError("Name the provider the model belongs to.")
        if provider is not None:
            chosen = self.providers.get(provider)
            if chosen is None:
                raise SettingsError(
                    f"`{messages.short(provider, 40)}` is not a provider this bot offers. "
                    f"Choose one of: {', '.join(self.providers)}."
                )
            known = chosen.models()
            if model is not None and known and model not in known:
                raise SettingsError(
                    f"`{messages.short(model, 100)}` is not a model of `{provider}` "
                    f"(e.g. {', '.join(f'`{m}`' for m in known[:5])})."
                )
        old = await self.store.set_guild_config(
            guild_id, default_provider=provider, default_model=model
        )
        await self.audit(
            guild_id,
            actor_id,
            "settings_defaults",
            target_id=None,
            details=(
                f"provider {old.get('default_provider') or 'bot default'} → "
                f"{provider or 'bot default'}; model {old.get('default_model') or 'default'} "
                f"→ {model or 'default'}"
            ),
        )
        if provider is None:
            return "This server now uses the bot's default provider and model."
        return f"/animate without a provider now uses `{provider}`" + (
            f" with model `{messages.short(model, 100)}`." if model else "."
        )

    async def audit_text(self, guild_id: int, page: int) -> str:
        page = max(1, page)
        entries = await self.store.audit_page(
            guild_id, offset=(page - 1) * AUDIT_PAGE, limit=AUDIT_PAGE
        )
        if not entries:
            return f"No audit entries on page {page}."
        lines = [f"**Audit log, page {page}** (newest first)"]
        budget = (text.CONTENT - 200) // AUDIT_PAGE
        for e in entries:
            target = _target(e["action"], e["target_id"])
            line = (
                f"<t:{int(e['at'])}:f> <@{e['actor_id']}> `{e['action']}`{target}: "
                f"{e['details'] or ''}"
            )
            lines.append(text.clip(line, budget))
        if len(entries) == AUDIT_PAGE:
            lines.append(f"-# More: `/settings audit page:{page + 1}`")
        return text.clip_message("\n".join(lines))


_USER_TARGETS = ("quota_set", "quota_reset", "banned_word_refused", "cancel")


def _target(action: str, target_id: int | None) -> str:
    """Who or what an audit entry was about, as a mention that renders (never pings)."""
    if target_id is None:
        return ""
    if action in _USER_TARGETS:
        return f" → <@{target_id}>"
    if action == "quota_role":
        return f" → <@&{target_id}>"
    return ""


def _spending_line(s: GuildSettings, config: Config) -> str:
    budget = f"{s.server_budget} credits/day" if s.server_budget else "unlimited"
    default = s.daily_default if s.daily_default is not None else config.daily_quota
    prices = ", ".join(f"{p} {c}" for p, c in sorted(s.prices.items())) or "1 credit each"
    return (
        f"Server budget: {budget}; member default: "
        f"{'unlimited' if default == 0 else f'{default} credits/day'}; "
        f"role limits: {len(s.role_limits)}; prices: {prices}"
    )
