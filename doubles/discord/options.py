"""Typing a test's ``invoke(..., options=...)`` against the recorded command schema.

Discord only ever sends options that exist in the synced schema, with values
of the declared type, choices honoured and required options present. Doing
the same here turns schema drift between the bot and its tests into a clear
:class:`CommandContractError` instead of a silently passing test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import CommandContractError

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
TYPE_NAMES = {
    STRING: "string",
    INTEGER: "integer",
    BOOLEAN: "boolean",
    USER: "user",
    CHANNEL: "channel",
    ROLE: "role",
    MENTIONABLE: "mentionable",
    NUMBER: "number",
    ATTACHMENT: "attachment",
}
MAX_SAFE_INTEGER = 2**53


class Resolver(Protocol):
    """Builds ``resolved`` entries for snowflake options."""

    def user(self, user_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]: ...
    def channel(self, channel_id: int) -> dict[str, Any]: ...
    def role(self, role_id: int) -> dict[str, Any]: ...
    def attachment(
        self, filename: str, data: bytes, content_type: str | None
    ) -> dict[str, Any]: ...
    def is_role(self, snowflake: int) -> bool: ...


@dataclass
class Resolved:
    users: dict[str, Any] = field(default_factory=dict)
    members: dict[str, Any] = field(default_factory=dict)
    roles: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v}


def _names(options: list[dict[str, Any]]) -> list[str]:
    return [o["name"] for o in options]


def walk_path(command: dict[str, Any], path: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Follow ``group sub`` through the schema; return the leaf's options and the path."""
    options: list[dict[str, Any]] = command.get("options") or []
    walked = [command["name"]]
    for part in path:
        sub = next(
            (
                o
                for o in options
                if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
            ),
            None,
        )
        if sub is None:
            raise CommandContractError(
                f"/{' '.join(walked)} has no subcommand {part!r} in the recorded schema; "
                f"it has {_names(options)}"
            )
        walked.append(part)
        options = sub.get("options") or []
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in options):
        raise CommandContractError(
            f"/{' '.join(walked)} is a group; Discord cannot invoke it directly. "
            f"Pick one of {_names(options)}"
        )
    return options, walked


def _check_type(name: str, schema: dict[str, Any], value: Any, *, partial: bool) -> Any:
    kind = schema["type"]
    label = TYPE_NAMES.get(kind, str(kind))
    if partial:
        # The focused autocomplete value is whatever the user has typed so far.
        return str(value)
    if kind == STRING:
        if not isinstance(value, str):
            raise CommandContractError(f"option {name!r} is a string, got {value!r}")
        if len(value) < schema.get("min_length", 0) or len(value) > schema.get("max_length", 6000):
            raise CommandContractError(
                f"option {name!r} length {len(value)} is outside "
                f"[{schema.get('min_length', 0)}, {schema.get('max_length', 6000)}]"
            )
    elif kind in (INTEGER, NUMBER):
        numeric = (int,) if kind == INTEGER else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise CommandContractError(f"option {name!r} is an {label}, got {value!r}")
        if abs(value) > MAX_SAFE_INTEGER:
            raise CommandContractError(f"option {name!r} is out of Discord's range")
        low, high = schema.get("min_value"), schema.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise CommandContractError(f"option {name!r}={value} is outside [{low}, {high}]")
    elif kind == BOOLEAN and not isinstance(value, bool):
        raise CommandContractError(f"option {name!r} is a boolean, got {value!r}")
    choices = schema.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise CommandContractError(
            f"option {name!r}={value!r} is not one of the recorded choices "
            f"{[c['value'] for c in choices]}"
        )
    return value


def _snowflake_value(
    name: str, schema: dict[str, Any], value: Any, resolver: Resolver, resolved: Resolved
) -> str:
    kind = schema["type"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandContractError(
            f"option {name!r} ({TYPE_NAMES[kind]}) needs an id, got {value!r}"
        )
    key = str(value)
    if kind == USER or (kind == MENTIONABLE and not resolver.is_role(value)):
        user, member = resolver.user(value)
        resolved.users[key] = user
        if member is not None:
            resolved.members[key] = member
    elif kind in (ROLE, MENTIONABLE):
        resolved.roles[key] = resolver.role(value)
    elif kind == CHANNEL:
        channel = resolver.channel(value)
        allowed = schema.get("channel_types")
        if allowed and channel["type"] not in allowed:
            raise CommandContractError(
                f"option {name!r} accepts channel types {allowed}, got type {channel['type']}"
            )
        resolved.channels[key] = channel
    return key


def build_options(
    schema_options: list[dict[str, Any]],
    values: Mapping[str, Any],
    attachments: Mapping[str, tuple[str, bytes, str | None]],
    resolver: Resolver,
    *,
    focused: str | None = None,
) -> tuple[list[dict[str, Any]], Resolved]:
    """Typed option list (as Discord sends it) plus its ``resolved`` data."""
    by_name = {o["name"]: o for o in schema_options}
    supplied = {**values, **attachments}
    unknown = [name for name in supplied if name not in by_name]
    if unknown:
        raise CommandContractError(
            f"options {unknown} are not in the recorded schema; recorded: {list(by_name)}"
        )
    # None means "not given", so callers can pass optional options through as-is.
    given = {k: v for k, v in supplied.items() if v is not None}
    if focused is not None and focused not in given:
        given[focused] = ""
    if focused is None:
        missing = [
            o["name"] for o in schema_options if o.get("required") and o["name"] not in given
        ]
        if missing:
            raise CommandContractError(f"required options {missing} were not given")
    resolved = Resolved()
    typed: list[dict[str, Any]] = []
    for name, schema in by_name.items():  # schema order, like the Discord client
        if name not in given:
            continue
        value = given[name]
        kind = schema["type"]
        option: dict[str, Any] = {"name": name, "type": kind}
        if name == focused:
            if not schema.get("autocomplete"):
                raise CommandContractError(
                    f"option {name!r} is not registered with autocomplete=True"
                )
            option["value"] = _check_type(name, schema, value, partial=True)
            option["focused"] = True
        elif kind == ATTACHMENT:
            if focused is not None:
                continue  # attachments are not uploaded while the user is still typing
            filename, data, content_type = value
            payload = resolver.attachment(filename, data, content_type)
            resolved.attachments[payload["id"]] = payload
            option["value"] = payload["id"]
        elif kind in (USER, CHANNEL, ROLE, MENTIONABLE):
            option["value"] = _snowflake_value(name, schema, value, resolver, resolved)
        else:
            option["value"] = _check_type(name, schema, value, partial=False)
        typed.append(option)
    return typed, resolved


def nest(path_schema: list[dict[str, Any]], leaf: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wrap leaf options in their subcommand (and group) option objects."""
    options = leaf
    for sub in reversed(path_schema):
        options = [{"name": sub["name"], "type": sub["type"], "options": options}]
    return options


def subcommand_chain(command: dict[str, Any], path: list[str]) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    options = command.get("options") or []
    for part in path:
        sub = next(o for o in options if o["name"] == part)
        chain.append(sub)
        options = sub.get("options") or []
    return chain
