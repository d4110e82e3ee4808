"""State changes that Discord would announce on the gateway.

Each operation mutates the model, dispatches the matching event(s) and
notifies waiters. REST routes and the test-facing API both go through here,
so a bot action and a simulated user action look the same to the bot.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .cdn import Cdn
from .errors import (
    field_error,
    invalid_form_body,
    thread_already_exists,
    unknown_channel,
    unknown_guild,
    unknown_message,
    wrong_channel_type,
)
from .gateway import GUILD_MEMBERS, Gateway
from .limits import check_thread
from .messaging import (
    MessageBody,
    guess_content_type,
    kept_attachment_ids,
    new_files,
    require_not_empty,
    resolve_mentions,
    sanitize_filename,
    validate,
)
from .model import (
    BOT_ROLE_PERMISSIONS,
    EPHEMERAL_FLAG,
    EVERYONE_PERMISSIONS,
    HAS_THREAD_FLAG,
    LOADING_FLAG,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    TEXT_CHANNEL,
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    MessageEdit,
    Role,
    State,
    User,
)
from .payloads import Payloads
from .snowflake import utcnow

NONCE_WINDOW_SECONDS = 5 * 60
SUPPRESS_EMBEDS = 1 << 2
# Flags a sender may set itself: suppress embeds/notifications, components v2.
SETTABLE_FLAGS = SUPPRESS_EMBEDS | (1 << 12) | (1 << 15)
REPLY = 19
THREAD_CREATED = 18
Futures = list[asyncio.Future[bool]]


class Operations:
    def __init__(self, state: State, gateway: Gateway, payloads: Payloads, cdn: Cdn) -> None:
        self.state = state
        self.gateway = gateway
        self.payloads = payloads
        self.cdn = cdn

    def _changed(self) -> None:
        self.state.notifier.notify()

    # -- lookups that answer like Discord -----------------------------------
    def guild(self, guild_id: int) -> Guild:
        guild = self.state.guilds.get(guild_id)
        if guild is None:
            raise unknown_guild()
        return guild

    def channel(self, channel_id: int) -> Channel:
        channel = self.state.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise unknown_channel()
        return channel

    def message(self, channel: Channel, message_id: int) -> Message:
        message = self.state.messages.get(message_id)
        if message is None or message.deleted or message.channel_id != channel.id:
            raise unknown_message()
        if message.ephemeral:
            raise unknown_message()  # ephemeral messages are not reachable by channel routes
        return message

    def upload_limit(self, channel: Channel) -> int:
        return self.state.guilds[channel.guild_id].upload_limit

    # -- setup ----------------------------------------------------------------
    def add_user(self, username: str, *, bot: bool = False) -> User:
        user = User(self.state.snowflakes.next(), username, bot=bot, global_name=username)
        self.state.users[user.id] = user
        self._changed()
        return user

    def add_guild(
        self, name: str, *, premium_tier: int, owner_id: int | None, shard: tuple[int, int] | None
    ) -> Guild:
        state = self.state
        if owner_id is None:
            owner_id = self.add_user(f"{name} owner").id
        guild = Guild(state.snowflakes.next(shard=shard), name, owner_id, premium_tier)
        state.guilds[guild.id] = guild
        # @everyone shares the guild's id, as on Discord.
        everyone = Role(guild.id, guild.id, "@everyone", EVERYONE_PERMISSIONS)
        bot_role = Role(
            state.snowflakes.next(),
            guild.id,
            state.users[state.bot_user_id].username,
            BOT_ROLE_PERMISSIONS,
            position=1,
            managed=True,
        )
        for role in (everyone, bot_role):
            state.roles[role.id] = role
            guild.role_ids.append(role.id)
        guild.members[owner_id] = Member(owner_id, guild.id)
        guild.members[state.bot_user_id] = Member(state.bot_user_id, guild.id, roles=[bot_role.id])
        self.gateway.dispatch(
            "GUILD_CREATE",
            lambda session: self.payloads.guild_create(
                guild, all_members=session.has(GUILD_MEMBERS), joined=True
            ),
            guild_id=guild.id,
        )
        self._changed()
        return guild

    def add_channel(self, guild: Guild, name: str, *, topic: str | None = None) -> Channel:
        position = sum(1 for c in guild.channel_ids if not self.state.channels[c].is_thread)
        channel = Channel(
            self.state.snowflakes.next(),
            guild.id,
            name,
            TEXT_CHANNEL,
            position=position,
            topic=topic,
        )
        self.state.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        self.gateway.dispatch("CHANNEL_CREATE", self.payloads.channel(channel), guild_id=guild.id)
        self._changed()
        return channel

    def add_role(self, guild: Guild, name: str, permissions: int) -> Role:
        role = Role(
            self.state.snowflakes.next(), guild.id, name, permissions, position=len(guild.role_ids)
        )
        self.state.roles[role.id] = role
        guild.role_ids.append(role.id)
        self.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild.id), "role": self.payloads.role(role)},
            guild_id=guild.id,
        )
        self._changed()
        return role

    def add_member(
        self, guild: Guild, user: User, *, roles: list[int], permissions: int | None
    ) -> Member:
        unknown = [r for r in roles if r not in guild.role_ids]
        if unknown:
            raise ValueError(f"roles {unknown} do not belong to guild {guild.id}")
        member = Member(user.id, guild.id, roles=list(roles), permissions_override=permissions)
        guild.members[user.id] = member
        self.gateway.dispatch(
            "GUILD_MEMBER_ADD",
            {**self.payloads.member(member), "guild_id": str(guild.id)},
            guild_id=guild.id,
        )
        self._changed()
        return member

    def set_premium_tier(self, guild: Guild, tier: int) -> None:
        guild.premium_tier = tier
        # discord.py reads Guild.filesize_limit from premium_tier, so tell it.
        self.gateway.dispatch("GUILD_UPDATE", self.payloads.guild(guild), guild_id=guild.id)
        self._changed()

    # -- messages -------------------------------------------------------------
    def _attachments(self, channel: Channel, body: MessageBody) -> list[Attachment]:
        created = []
        for upload, entry in new_files(body):
            filename = sanitize_filename(str(entry.get("filename") or upload.filename))
            attachment = Attachment(
                id=self.state.snowflakes.next(),
                filename=filename,
                data=upload.data,
                content_type=guess_content_type(filename, upload.content_type),
                cdn_prefix=f"attachments/{channel.id}",
                description=entry.get("description"),
            )
            self.state.attachments[attachment.id] = attachment
            created.append(attachment)
        return created

    def _set_mentions(self, message: Message, guild: Guild) -> None:
        mentions = resolve_mentions(
            message.content, message.allowed_mentions, set(guild.members), set(guild.role_ids)
        )
        message.mention_ids = mentions.users
        message.mention_role_ids = mentions.roles
        message.mention_everyone = mentions.everyone

    def _private_content(self, message: Message) -> bool:
        """Discord hides content from apps without MESSAGE_CONTENT, except their own
        messages and messages that mention them."""
        bot = self.state.bot_user_id
        return message.author_id != bot and bot not in message.mention_ids

    def _dispatch_message(self, event: str, message: Message) -> Futures:
        if message.ephemeral:
            return []  # ephemeral messages never reach the gateway
        return self.gateway.dispatch(
            event,
            self.payloads.gateway_message(message),
            guild_id=message.guild_id,
            private_content=self._private_content(message),
        )

    def find_by_nonce(self, channel: Channel, author_id: int, nonce: Any) -> Message | None:
        message_id = self.state.nonces.get((channel.id, author_id, str(nonce)))
        message = self.state.messages.get(message_id) if message_id else None
        if message is None or message.deleted:
            return None
        if time.monotonic() - message.created_monotonic > NONCE_WINDOW_SECONDS:
            return None
        return message

    def create_message(
        self,
        channel: Channel,
        author_id: int,
        body: MessageBody,
        *,
        upload_limit: int,
        flags: int = 0,
        message_type: int = 0,
        webhook_id: int | None = None,
        interaction_id: int | None = None,
    ) -> Message:
        """Validate and store a new message, then announce it (MESSAGE_CREATE)."""
        payload = body.payload
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            # Idempotent delivery: same nonce, author and channel within 5 min.
            existing = self.find_by_nonce(channel, author_id, nonce)
            if existing is not None:
                return existing
        validate(body, upload_limit=upload_limit)
        content = "" if payload.get("content") is None else str(payload["content"])
        embeds = list(payload.get("embeds") or [])
        components = list(payload.get("components") or [])
        has_extra = bool(payload.get("sticker_ids") or payload.get("poll"))
        if not has_extra:
            require_not_empty(content, embeds, len(body.files), components)
        guild = self.state.guilds[channel.guild_id]
        reference = self._reference(channel, payload.get("message_reference"))
        message = Message(
            id=self.state.snowflakes.next(),
            channel_id=channel.id,
            guild_id=guild.id,
            author_id=author_id,
            content=content,
            type=REPLY if reference else message_type,
            embeds=embeds,
            components=components,
            nonce=nonce,
            allowed_mentions=payload.get("allowed_mentions"),
            flags=(int(payload.get("flags") or 0) & SETTABLE_FLAGS) | flags,
            tts=bool(payload.get("tts")),
            webhook_id=webhook_id,
            application_id=webhook_id,
            interaction_id=interaction_id,
            message_reference=reference,
        )
        message.attachments = self._attachments(channel, body)
        self._set_mentions(message, guild)
        self.store_message(channel, message)
        if nonce is not None:
            self.state.nonces[(channel.id, author_id, str(nonce))] = message.id
        return message

    def store_message(self, channel: Channel, message: Message) -> None:
        self.state.messages[message.id] = message
        if not message.ephemeral:
            channel.message_ids.append(message.id)
            channel.total_message_sent += 1
        self._dispatch_message("MESSAGE_CREATE", message)
        self._changed()

    def _reference(
        self, channel: Channel, reference: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if not reference:
            return None
        target_id = int(reference.get("message_id") or 0)
        target = self.state.messages.get(target_id)
        if target is None or target.deleted:
            if reference.get("fail_if_not_exists", True):
                raise invalid_form_body(
                    {
                        "message_reference": field_error(
                            "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                        )
                    }
                )
            return None
        return {
            "type": 0,
            "message_id": str(target.id),
            "channel_id": str(target.channel_id),
            "guild_id": str(channel.guild_id),
        }

    def edit_message(self, message: Message, body: MessageBody, *, upload_limit: int) -> Message:
        """Apply PATCH semantics: absent fields stay, ``attachments`` lists what to keep."""
        payload = body.payload
        kept_ids = kept_attachment_ids(payload, body.files)
        kept = [a for a in message.attachments if kept_ids is None or a.id in kept_ids]
        validate(body, upload_limit=upload_limit, kept_attachments=len(kept))
        content = message.content
        if "content" in payload:
            content = "" if payload["content"] is None else str(payload["content"])
        embeds = list(payload["embeds"] or []) if "embeds" in payload else message.embeds
        components = (
            list(payload["components"] or []) if "components" in payload else message.components
        )
        channel = self.state.channels[message.channel_id]
        added = self._attachments(channel, body)
        require_not_empty(content, embeds, len(kept) + len(added), components)
        flags = message.flags & ~LOADING_FLAG  # any edit ends "Bot is thinking..."
        if "flags" in payload and payload["flags"] is not None:
            flags = (flags & ~SUPPRESS_EMBEDS) | (int(payload["flags"]) & SUPPRESS_EMBEDS)
        message.content, message.embeds, message.components = content, embeds, components
        message.attachments = kept + added
        message.flags = flags
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        self._set_mentions(message, self.state.guilds[channel.guild_id])
        message.edited_at = utcnow()
        message.edits.append(
            MessageEdit(
                content, embeds, [a.id for a in message.attachments], flags, message.edited_at
            )
        )
        self._dispatch_message("MESSAGE_UPDATE", message)
        self._changed()
        return message

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        channel = self.state.channels.get(message.channel_id)
        if channel is not None and message.id in channel.message_ids:
            channel.message_ids.remove(message.id)
        if not message.ephemeral:
            data = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                data["guild_id"] = str(message.guild_id)
            self.gateway.dispatch("MESSAGE_DELETE", data, guild_id=message.guild_id)
        self._changed()

    # -- threads --------------------------------------------------------------
    def start_thread(
        self,
        parent: Channel,
        name: Any,
        owner_id: int,
        *,
        starter: Message | None = None,
        thread_type: int = PUBLIC_THREAD,
        auto_archive_duration: int = 1440,
    ) -> Channel:
        if parent.is_thread:
            raise wrong_channel_type()
        errors = check_thread({"name": name, "auto_archive_duration": auto_archive_duration})
        if errors:
            raise invalid_form_body(errors)
        if thread_type not in (PUBLIC_THREAD, PRIVATE_THREAD):
            raise invalid_form_body(
                {"type": field_error("BASE_TYPE_CHOICES", "Invalid thread type")}
            )
        if starter is not None and starter.thread_id is not None:
            raise thread_already_exists()
        # A thread started from a message shares the message's id on Discord.
        thread_id = starter.id if starter is not None else self.state.snowflakes.next()
        thread = Channel(
            thread_id,
            parent.guild_id,
            name,
            PUBLIC_THREAD if starter is not None else thread_type,
            parent_id=parent.id,
            owner_id=owner_id,
            starter_message_id=starter.id if starter is not None else None,
            auto_archive_duration=auto_archive_duration,
        )
        self.state.channels[thread.id] = thread
        self.state.guilds[parent.guild_id].channel_ids.append(thread.id)
        if starter is not None:
            starter.thread_id = thread.id
            starter.flags |= HAS_THREAD_FLAG
        self.gateway.dispatch(
            "THREAD_CREATE",
            {**self.payloads.thread(thread), "newly_created": True},
            guild_id=thread.guild_id,
        )
        if starter is None and thread.type == PUBLIC_THREAD:
            self._thread_created_notice(parent, thread, owner_id)
        self._changed()
        return thread

    def _thread_created_notice(self, parent: Channel, thread: Channel, owner_id: int) -> None:
        """The "X started a thread" system message Discord posts in the parent."""
        notice = Message(
            id=self.state.snowflakes.next(),
            channel_id=parent.id,
            guild_id=parent.guild_id,
            author_id=owner_id,
            content=thread.name,
            type=THREAD_CREATED,
            message_reference={
                "type": 0,
                "channel_id": str(thread.id),
                "guild_id": str(parent.guild_id),
            },
        )
        self.store_message(parent, notice)

    def delete_channel(self, channel: Channel) -> None:
        """Delete a channel (and its threads) or a thread; REST on it then gives 10003."""
        doomed = [channel]
        if not channel.is_thread:
            doomed += [
                c
                for c in self.state.channels.values()
                if c.parent_id == channel.id and not c.deleted
            ]
        for target in doomed:
            target.deleted = True
            event = "THREAD_DELETE" if target.is_thread else "CHANNEL_DELETE"
            data = (
                {
                    "id": str(target.id),
                    "guild_id": str(target.guild_id),
                    "parent_id": str(target.parent_id),
                    "type": target.type,
                }
                if target.is_thread
                else self.payloads.channel(target)
            )
            self.gateway.dispatch(event, data, guild_id=target.guild_id)
        self._changed()

    # -- reactions ------------------------------------------------------------
    def add_reaction(self, message: Message, user_id: int, emoji: str) -> Futures:
        users = message.reactions.setdefault(emoji, set())
        if user_id in users:
            return []  # Discord answers 204 and sends nothing
        users.add(user_id)
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "emoji": self.payloads.emoji(emoji),
            "burst": False,
            "burst_colors": [],
            "type": 0,
            "message_author_id": str(message.author_id),
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
            member = self.state.guilds[message.guild_id].members.get(user_id)
            if member is not None:
                data["member"] = self.payloads.member(member)
        futures = self.gateway.dispatch("MESSAGE_REACTION_ADD", data, guild_id=message.guild_id)
        self._changed()
        return futures

    def remove_reaction(self, message: Message, user_id: int, emoji: str) -> Futures:
        users = message.reactions.get(emoji)
        if not users or user_id not in users:
            return []
        users.discard(user_id)
        if not users:
            del message.reactions[emoji]
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "emoji": self.payloads.emoji(emoji),
            "burst": False,
            "type": 0,
        }
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        futures = self.gateway.dispatch("MESSAGE_REACTION_REMOVE", data, guild_id=message.guild_id)
        self._changed()
        return futures

    # -- interaction responses -------------------------------------------------
    def interaction_message(
        self,
        channel: Channel,
        body: MessageBody,
        *,
        upload_limit: int,
        interaction_id: int,
        ephemeral: bool,
        loading: bool = False,
        message_type: int = 0,
    ) -> Message:
        """A message sent through an interaction token (author: the bot, via its webhook)."""
        flags = (EPHEMERAL_FLAG if ephemeral else 0) | (LOADING_FLAG if loading else 0)
        if loading:
            message = Message(
                id=self.state.snowflakes.next(),
                channel_id=channel.id,
                guild_id=channel.guild_id,
                author_id=self.state.bot_user_id,
                type=message_type,
                flags=flags,
                webhook_id=self.state.application_id,
                application_id=self.state.application_id,
                interaction_id=interaction_id,
            )
            self.store_message(channel, message)
            return message
        return self.create_message(
            channel,
            self.state.bot_user_id,
            MessageBody({k: v for k, v in body.payload.items() if k != "nonce"}, body.files),
            upload_limit=upload_limit,
            flags=flags,
            message_type=message_type,
            webhook_id=self.state.application_id,
            interaction_id=interaction_id,
        )
