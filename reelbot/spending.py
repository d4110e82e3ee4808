"""Spending (SPEC §3 "Spending"): what a request costs in credits, which daily limit a
member has, the server's budget, and /quota's answers and changes (all audited).

The atomic check-and-charge itself is the store's (``create_task``/``start_training``,
store/shared.py); this module decides the price and the policy handed to it, and
builds what /quota shows. The /quota cog only parses options and replies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence

import discord

from reelbot import text
from reelbot.config import Config
from reelbot.settings import SettingsError
from reelbot.store.base import Store
from reelbot.store.models import QuotaPolicy, QuotaStatus, UsageSummary

log = logging.getLogger(__name__)

RolesOf = Callable[[int, int], Awaitable[Sequence[int]]]
RoleName = Callable[[int], str | None]
TOP_SPENDERS = 5


async def _no_roles(guild_id: int, user_id: int) -> Sequence[int]:
    return ()


def member_roles_via(client: discord.Client) -> RolesOf:
    """A member's role ids: from the cache, else one REST lookup; none if unknown."""

    async def roles_of(guild_id: int, user_id: int) -> Sequence[int]:
        guild = client.get_guild(guild_id)
        if guild is None:
            return ()
        member = guild.get_member(user_id)
        if member is None:
            try:
                member = await guild.fetch_member(user_id)
            except discord.HTTPException:
                log.debug("could not look up the roles of %s in %s", user_id, guild_id)
                return ()
        return tuple(r.id for r in member.roles)

    return roles_of


def limit_text(limit: int) -> str:
    if limit == 0:
        return "unlimited credits"
    return f"{limit} credit{'' if limit == 1 else 's'} per day"


def source_text(status: QuotaStatus, role_name: RoleName) -> str:
    if status.source == "user":
        return "a personal limit"
    if status.source == "role":
        name = role_name(status.role_id) if status.role_id is not None else None
        return f"the role **{text.clip(name, 100)}**" if name else f"role <@&{status.role_id}>"
    if status.source == "guild":
        return "the server default"
    return "the bot's global default (DAILY_QUOTA)"


