"""In-memory state of the fake Discord: guilds, channels, messages, interactions.

Plain data only; mutations that must also reach the gateway live in
``operations.py``. Tests read these objects through ``DiscordDouble``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from .notify import ChangeNotifier
from .snowflake import SnowflakeFactory, utcnow

MIB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 10 * MIB
# discord.py's Guild._PREMIUM_GUILD_LIMITS, which Guild.filesize_limit reads.
PREMIUM_TIER_UPLOAD_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}

ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ALL_PERMISSIONS = 8866461766385663  # discord.Permissions.all() in discord.py 2.7.1
EVERYONE_PERMISSIONS = (
    (1 << 0)  # create instant invite
    | (1 << 6)  # add reactions
    | (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 18)  # use external emojis
    | (1 << 26)  # change nickname
    | (1 << 31)  # use application commands
    | (1 << 35)  # create public threads
    | (1 << 38)  # send messages in threads
)
BOT_ROLE_PERMISSIONS = (
    EVERYONE_PERMISSIONS
    | (1 << 13)  # manage messages
    | (1 << 34)  # manage threads
    | (1 << 36)  # create private threads
)

TEXT_CHANNEL = 0
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (10, PUBLIC_THREAD, PRIVATE_THREAD)

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7
HAS_THREAD_FLAG = 1 << 5


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False


@dataclass
class Member:
    user_id: int
    guild_id: int
    roles: list[int] = field(default_factory=list)
    permissions_override: int | None = None  # None: computed from roles
    joined_at: dt.datetime = field(default_factory=utcnow)
    nick: str | None = None


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    upload_limit_override: int | None = None
    channel_ids: list[int] = field(default_factory=list)
    role_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=utcnow)

    @property
    def upload_limit(self) -> int:
        """Per-file limit enforced by REST (413 / code 40005 above it)."""
        if self.upload_limit_override is not None:
            return self.upload_limit_override
        return PREMIUM_TIER_UPLOAD_LIMITS.get(self.premium_tier, DEFAULT_UPLOAD_LIMIT)


@dataclass
class Channel:
    """A guild text channel or a thread (threads are channels in Discord)."""

    id: int
    guild_id: int
    name: str
    type: int = TEXT_CHANNEL
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    owner_id: int | None = None  # threads: who created it
    starter_message_id: int | None = None  # threads started from a message
    auto_archive_duration: int = 1440
    archived: bool = False
    locked: bool = False
    deleted: bool = False
    message_ids: list[int] = field(default_factory=list)
    total_message_sent: int = 0
    created_at: dt.datetime = field(default_factory=utcnow)

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes = field(repr=False)
    content_type: str | None
    cdn_prefix: str  # e.g. "attachments/<channel_id>"; the CDN serves <prefix>/<id>/<filename>
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def cdn_path(self) -> str:
        return f"/{self.cdn_prefix}/{self.id}/{self.filename}"


@dataclass
class MessageEdit:
    """The message's state right after one edit."""

    content: str
    embeds: list[dict[str, Any]]
    attachment_ids: list[int]
    flags: int
    edited_at: dt.datetime


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    type: int = 0
    attachments: list[Attachment] = field(default_factory=list)
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    reactions: dict[str, set[int]] = field(default_factory=dict)  # emoji -> user ids, in order
    edits: list[MessageEdit] = field(default_factory=list)
    nonce: str | int | None = None
    allowed_mentions: dict[str, Any] | None = None
    flags: int = 0
    tts: bool = False
    pinned: bool = False
    mention_ids: list[int] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    message_reference: dict[str, Any] | None = None
    thread_id: int | None = None
    deleted: bool = False
    created_at: dt.datetime = field(default_factory=utcnow)
    edited_at: dt.datetime | None = None
    created_monotonic: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL_FLAG)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING_FLAG)


