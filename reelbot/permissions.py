"""Who counts as a moderator: Manage Server, or a role listed in MODERATOR_ROLE_IDS."""

from __future__ import annotations

from collections.abc import Iterable

import discord

ONLY_MODERATORS = "Only moderators (Manage Server, or a moderator role) can do that."


def is_moderator(
    *,
    permissions: discord.Permissions | None,
    role_ids: Iterable[int],
    moderator_role_ids: frozenset[int],
) -> bool:
    if permissions is not None and (permissions.manage_guild or permissions.administrator):
        return True
    return any(role_id in moderator_role_ids for role_id in role_ids)


def member_is_moderator(member: discord.Member | None, moderator_role_ids: frozenset[int]) -> bool:
    """For reaction events, where only the member (not interaction permissions) is known."""
    if member is None:
        return False
    perms = member.guild_permissions if member.guild is not None else None
    return is_moderator(
        permissions=perms,
        role_ids=(r.id for r in member.roles),
        moderator_role_ids=moderator_role_ids,
    )


def interaction_is_moderator(
    interaction: discord.Interaction, moderator_role_ids: frozenset[int]
) -> bool:
    user = interaction.user
    roles = [r.id for r in user.roles] if isinstance(user, discord.Member) else []
    return is_moderator(
        permissions=interaction.permissions,
        role_ids=roles,
        moderator_role_ids=moderator_role_ids,
    )