class Spending:
    def __init__(self, *, config: Config, store: Store, roles_of: RolesOf | None = None) -> None:
        self.config = config
        self.store = store
        self.roles_of: RolesOf = roles_of or _no_roles

    async def audit(
        self, guild_id: int, actor_id: int, action: str, *, target_id: int | None, details: str
    ) -> None:
        await self.store.audit(
            guild_id, actor_id, action, target_id=target_id, details=details, now=time.time()
        )

    # --- what creation needs ---------------------------------------------------------------
    async def price(self, guild_id: int, provider_id: str) -> int:
        """Credits one generation on this provider costs in this server (1 unless set)."""
        return await self.store.credit_price(guild_id, provider_id)

    async def policy(
        self,
        guild_id: int,
        user_id: int,
        *,
        is_moderator: bool,
        role_ids: Sequence[int] | None = None,
        cooldown: bool = True,
    ) -> QuotaPolicy:
        if role_ids is None:
            role_ids = await self.roles_of(guild_id, user_id)
        return QuotaPolicy(
            default_limit=self.config.daily_quota,
            cooldown=0.0 if is_moderator or not cooldown else self.config.user_cooldown,
            max_in_flight=0 if is_moderator else self.config.max_user_in_flight,
            role_ids=tuple(role_ids),
        )

    # --- /quota show --------------------------------------------------------------------------
    async def show(
        self,
        guild_id: int,
        target_id: int,
        *,
        own: bool,
        target_roles: Sequence[int],
        role_name: RoleName,
        is_moderator: bool,
    ) -> str:
        now = time.time()
        status = await self.store.quota_status(
            guild_id,
            target_id,
            now=now,
            default_limit=self.config.daily_quota,
            role_ids=target_roles,
        )
        usage = await self.store.usage_summary(guild_id, target_id)
        whose = "You have" if own else f"<@{target_id}> has"
        limit = "no daily limit" if status.limit == 0 else f"a limit of {status.limit}"
        budget = (
            f"of its {status.server_limit} credit budget"
            if status.server_limit
            else "(no server budget)"
        )
        lines = [
            f"{whose} used **{status.used}** credit(s) today, with {limit} "
            f"(from {source_text(status, role_name)}; {_legacy(status.source)} setting).",
            f"Server today: **{status.server_used}** credit(s) spent {budget}.",
            f"Resets <t:{int(status.resets_at)}:R> (<t:{int(status.resets_at)}:f>).",
            _provider_usage(usage),
        ]
        if is_moderator:
            top = await self.store.top_spenders(guild_id, now=now, limit=TOP_SPENDERS)
            if top:
                lines.append("Top spenders today: " + ", ".join(f"<@{u}> {c}" for u, c in top))
        return text.clip_message("\n".join(line for line in lines if line))

    # --- moderator changes ---------------------------------------------------------------------
    async def set_user(self, guild_id: int, actor_id: int, user_id: int, limit: int) -> str:
        old = await self.store.user_limit(guild_id, user_id)
        await self.store.set_user_limit(guild_id, user_id, limit)
        await self.audit(
            guild_id, actor_id, "quota_set", target_id=user_id,
            details=f"user limit {_old(old)} → {limit}",
        )  # fmt: skip
        return f"<@{user_id}> can now use {limit_text(limit)}."

    async def set_default(self, guild_id: int, actor_id: int, limit: int) -> str:
        old = (await self.store.guild_settings(guild_id)).daily_default
        await self.store.set_guild_default(guild_id, limit)
        await self.audit(
            guild_id, actor_id, "quota_default", target_id=None,
            details=f"server default {_old(old)} → {limit}",
        )  # fmt: skip
        return f"Members without their own or a role limit can now use {limit_text(limit)}."

    async def set_role(
        self, guild_id: int, actor_id: int, role_id: int, role: str, limit: int | None
    ) -> str:
        old = await self.store.set_entry(guild_id, "role_limit", str(role_id), limit)
        await self.audit(
            guild_id, actor_id, "quota_role", target_id=role_id,
            details=f"role {text.clip(role, 100)} limit {_old(old)} → {_old(limit)}",
        )  # fmt: skip
        name = text.clip(role, 100)
        if limit is None:
            return f"The role **{name}** no longer has its own limit."
        return f"Members with **{name}** can now use {limit_text(limit)} (highest role wins)."

    async def set_cost(
        self, guild_id: int, actor_id: int, provider: str, credits: int, *, offered: Collection[str]
    ) -> str:
        """Price ``provider`` (one of ``offered``, the providers this bot runs) in credits."""
        if provider not in offered:
            # A price for a provider nobody can use would only clutter the audit log.
            raise SettingsError(
                f"`{text.clip(provider, 32)}` is not a provider this bot offers. "
                f"Choose one of: {', '.join(offered)}."
            )
        old = await self.store.set_entry(guild_id, "price", provider, credits)
        await self.audit(
            guild_id, actor_id, "quota_cost", target_id=None,
            details=f"{provider} price {old if old is not None else 1} → {credits}",
        )  # fmt: skip
        return f"One generation on `{provider}` now costs {credits} credit(s) in this server."

    async def set_server(self, guild_id: int, actor_id: int, limit: int) -> str:
        old = await self.store.set_guild_config(guild_id, server_budget=limit)
        await self.audit(
            guild_id, actor_id, "quota_server", target_id=None,
            details=f"server budget {old.get('server_budget') or 0} → {limit}",
        )  # fmt: skip
        spent = await self.store.server_spend(guild_id, now=time.time())
        if limit == 0:
            return f"The server has no daily budget now ({spent} credit(s) spent today)."
        return (
            f"The whole server may now spend {limit} credits per UTC day "
            f"({spent} already spent today)."
        )

    async def reset(self, guild_id: int, actor_id: int, user_id: int) -> str:
        before = await self.store.reset_usage(guild_id, user_id, now=time.time())
        await self.audit(
            guild_id, actor_id, "quota_reset", target_id=user_id,
            details=f"used today {before} → 0",
        )  # fmt: skip
        return f"Cleared <@{user_id}>'s usage today (was {before} credit(s))."


def _old(value: int | None) -> str:
    return "none" if value is None else str(value)


def _legacy(source: str) -> str:
    return {"user": "user", "role": "role", "guild": "server"}.get(source, "global")


def _provider_usage(usage: UsageSummary) -> str:
    """Providers' own reported usage (e.g. foxapi's credits_reserved): their numbers,
    never our credits."""
    line = f"All time: {usage.tasks} task(s)."
    reported = {p: c for p, c in sorted(usage.by_provider.items()) if c}
    if reported:
        line += " Provider-reported usage (the provider's own units, not our credits): " + (
            ", ".join(f"{p} {c:g}" for p, c in reported.items())
        )
    return line