@dataclass
class Interaction:
    """One interaction sent to the bot and everything the bot answered."""

    id: int
    token: str
    type: int
    application_id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    command_name: str
    payload: dict[str, Any] = field(repr=False)
    attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT
    responses: list[dict[str, Any]] = field(default_factory=list)  # raw callback bodies
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    autocomplete_choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    source_message_id: int | None = None  # component interactions: the clicked message
    created_monotonic: float = field(default_factory=time.monotonic)
    acknowledged_monotonic: float | None = None
    _state: State | None = field(default=None, repr=False, compare=False)

    # -- what the bot did --------------------------------------------------
    @property
    def acknowledged(self) -> bool:
        return bool(self.responses)

    @property
    def deferred(self) -> bool:
        return bool(self.responses) and self.responses[0]["type"] in (5, 6)

    @property
    def ephemeral(self) -> bool:
        if not self.responses:
            return False
        data = self.responses[0].get("data") or {}
        return bool(int(data.get("flags") or 0) & EPHEMERAL_FLAG)

    @property
    def response_message(self) -> Message | None:
        if self.original_message_id is None or self._state is None:
            return None
        return self._state.messages.get(self.original_message_id)

    @property
    def response_content(self) -> str | None:
        """Latest content of the original response (after edits); None if none."""
        message = self.response_message
        return None if message is None or message.deleted else message.content

    @property
    def followup_messages(self) -> list[Message]:
        assert self._state is not None
        return [self._state.messages[i] for i in self.followup_ids]

    @property
    def followups(self) -> list[dict[str, Any]]:
        """Followup messages as plain dicts (content, embeds, attachments, flags, id)."""
        return [message_summary(m) for m in self.followup_messages]

    def contents(self) -> list[str]:
        """Original response content followed by every followup's content."""
        found = [] if self.response_content is None else [self.response_content]
        return found + [m.content for m in self.followup_messages if not m.deleted]

    # -- waiting (event-driven, see notify.py) -----------------------------
    async def wait_for_response(self, timeout: float = 5.0) -> Interaction:  # noqa: ASYNC109
        assert self._state is not None
        await self._state.notifier.wait_for(
            lambda: self.acknowledged,
            timeout=timeout,
            description=f"interaction {self.id} (/{self.command_name}) to be answered",
        )
        return self

    async def wait_for_content(self, match: Any, timeout: float = 5.0) -> str:  # noqa: ASYNC109
        """Wait until the response or a followup has content matching ``match``.

        ``match`` is a substring or a ``str -> bool`` predicate; returns the content.
        """
        assert self._state is not None

        def matches(text: str) -> bool:
            return match(text) if callable(match) else str(match) in text

        def found() -> str | None:
            return next((text for text in self.contents() if matches(text)), None)

        return await self._state.notifier.wait_for(
            found,
            timeout=timeout,
            description=f"/{self.command_name} response matching {match!r}",
            context=lambda: f"contents so far: {self.contents()!r}",
        )


def message_summary(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "channel_id": message.channel_id,
        "content": message.content,
        "embeds": message.embeds,
        "attachments": [
            {"id": a.id, "filename": a.filename, "size": a.size, "content_type": a.content_type}
            for a in message.attachments
        ],
        "flags": message.flags,
        "deleted": message.deleted,
    }


@dataclass
class Settings:
    """Timing rules tests may tighten (e.g. a 0 s deadline to provoke 10062)."""

    interaction_deadline: float = 3.0  # first response, seconds after invoke
    interaction_token_ttl: float = 15 * 60.0  # followups/edits, seconds after invoke


@dataclass
class State:
    """Everything the double knows, indexed by id."""

    bot_user_id: int
    application_id: int
    snowflakes: SnowflakeFactory
    notifier: ChangeNotifier
    settings: Settings = field(default_factory=Settings)
    users: dict[int, User] = field(default_factory=dict)
    guilds: dict[int, Guild] = field(default_factory=dict)
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    messages: dict[int, Message] = field(default_factory=dict)
    attachments: dict[int, Attachment] = field(default_factory=dict)
    interactions: dict[int, Interaction] = field(default_factory=dict)
    # (channel_id, author_id, nonce) -> message id, for enforce_nonce dedup
    nonces: dict[tuple[int, int, str], int] = field(default_factory=dict)

    def guild_of_channel(self, channel: Channel) -> Guild:
        return self.guilds[channel.guild_id]

    def member_permissions(self, guild: Guild, user_id: int) -> int:
        """Guild-level permissions, computed the way Discord does (no overwrites)."""
        member = guild.members.get(user_id)
        if member is not None and member.permissions_override is not None:
            return member.permissions_override
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        perms = self.roles[guild.id].permissions  # @everyone has the guild's id
        for role_id in member.roles if member else []:
            perms |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms


__all__ = [
    "Attachment",
    "Channel",
    "Guild",
    "Interaction",
    "Member",
    "Message",
    "MessageEdit",
    "Role",
    "Settings",
    "State",
    "User",
]
