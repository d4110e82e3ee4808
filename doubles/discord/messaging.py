"""Reading and validating message bodies the way Discord does.

Shared by channel routes (bot token) and interaction/webhook routes. Bodies
are JSON or multipart (``payload_json`` + ``files[n]``, as discord.py sends).
"""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from .errors import (
    empty_message,
    entity_too_large,
    field_error,
    invalid_form_body,
)
from .limits import check_message

MAX_FILES = 10
FILES_FIELD_RE = re.compile(r"^files\[(\d+)\]$")
USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")
UNSAFE_FILENAME_RE = re.compile(r"[^\w.\-]")


@dataclass
class UploadedFile:
    index: int
    filename: str
    data: bytes = field(repr=False)
    content_type: str | None


@dataclass
class MessageBody:
    payload: dict[str, Any]
    files: list[UploadedFile] = field(default_factory=list)


def sanitize_filename(name: str) -> str:
    # Discord replaces characters it does not keep in CDN paths.
    return UNSAFE_FILENAME_RE.sub("_", name) or "file"


def guess_content_type(filename: str, declared: str | None) -> str | None:
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed
    return None if declared in (None, "application/octet-stream") else declared


async def read_body(request: web.Request) -> MessageBody:
    """JSON or multipart body; an absent body reads as ``{}``."""
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request)
    raw = await request.read()
    if not raw:
        return MessageBody({})
    try:
        payload = json.loads(raw)
    except ValueError:
        raise invalid_form_body(
            {"_errors": [{"code": "JSON", "message": "Invalid JSON"}]}
        ) from None
    return MessageBody(payload if isinstance(payload, dict) else {"_list": payload})


async def _read_multipart(request: web.Request) -> MessageBody:
    reader = await request.multipart()
    payload: dict[str, Any] = {}
    files: list[UploadedFile] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "payload_json":
            payload = json.loads(await part.text())
        elif match := FILES_FIELD_RE.match(name):
            data = bytes(await part.read(decode=False))
            declared = part.headers.get("Content-Type")
            files.append(UploadedFile(int(match[1]), part.filename or name, data, declared))
    return MessageBody(payload, files)


def validate(body: MessageBody, *, upload_limit: int, kept_attachments: int = 0) -> None:
    """Raise what Discord raises for a bad create/edit body.

    Order matters for tests: file count, then per-file size (413 / 40005,
    checked per attachment since 2025), then form errors, then emptiness.
    """
    payload = body.payload
    if len(body.files) + kept_attachments > MAX_FILES:
        raise invalid_form_body(
            {"attachments": field_error("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")}
        )
    if any(len(f.data) > upload_limit for f in body.files):
        raise entity_too_large()
    errors = check_message(payload, [f.filename for f in body.files])
    if errors:
        raise invalid_form_body(errors)


def is_empty(content: str, embeds: list[Any], attachments: int, components: list[Any]) -> bool:
    return not (content or embeds or attachments or components)


def require_not_empty(
    content: str, embeds: list[Any], attachments: int, components: list[Any]
) -> None:
    if is_empty(content, embeds, attachments, components):
        raise empty_message()


def new_files(body: MessageBody) -> list[tuple[UploadedFile, dict[str, Any]]]:
    """Pair each uploaded file with its ``attachments`` entry (matched by ``id`` = n)."""
    entries = {
        str(a.get("id")): a for a in body.payload.get("attachments") or [] if isinstance(a, dict)
    }
    return [(f, entries.get(str(f.index), {})) for f in sorted(body.files, key=lambda f: f.index)]


def kept_attachment_ids(payload: dict[str, Any], uploaded: list[UploadedFile]) -> set[int] | None:
    """Existing attachment ids an edit keeps; None when the edit leaves attachments alone."""
    if "attachments" not in payload:
        return None
    new_indexes = {str(f.index) for f in uploaded}
    kept: set[int] = set()
    for entry in payload.get("attachments") or []:
        entry_id = str(entry.get("id"))
        if entry_id not in new_indexes and entry_id.isdigit():
            kept.add(int(entry_id))
    return kept


@dataclass
class Mentions:
    users: list[int]
    roles: list[int]
    everyone: bool


def resolve_mentions(
    content: str, allowed: dict[str, Any] | None, known_users: set[int], known_roles: set[int]
) -> Mentions:
    """Who the message pings; ``allowed_mentions`` filters it as on Discord."""
    users = [int(u) for u in USER_MENTION_RE.findall(content) if int(u) in known_users]
    roles = [int(r) for r in ROLE_MENTION_RE.findall(content) if int(r) in known_roles]
    everyone = "@everyone" in content or "@here" in content
    if allowed is None:
        return Mentions(list(dict.fromkeys(users)), list(dict.fromkeys(roles)), everyone)
    parse = set(allowed.get("parse") or [])
    allowed_users = {int(u) for u in allowed.get("users") or []}
    allowed_roles = {int(r) for r in allowed.get("roles") or []}
    users = [u for u in users if "users" in parse or u in allowed_users]
    roles = [r for r in roles if "roles" in parse or r in allowed_roles]
    return Mentions(
        list(dict.fromkeys(users)), list(dict.fromkeys(roles)), everyone and "everyone" in parse
    )
