"""Interactions: building INTERACTION_CREATE from a test's call, and applying the
bot's callbacks, followups and token edits with Discord's rules.

Rules enforced: first response within ``Settings.interaction_deadline`` of the
invoke (else 404 / 10062), one response only (400 / 40060), token routes for
``Settings.interaction_token_ttl`` (else 401 / 50027), response types valid for
the interaction type.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from typing import Any

from .commands import CommandRegistry
from .errors import (
    CommandContractError,
    DiscordHTTPError,
    already_acknowledged,
    field_error,
    invalid_form_body,
    invalid_webhook_token,
    unknown_interaction,
    unknown_message,
    unknown_webhook,
)
from .limits import check_autocomplete, check_modal
from .messaging import MessageBody
from .model import EPHEMERAL_FLAG, Attachment, Channel, Guild, Interaction, Message, State
from .operations import Operations
from .options import Resolved, build_options, nest, subcommand_chain, walk_path

APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE = 1, 4, 5, 6
UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = 7, 8, 9
CHAT_INPUT_COMMAND_MESSAGE = 20  # message type of a slash command's response
# Which callback types Discord accepts for each interaction type.
ALLOWED_RESPONSES = {
    1: {PONG},
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE},
}


class _Resolver:
    """``options.Resolver`` over the double's state for one guild."""

    def __init__(self, ops: Operations, guild: Guild) -> None:
        self._ops = ops
        self._guild = guild

    def user(self, user_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        state = self._ops.state
        if user_id not in state.users:
            raise CommandContractError(f"user {user_id} does not exist in the double")
        member = self._guild.members.get(user_id)
        member_payload = (
            None
            if member is None
            else self._ops.payloads.member(member, with_user=False, with_permissions=True)
        )
        return self._ops.payloads.user(user_id), member_payload

    def channel(self, channel_id: int) -> dict[str, Any]:
        channel = self._ops.state.channels.get(channel_id)
        if channel is None or channel.deleted or channel.guild_id != self._guild.id:
            raise CommandContractError(f"channel {channel_id} is not in guild {self._guild.id}")
        return self._ops.payloads.interaction_channel(channel, self._ops.state.bot_user_id)

    def role(self, role_id: int) -> dict[str, Any]:
        if role_id not in self._guild.role_ids:
            raise CommandContractError(f"role {role_id} is not in guild {self._guild.id}")
        return self._ops.payloads.role(self._ops.state.roles[role_id])

    def is_role(self, snowflake: int) -> bool:
        return snowflake in self._guild.role_ids

    def attachment(self, filename: str, data: bytes, content_type: str | None) -> dict[str, Any]:
        state = self._ops.state
        attachment = Attachment(
            id=state.snowflakes.next(),
            filename=filename,
            data=data,
            content_type=content_type,
            # Option uploads live under ephemeral-attachments on the real CDN.
            cdn_prefix=f"ephemeral-attachments/{state.application_id}",
        )
        state.attachments[attachment.id] = attachment
        return {**self._ops.payloads.attachment(attachment), "ephemeral": True}


class InteractionService:
    def __init__(self, ops: Operations, registry: CommandRegistry) -> None:
        self._ops = ops
        self._registry = registry
        self._by_token: dict[str, Interaction] = {}

    @property
    def _state(self) -> State:
        return self._ops.state

    # -- building interactions --------------------------------------------------
    def _context(self, guild_id: int, channel_id: int, user_id: int) -> tuple[Guild, Channel]:
        state = self._state
        guild = state.guilds.get(guild_id)
        if guild is None:
            raise CommandContractError(f"guild {guild_id} does not exist in the double")
        channel = state.channels.get(channel_id)
        if channel is None or channel.deleted or channel.guild_id != guild_id:
            raise CommandContractError(
                f"channel {channel_id} is not a live channel of guild {guild_id}"
            )
        if user_id not in guild.members:
            raise CommandContractError(f"user {user_id} is not a member of guild {guild_id}")
        return guild, channel

    def _command(self, path: str, guild_id: int) -> tuple[dict[str, Any], list[str]]:
        name, *subpath = path.split()
        command = self._registry.find(name, guild_id)
        if command is None:
            raise CommandContractError(
                f"/{name} was never synced (PUT .../commands) for guild {guild_id} or globally; "
                f"recorded commands: {self._registry.describe(guild_id)}"
            )
        return command, subpath

    def _payload(
        self,
        interaction_type: int,
        command: dict[str, Any],
        options: list[dict[str, Any]],
        resolved: Resolved,
        guild: Guild,
        channel: Channel,
        user_id: int,
        locale: str,
    ) -> tuple[int, str, dict[str, Any]]:
        state, payloads = self._state, self._ops.payloads
        interaction_id = state.snowflakes.next()
        raw_token = f"interaction:{interaction_id}:{secrets.token_urlsafe(48)}"
        token = base64.urlsafe_b64encode(raw_token.encode()).decode().rstrip("=")
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command["name"],
            "type": command.get("type", 1),
            "options": options,
        }
        if resolved.to_dict():
            data["resolved"] = resolved.to_dict()
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        payload = {
            "id": str(interaction_id),
            "application_id": str(state.application_id),
            "type": interaction_type,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": payloads.interaction_channel(channel, user_id),
            "member": payloads.member(guild.members[user_id], with_permissions=True),
            "token": token,
            "version": 1,
            "app_permissions": str(state.member_permissions(guild, state.bot_user_id)),
            "locale": locale,
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            # Required by discord.py (Interaction.filesize_limit).
            "attachment_size_limit": guild.upload_limit,
        }
        return interaction_id, token, payload

    def create(
        self,
        path: str,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        options: Mapping[str, Any],
        attachments: Mapping[str, tuple[str, bytes, str | None]],
        focused: str | None = None,
        locale: str = "en-US",
    ) -> Interaction:
        """A chat-input (type 2) or, with ``focused``, an autocomplete (type 4) interaction."""
        guild, channel = self._context(guild_id, channel_id, user_id)
        command, subpath = self._command(path, guild_id)
        leaf_schema, _ = walk_path(command, subpath)
        typed, resolved = build_options(
            leaf_schema, options, attachments, _Resolver(self._ops, guild), focused=focused
        )
        options_payload = nest(subcommand_chain(command, subpath), typed)
        interaction_type = AUTOCOMPLETE if focused is not None else APPLICATION_COMMAND
        interaction_id, token, payload = self._payload(
            interaction_type, command, options_payload, resolved, guild, channel, user_id, locale
        )
        return self._record(
            interaction_id, token, interaction_type, path, payload, guild, channel, user_id
        )

    def create_message_command(
        self,
        name: str,
        message: Message,
        *,
        guild_id: int,
        user_id: int,
        locale: str = "en-US",
    ) -> Interaction:
        """A message context-menu command (interaction type 2, ``data.type`` 3) on
        ``message``, as Discord sends it: ``target_id`` and the message under
        ``resolved.messages``, no options."""
        guild, channel = self._context(guild_id, message.channel_id, user_id)
        command = self._registry.find(name, guild_id, command_type=3)
        if command is None:
            raise CommandContractError(
                f"message command {name!r} was never synced for guild {guild_id} or "
                f"globally; recorded commands: {self._registry.describe(guild_id)}"
            )
        interaction_id, token, payload = self._payload(
            APPLICATION_COMMAND, command, [], Resolved(), guild, channel, user_id, locale
        )
        data = payload["data"]
        data.pop("options", None)  # context-menu commands carry none
        data["target_id"] = str(message.id)
        data["resolved"] = {"messages": {str(message.id): self._ops.payloads.message(message)}}
        return self._record(
            interaction_id, token, APPLICATION_COMMAND, name, payload, guild, channel, user_id
        )

    def create_from_message(
        self,
        interaction_type: int,
        message: Message | None,
        *,
        guild_id: int,
        channel_id: int,
        user_id: int,
        data: dict[str, Any],
        locale: str = "en-US",
    ) -> Interaction:
        """A component click (type 3) or modal submit (type 5) on ``message``, as Discord
        sends them: ``data`` is ``{custom_id, component_type, values?}`` or ``{custom_id,
        components}``; ``message`` holds the clicked component (a modal opened from a
        slash command has none)."""
        guild, channel = self._context(guild_id, channel_id, user_id)
        fake_command = {"id": "0", "name": "", "type": 1}
        interaction_id, token, payload = self._payload(
            interaction_type, fake_command, [], Resolved(), guild, channel, user_id, locale
        )
        payload["data"] = data
        if message is not None:
            payload["message"] = self._ops.payloads.message(message)
        return self._record(
            interaction_id,
            token,
            interaction_type,
            str(data.get("custom_id", "")),
            payload,
            guild,
            channel,
            user_id,
            source_message_id=None if message is None else message.id,
        )

    def _record(
        self,
        interaction_id: int,
        token: str,
        interaction_type: int,
        name: str,
        payload: dict[str, Any],
        guild: Any,
        channel: Any,
        user_id: int,
        source_message_id: int | None = None,
    ) -> Interaction:
        """Keep a new interaction (by id and by token) and announce the change."""
        interaction = Interaction(
            id=interaction_id,
            token=token,
            type=interaction_type,
            application_id=self._state.application_id,
            guild_id=guild.id,
            channel_id=channel.id,
            user_id=user_id,
            command_name=name,
            payload=payload,
            attachment_size_limit=guild.upload_limit,
            source_message_id=source_message_id,
            _state=self._state,
        )
        self._state.interactions[interaction.id] = interaction
        self._by_token[token] = interaction
        self._state.notifier.notify()
        return interaction

    # -- token look-ups -----------------------------------------------------------
    def for_callback(self, interaction_id: int, token: str) -> Interaction:
        interaction = self._state.interactions.get(interaction_id)
        if interaction is None or interaction.token != token:
            raise unknown_interaction()
        return interaction

    def for_webhook(self, application_id: int, token: str) -> Interaction:
        if application_id != self._state.application_id:
            raise unknown_webhook()
        interaction = self._by_token.get(token)
        if interaction is None:
            raise invalid_webhook_token()
        age = time.monotonic() - interaction.created_monotonic
        if age > self._state.settings.interaction_token_ttl:
            raise invalid_webhook_token()
        if not interaction.acknowledged:
            raise unknown_webhook()  # no webhook exists until the first response
        return interaction

    def webhook_message(self, interaction: Interaction, message_ref: str) -> Message:
        """``@original`` or a followup id belonging to this interaction."""
        if message_ref == "@original":
            message_id = interaction.original_message_id
        elif message_ref.isdigit() and (
            int(message_ref) in interaction.followup_ids
            or int(message_ref) == interaction.original_message_id
        ):
            message_id = int(message_ref)
        else:
            message_id = None
        message = self._state.messages.get(message_id) if message_id else None
        if message is None or message.deleted:
            raise unknown_message()
        return message

    # -- the bot's answers ---------------------------------------------------------
    def respond(self, interaction: Interaction, body: MessageBody) -> dict[str, Any]:
        """POST /interactions/{id}/{token}/callback."""
        if interaction.acknowledged:
            raise already_acknowledged()
        age = time.monotonic() - interaction.created_monotonic
        if age > self._state.settings.interaction_deadline:
            raise unknown_interaction()
        response_type = body.payload.get("type")
        if response_type not in ALLOWED_RESPONSES.get(interaction.type, set()):
            raise invalid_form_body(
                {
                    "type": field_error(
                        "INTERACTION_RESPONSE_TYPE_INVALID",
                        f"Invalid response type {response_type!r} for this interaction",
                    )
                }
            )
        data = body.payload.get("data") or {}
        ephemeral = bool(int(data.get("flags") or 0) & EPHEMERAL_FLAG)
        try:
            message = self._apply_response(interaction, response_type, data, body, ephemeral)
        except DiscordHTTPError as error:
            # A callback's message fields live under "data", and Discord's errors say so.
            if error.code == 50035 and error.errors and "data" not in error.errors:
                error.errors = {"data": error.errors}
            raise
        interaction.responses.append({"type": response_type, "data": data})
        interaction.acknowledged_monotonic = time.monotonic()
        self._state.notifier.notify()
        result: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": response_type == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": ephemeral,
            }
        }
        if message is not None:
            result["interaction"]["response_message_id"] = str(message.id)
            result["resource"] = {
                "type": response_type,
                "message": self._ops.payloads.message(message),
            }
        return result

    def _apply_response(
        self,
        interaction: Interaction,
        response_type: int,
        data: dict[str, Any],
        body: MessageBody,
        ephemeral: bool,
    ) -> Message | None:
        ops = self._ops
        if response_type in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            channel = ops.channel(interaction.channel_id)
            message = ops.interaction_message(
                channel,
                MessageBody(data, body.files),
                upload_limit=interaction.attachment_size_limit,
                interaction_id=interaction.id,
                ephemeral=ephemeral,
                loading=response_type == DEFERRED_CHANNEL_MESSAGE,
                message_type=CHAT_INPUT_COMMAND_MESSAGE,
            )
            interaction.original_message_id = message.id
            return message
        if response_type == UPDATE_MESSAGE and interaction.source_message_id is not None:
            source = self._state.messages[interaction.source_message_id]
            return ops.edit_message(
                source,
                MessageBody(data, body.files),
                upload_limit=interaction.attachment_size_limit,
            )
        if response_type == AUTOCOMPLETE_RESULT:
            errors = check_autocomplete(data)
            if errors:
                raise invalid_form_body(errors)
            interaction.autocomplete_choices = data.get("choices") or []
        elif response_type == MODAL:
            errors = check_modal(data)
            if errors:
                raise invalid_form_body(errors)
            interaction.modal = data
        return None

    def followup(
        self, interaction: Interaction, body: MessageBody, *, thread_id: int | None
    ) -> Message:
        """POST /webhooks/{app}/{token}."""
        ops = self._ops
        original = interaction.response_message
        if original is not None and original.loading and not original.deleted:
            # A followup right after a deferred response replaces the
            # "thinking" message (deprecated Discord behaviour, still live).
            message = ops.edit_message(
                original, body, upload_limit=interaction.attachment_size_limit
            )
        else:
            channel = ops.channel(thread_id or interaction.channel_id)
            flags = int(body.payload.get("flags") or 0)
            message = ops.interaction_message(
                channel,
                body,
                upload_limit=interaction.attachment_size_limit,
                interaction_id=interaction.id,
                ephemeral=bool(flags & EPHEMERAL_FLAG),
            )
        interaction.followup_ids.append(message.id)
        self._state.notifier.notify()
        return message

    def edit(self, interaction: Interaction, message: Message, body: MessageBody) -> Message:
        return self._ops.edit_message(message, body, upload_limit=interaction.attachment_size_limit)

    def delete(self, message: Message) -> None:
        self._ops.delete_message(message)
