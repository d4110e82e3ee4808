"""JSON builders: model objects -> the payloads Discord sends.

Field sets follow discord.py 2.7.1's required keys (see DISCORD.md 4.4) plus
the common optional ones, so the unmodified client parses them.
"""

from __future__ import annotations

from typing import Any

from .cdn import Cdn
from .model import (
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    Role,
    State,
    User,
)
from .snowflake import iso


def _sid(value: int | None) -> str | None:
    return None if value is None else str(value)


class Payloads:
    def __init__(self, state: State, cdn: Cdn) -> None:
        self._state = state
        self._cdn = cdn

    # -- users, roles, members ----------------------------------------------
    def user(self, user: User | int) -> dict[str, Any]:
        if isinstance(user, int):
            user = self._state.users[user]
        data: dict[str, Any] = {
            "id": str(user.id),
            "username": user.username,
            "discriminator": "0",
            "global_name": user.global_name,
            "avatar": None,
            "public_flags": 0,
        }
        if user.bot:
            data["bot"] = True
        return data

    def current_user(self) -> dict[str, Any]:
        """GET /users/@me and READY.user (a ClientUser)."""
        return {
            **self.user(self._state.bot_user_id),
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "email": None,
            "locale": "en-US",
        }

    def role(self, role: Role) -> dict[str, Any]:
        return {
            "id": str(role.id),
            "name": role.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": role.position,
            "permissions": str(role.permissions),
            "managed": role.managed,
            "mentionable": False,
            "flags": 0,
        }

    def member(
        self, member: Member, *, with_user: bool = True, with_permissions: bool = False
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": member.nick,
            "avatar": None,
            "roles": [str(r) for r in member.roles],
            "joined_at": iso(member.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,  # required by discord.py 2.7
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user(member.user_id)
        if with_permissions:
            guild = self._state.guilds[member.guild_id]
            data["permissions"] = str(self._state.member_permissions(guild, member.user_id))
        return data

    # -- channels and threads ------------------------------------------------
    def channel(self, channel: Channel) -> dict[str, Any]:
        if channel.is_thread:
            return self.thread(channel)
        return {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "position": channel.position,
            "permission_overwrites": [],
            "topic": channel.topic,
            "nsfw": False,
            "last_message_id": _sid(channel.message_ids[-1] if channel.message_ids else None),
            "rate_limit_per_user": 0,
            "parent_id": None,
            "default_auto_archive_duration": 1440,
            "flags": 0,
        }

    def thread(self, thread: Channel) -> dict[str, Any]:
        live = [m for m in thread.message_ids if not self._state.messages[m].deleted]
        return {
            "id": str(thread.id),
            "type": thread.type,
            "guild_id": str(thread.guild_id),
            "parent_id": str(thread.parent_id),
            "owner_id": str(thread.owner_id),
            "name": thread.name,
            "last_message_id": _sid(thread.message_ids[-1] if thread.message_ids else None),
            "message_count": len(live),
            "total_message_sent": thread.total_message_sent,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": thread.archived,
                "auto_archive_duration": thread.auto_archive_duration,
                "archive_timestamp": iso(thread.created_at),
                "locked": thread.locked,
                "invitable": True,
                "create_timestamp": iso(thread.created_at),
            },
        }

    def interaction_channel(self, channel: Channel, user_id: int) -> dict[str, Any]:
        guild = self._state.guilds[channel.guild_id]
        return {
            **self.channel(channel),
            "permissions": str(self._state.member_permissions(guild, user_id)),
        }

    # -- guilds ----------------------------------------------------------------
    def guild(self, guild: Guild) -> dict[str, Any]:
        """The REST guild object (no channels or members)."""
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "features": [],
            "roles": [self.role(self._state.roles[r]) for r in guild.role_ids],
            "emojis": [],
            "stickers": [],
        }

    def guild_create(
        self, guild: Guild, *, all_members: bool, joined: bool = False
    ) -> dict[str, Any]:
        """GUILD_CREATE; without the GUILD_MEMBERS intent Discord sends only the bot's member.

        ``joined``: the bot was just added to the guild. Discord then omits
        ``unavailable`` and discord.py fires ``on_guild_join`` (not ``..._available``).
        """
        members = [
            m for m in guild.members.values() if all_members or m.user_id == self._state.bot_user_id
        ]
        channels = [self._state.channels[c] for c in guild.channel_ids]
        data = {
            **self.guild(guild),
            "unavailable": False,
            "large": False,
            "joined_at": iso(guild.created_at),
            "member_count": len(guild.members),
            "members": [self.member(m) for m in members],
            "channels": [self.channel(c) for c in channels if not c.deleted and not c.is_thread],
            "threads": [
                self.thread(c) for c in channels if not c.deleted and c.is_thread and not c.archived
            ],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
        if joined:
            del data["unavailable"]
        return data

    # -- messages --------------------------------------------------------------
    def attachment(self, attachment: Attachment) -> dict[str, Any]:
        url = self._cdn.url(attachment)
        data: dict[str, Any] = {
            "id": str(attachment.id),
            "filename": attachment.filename,
            "size": attachment.size,
            "url": url,
            "proxy_url": url,
            "content_type": attachment.content_type,
        }
        if attachment.description:
            data["description"] = attachment.description
        return data

    def emoji(self, key: str) -> dict[str, Any]:
        """Reaction key ("🔁" or "name:id") -> partial emoji object."""
        name, _, emoji_id = key.partition(":")
        if emoji_id.isdigit():
            return {"id": emoji_id, "name": name}
        return {"id": None, "name": key}

    def reactions(self, message: Message) -> list[dict[str, Any]]:
        bot = self._state.bot_user_id
        return [
            {
                "emoji": self.emoji(key),
                "count": len(users),
                "count_details": {"burst": 0, "normal": len(users)},
                "burst_colors": [],
                "me": bot in users,
                "me_burst": False,
            }
            for key, users in message.reactions.items()
            if users
        ]

    def message(self, message: Message) -> dict[str, Any]:
        state = self._state
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "type": message.type,
            "content": message.content,
            "author": self.user(message.author_id),
            "attachments": [self.attachment(a) for a in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "mentions": [self.user(u) for u in message.mention_ids if u in state.users],
            "mention_roles": [str(r) for r in message.mention_role_ids],
            "mention_everyone": message.mention_everyone,
            "pinned": message.pinned,
            "tts": message.tts,
            "timestamp": iso(message.created_at),
            "edited_timestamp": iso(message.edited_at),
            "flags": message.flags,
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        if message.nonce is not None:
            data["nonce"] = message.nonce
        if message.reactions:
            data["reactions"] = self.reactions(message)
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
        if message.application_id is not None:
            data["application_id"] = str(message.application_id)
        if message.message_reference is not None:
            data["message_reference"] = message.message_reference
        if message.interaction_id is not None:
            data["interaction_metadata"] = self.interaction_metadata(message)
        if message.thread_id is not None:
            thread = state.channels.get(message.thread_id)
            if thread is not None and not thread.deleted:
                data["thread"] = self.thread(thread)
        return data

    def gateway_message(self, message: Message) -> dict[str, Any]:
        """MESSAGE_CREATE/UPDATE: a message plus the author's partial member."""
        data = self.message(message)
        if message.guild_id is not None and message.webhook_id is None:
            member = state_member(self._state, message.guild_id, message.author_id)
            if member is not None:
                data["member"] = self.member(member, with_user=False)
        return data

    def interaction_metadata(self, message: Message) -> dict[str, Any]:
        interaction = self._state.interactions[message.interaction_id]  # type: ignore[index]
        data: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": self.user(interaction.user_id),
            "authorizing_integration_owners": (
                {"0": str(interaction.guild_id)} if interaction.guild_id else {}
            ),
            "name": interaction.command_name,
            "command_type": 1,
        }
        original = interaction.original_message_id
        if original is not None and message.id != original:
            data["original_response_message_id"] = str(original)
        return data


def state_member(state: State, guild_id: int, user_id: int) -> Member | None:
    guild = state.guilds.get(guild_id)
    return None if guild is None else guild.members.get(user_id)
