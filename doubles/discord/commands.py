"""Application commands recorded from the bot's sync (PUT .../commands).

The recorded schema is the contract: ``DiscordDouble.invoke`` types options
from it and refuses anything Discord could not have sent. Sync validates the
main rules Discord enforces, so schema bugs fail here rather than in prod.
"""

from __future__ import annotations

from typing import Any

from .errors import invalid_form_body
from .limits import check_command
from .snowflake import SnowflakeFactory


def validate_command(command: dict[str, Any], where: str, errors: dict[str, Any]) -> None:
    """Discord's rules for one command of a sync, errors nested under its index."""
    check_command(command, [where], errors)


class CommandRegistry:
    def __init__(self, snowflakes: SnowflakeFactory, application_id: int) -> None:
        self._snowflakes = snowflakes
        self._application_id = application_id
        # scope (None = global, else guild id) -> name/type -> stored command
        self._scopes: dict[int | None, dict[tuple[str, int], dict[str, Any]]] = {}

    def _stored(self, guild_id: int | None, command: dict[str, Any]) -> dict[str, Any]:
        key = (command["name"], command.get("type", 1))
        previous = self._scopes.get(guild_id, {}).get(key)
        # Discord keeps a command's id across syncs when its name and type match.
        command_id = previous["id"] if previous else str(self._snowflakes.next())
        stored = {
            "type": 1,
            "description": "",  # context-menu commands have none; Discord answers ""
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **command,
            "id": command_id,
            "application_id": str(self._application_id),
            "version": str(self._snowflakes.next()),
        }
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
        return stored

    def replace(self, guild_id: int | None, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk overwrite (what ``tree.sync()`` does)."""
        errors: dict[str, Any] = {}
        for index, command in enumerate(commands):
            validate_command(command, str(index), errors)
        names = [(c.get("name"), c.get("type", 1)) for c in commands]
        if len(names) != len(set(names)):
            errors.setdefault("_errors", []).append(
                {"code": "APPLICATION_COMMANDS_DUPLICATE_NAME", "message": "Duplicate names"}
            )
        if errors:
            raise invalid_form_body(errors)
        stored = [self._stored(guild_id, c) for c in commands]
        self._scopes[guild_id] = {(c["name"], c["type"]): c for c in stored}
        return stored

    def upsert(self, guild_id: int | None, command: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        validate_command(command, "0", errors)
        if errors:
            raise invalid_form_body(errors)
        stored = self._stored(guild_id, command)
        self._scopes.setdefault(guild_id, {})[(stored["name"], stored["type"])] = stored
        return stored

    def delete(self, guild_id: int | None, command_id: str) -> bool:
        scope = self._scopes.get(guild_id, {})
        for key, command in list(scope.items()):
            if command["id"] == command_id:
                del scope[key]
                return True
        return False

    def in_scope(self, guild_id: int | None) -> list[dict[str, Any]]:
        return list(self._scopes.get(guild_id, {}).values())

    def get(self, guild_id: int | None, command_id: str) -> dict[str, Any] | None:
        return next((c for c in self.in_scope(guild_id) if c["id"] == command_id), None)

    def find(self, name: str, guild_id: int | None, command_type: int = 1) -> dict[str, Any] | None:
        """A command as Discord resolves it: guild scope first, then global. Type 1 is
        chat input (slash), 2 a user and 3 a message context-menu command."""
        for scope in (guild_id, None) if guild_id is not None else (None,):
            command = self._scopes.get(scope, {}).get((name, command_type))
            if command is not None:
                return command
        return None

    def describe(self, guild_id: int | None) -> str:
        names = sorted(c["name"] for c in self.in_scope(None))
        text = f"global: {names or 'none'}"
        if guild_id is not None:
            guild_names = sorted(c["name"] for c in self.in_scope(guild_id))
            text += f"; guild {guild_id}: {guild_names or 'none'}"
        return text
