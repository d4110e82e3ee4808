"""Discord's documented field limits (shared/DISCORD.md §6), checked like Discord does.

Each ``check_*`` adds to an ``errors`` tree shaped like the one Discord returns
with ``400 {"code": 50035, "message": "Invalid Form Body", "errors": ...}``:
nested by field path (list indexes as strings), each leaf
``{"_errors": [{"code": ..., "message": ...}]}``.

Lengths are counted in Unicode code points *and* UTF-16 units; a value fails
when either count is over the limit (the docs do not say which Discord uses,
so the double takes the stricter reading).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Path = Sequence[str | int]
Errors = dict[str, Any]

CONTENT = 2000
MAX_EMBEDS = 10
EMBED_TOTAL = 6000
EMBED_FIELDS = 25
MAX_ROWS = 5
MAX_ROW_COMPONENTS = 5
CUSTOM_ID = 100
BUTTON_LABEL = 80
SELECT_OPTIONS = 25
SELECT_OPTION_TEXT = 100
SELECT_PLACEHOLDER = 150
V2_FLAG = 1 << 15
V2_MAX_COMPONENTS = 40
V2_TEXT_TOTAL = 4000
MEDIA_GALLERY_ITEMS = 10
MODAL_TITLE = 45
MODAL_COMPONENTS = 5
TEXT_INPUT_LABEL = 45
TEXT_INPUT_VALUE = 4000
TEXT_INPUT_PLACEHOLDER = 100
FILENAME = 1024
NONCE = 25
MENTION_IDS = 100
THREAD_NAME = 100
ARCHIVE_DURATIONS = frozenset({60, 1440, 4320, 10080})
AUTOCOMPLETE_CHOICES = 25
CHOICE_TEXT = 100
COMMAND_DESCRIPTION = 100
COMMAND_OPTIONS = 25
COMMAND_CHOICES = 25
STRING_OPTION_MAX = 6000
COMMAND_TOTAL = 8000

# (key, limit) per embed, and per embed sub-object.
EMBED_TEXT = {"title": 256, "description": 4096}
EMBED_PARTS = {"footer": ("text", 2048), "author": ("name", 256)}
EMBED_FIELD_TEXT = {"name": 256, "value": 1024}

# Component types.
ACTION_ROW, BUTTON, STRING_SELECT, TEXT_INPUT = 1, 2, 3, 4
SELECTS = {3, 5, 6, 7, 8}
SECTION, TEXT_DISPLAY, THUMBNAIL, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER, LABEL = (
    9,
    10,
    11,
    12,
    13,
    14,
    17,
    18,
)
LINK_BUTTON, PREMIUM_BUTTON = 5, 6

# Command names: letters, digits, -, _ and ' (Discord's \p{L}\p{N}; \w is close).
COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
SUB_COMMAND, SUB_COMMAND_GROUP, STRING = 1, 2, 3
CONTEXT_MENU_TYPES = (2, 3)

# Error codes that mean "a limit was exceeded" (what the suite-wide check looks for).
LIMIT_CODES = frozenset(
    {
        "BASE_TYPE_MAX_LENGTH",
        "BASE_TYPE_MIN_LENGTH",
        "BASE_TYPE_BAD_LENGTH",
        "MAX_EMBED_SIZE_EXCEEDED",
        "BASE_TYPE_CHOICES",
        "NUMBER_TYPE_MAX",
        "NUMBER_TYPE_MIN",
        "APPLICATION_COMMAND_TOO_LARGE",
        "APPLICATION_COMMAND_INVALID_NAME",
        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
        "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
        "UI_COMPONENTS_V2_MAX_COMPONENTS_EXCEEDED",
        "UI_COMPONENTS_V2_TEXT_DISPLAY_TOTAL_LENGTH_EXCEEDED",
    }
)


def size(text: str) -> int:
    """Code points or UTF-16 units, whichever is more."""
    return max(len(text), len(text.encode("utf-16-le", "surrogatepass")) // 2)


def add(errors: Errors, path: Path, code: str, message: str) -> None:
    """Put one error at ``path`` in the tree (``_errors`` at the root when empty)."""
    node = errors
    for part in path:
        node = node.setdefault(str(part), {})
    node.setdefault("_errors", []).append({"code": code, "message": message})


def too_long(errors: Errors, path: Path, limit: int) -> None:
    add(errors, path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def bad_length(errors: Errors, path: Path, low: int, high: int) -> None:
    add(errors, path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def max_text(errors: Errors, path: Path, value: Any, limit: int) -> int:
    """Check a string's length; return it (0 for no string) for running totals."""
    if value is None:
        return 0
    text = value if isinstance(value, str) else str(value)
    if size(text) > limit:
        too_long(errors, path, limit)
    return size(text)


def text_between(errors: Errors, path: Path, value: Any, low: int, high: int) -> None:
    text = "" if value is None else str(value)
    if not low <= size(text) <= high:
        bad_length(errors, path, low, high)


def codes(errors: Any) -> set[str]:
    """Every error code in a tree."""
    found: set[str] = set()
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == "_errors" and isinstance(value, list):
                found |= {e.get("code", "") for e in value if isinstance(e, dict)}
            else:
                found |= codes(value)
    return found


def flatten(errors: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(field.path, code, message)`` for each leaf: readable test output."""
    out: list[tuple[str, str, str]] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == "_errors" and isinstance(value, list):
                where = prefix or "<root>"
                out += [(where, e.get("code", ""), e.get("message", "")) for e in value]
            else:
                out += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out


# --- messages ----------------------------------------------------------------------------
def check_content(payload: dict[str, Any], errors: Errors) -> None:
    max_text(errors, ["content"], payload.get("content"), CONTENT)


def check_embeds(embeds: Any, errors: Errors) -> None:
    if not isinstance(embeds, list):
        return
    if len(embeds) > MAX_EMBEDS:
        too_long(errors, ["embeds"], MAX_EMBEDS)
        return
    total = 0
    for index, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            continue
        here: list[str | int] = ["embeds", index]
        for key, limit in EMBED_TEXT.items():
            total += max_text(errors, [*here, key], embed.get(key), limit)
        for part, (key, limit) in EMBED_PARTS.items():
            sub = embed.get(part)
            if isinstance(sub, dict):
                total += max_text(errors, [*here, part, key], sub.get(key), limit)
        fields = embed.get("fields") or []
        if len(fields) > EMBED_FIELDS:
            too_long(errors, [*here, "fields"], EMBED_FIELDS)
        for f_index, item in enumerate(fields[:EMBED_FIELDS]):
            if not isinstance(item, dict):
                continue
            for key, limit in EMBED_FIELD_TEXT.items():
                total += max_text(errors, [*here, "fields", f_index, key], item.get(key), limit)
    if total > EMBED_TOTAL and "embeds" not in errors:
        add(
            errors,
            ["embeds"],
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {EMBED_TOTAL}",
        )


def _check_button(button: dict[str, Any], here: list[str | int], errors: Errors) -> None:
    max_text(errors, [*here, "label"], button.get("label"), BUTTON_LABEL)
    if button.get("style") not in (LINK_BUTTON, PREMIUM_BUTTON):
        text_between(errors, [*here, "custom_id"], button.get("custom_id"), 1, CUSTOM_ID)


def _check_select(select: dict[str, Any], here: list[str | int], errors: Errors) -> None:
    text_between(errors, [*here, "custom_id"], select.get("custom_id"), 1, CUSTOM_ID)
    max_text(errors, [*here, "placeholder"], select.get("placeholder"), SELECT_PLACEHOLDER)
    options = select.get("options") or []
    if len(options) > SELECT_OPTIONS:
        too_long(errors, [*here, "options"], SELECT_OPTIONS)
    for o_index, option in enumerate(options):
        if isinstance(option, dict):
            for key in ("label", "value", "description"):
                if key in option:
                    text_between(
                        errors, [*here, "options", o_index, key], option[key], 1, SELECT_OPTION_TEXT
                    )


def _check_classic(components: list[Any], errors: Errors) -> None:
    if len(components) > MAX_ROWS:
        too_long(errors, ["components"], MAX_ROWS)
        return
    for r_index, row in enumerate(components):
        if not isinstance(row, dict):
            continue
        children = row.get("components") or []
        here: list[str | int] = ["components", r_index, "components"]
        if len(children) > MAX_ROW_COMPONENTS:
            too_long(errors, here, MAX_ROW_COMPONENTS)
        for c_index, child in enumerate(children):
            if not isinstance(child, dict):
                continue
            if child.get("type") == BUTTON:
                _check_button(child, [*here, c_index], errors)
            elif child.get("type") in SELECTS:
                _check_select(child, [*here, c_index], errors)


def _walk_v2(
    components: list[Any], path: list[str | int], errors: Errors, counts: dict[str, int]
) -> None:
    for index, component in enumerate(components):
        if not isinstance(component, dict):
            continue
        here = [*path, index]
        counts["components"] += 1
        kind = component.get("type")
        if kind == TEXT_DISPLAY:
            counts["text"] += size(str(component.get("content") or ""))
        elif kind == BUTTON:
            _check_button(component, here, errors)
        elif kind in SELECTS:
            _check_select(component, here, errors)
        elif kind == MEDIA_GALLERY:
            items = component.get("items") or []
            if not 1 <= len(items) <= MEDIA_GALLERY_ITEMS:
                bad_length(errors, [*here, "items"], 1, MEDIA_GALLERY_ITEMS)
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            _walk_v2([accessory], [*here, "accessory"], errors, counts)
        children = component.get("components")
        if isinstance(children, list):
            _walk_v2(children, [*here, "components"], errors, counts)


def check_components(payload: dict[str, Any], errors: Errors) -> None:
    components = payload.get("components")
    v2 = bool(int(payload.get("flags") or 0) & V2_FLAG)
    if v2:
        if payload.get("content") or payload.get("embeds"):
            add(
                errors,
                ["content" if payload.get("content") else "embeds"],
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' and 'embeds' fields cannot be used when using "
                "MessageFlags.IS_COMPONENTS_V2",
            )
        counts = {"components": 0, "text": 0}
        _walk_v2(components or [], ["components"], errors, counts)
        if counts["components"] > V2_MAX_COMPONENTS:
            add(
                errors,
                ["components"],
                "UI_COMPONENTS_V2_MAX_COMPONENTS_EXCEEDED",
                f"Must be {V2_MAX_COMPONENTS} or fewer in total.",
            )
        if counts["text"] > V2_TEXT_TOTAL:
            add(
                errors,
                ["components"],
                "UI_COMPONENTS_V2_TEXT_DISPLAY_TOTAL_LENGTH_EXCEEDED",
                f"Text displays must be {V2_TEXT_TOTAL} or fewer characters in total.",
            )
    elif isinstance(components, list):
        _check_classic(components, errors)


def check_attachments(payload: dict[str, Any], upload_names: Sequence[str], errors: Errors) -> None:
    for index, entry in enumerate(payload.get("attachments") or []):
        if isinstance(entry, dict) and "filename" in entry:
            max_text(errors, ["attachments", index, "filename"], entry["filename"], FILENAME)
    for index, name in enumerate(upload_names):
        max_text(errors, [f"files[{index}]", "filename"], name, FILENAME)


def check_nonce(payload: dict[str, Any], errors: Errors) -> None:
    nonce = payload.get("nonce")
    if nonce is not None:
        max_text(errors, ["nonce"], nonce, NONCE)


def check_allowed_mentions(payload: dict[str, Any], errors: Errors) -> None:
    allowed = payload.get("allowed_mentions")
    if not isinstance(allowed, dict):
        return
    parse = set(allowed.get("parse") or [])
    for kind in ("users", "roles"):
        ids = allowed.get(kind) or []
        if kind in parse and ids:
            add(
                errors,
                ["allowed_mentions"],
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )
        if len(ids) > MENTION_IDS:
            too_long(errors, ["allowed_mentions", kind], MENTION_IDS)


def check_message(payload: dict[str, Any], upload_names: Sequence[str] = ()) -> Errors:
    """Every limit of a message create/edit body (channel, webhook or interaction)."""
    errors: Errors = {}
    check_content(payload, errors)
    check_embeds(payload.get("embeds") or [], errors)
    check_components(payload, errors)
    check_attachments(payload, upload_names, errors)
    check_nonce(payload, errors)
    check_allowed_mentions(payload, errors)
    return errors


# --- threads -----------------------------------------------------------------------------
def check_thread(payload: dict[str, Any]) -> Errors:
    errors: Errors = {}
    name = payload.get("name")
    if not isinstance(name, str) or not 1 <= size(name) <= THREAD_NAME:
        bad_length(errors, ["name"], 1, THREAD_NAME)
    duration = payload.get("auto_archive_duration")
    if duration is not None and duration not in ARCHIVE_DURATIONS:
        add(
            errors,
            ["auto_archive_duration"],
            "BASE_TYPE_CHOICES",
            f"Value must be one of {sorted(ARCHIVE_DURATIONS)}.",
        )
    return errors


# --- interaction callbacks -----------------------------------------------------------------
def check_autocomplete(data: dict[str, Any]) -> Errors:
    errors: Errors = {}
    choices = data.get("choices") or []
    if len(choices) > AUTOCOMPLETE_CHOICES:
        too_long(errors, ["data", "choices"], AUTOCOMPLETE_CHOICES)
        return errors
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        here: list[str | int] = ["data", "choices", index]
        text_between(errors, [*here, "name"], choice.get("name"), 1, CHOICE_TEXT)
        value = choice.get("value")
        if isinstance(value, str):
            text_between(errors, [*here, "value"], value, 1, CHOICE_TEXT)
    return errors


def check_modal(data: dict[str, Any]) -> Errors:
    errors: Errors = {}
    text_between(errors, ["data", "title"], data.get("title"), 1, MODAL_TITLE)
    text_between(errors, ["data", "custom_id"], data.get("custom_id"), 1, CUSTOM_ID)
    rows = data.get("components") or []
    if not 1 <= len(rows) <= MODAL_COMPONENTS:
        bad_length(errors, ["data", "components"], 1, MODAL_COMPONENTS)
    for r_index, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        # A classic action row holds the text input; a Label (type 18) holds it as "component".
        inner = row.get("components") or ([row["component"]] if "component" in row else [])
        if row.get("type") == LABEL:
            max_text(errors, ["data", "components", r_index, "label"], row.get("label"), 45)
        for c_index, item in enumerate(inner):
            if not isinstance(item, dict) or item.get("type") != TEXT_INPUT:
                continue
            here: list[str | int] = ["data", "components", r_index, "components", c_index]
            text_between(errors, [*here, "custom_id"], item.get("custom_id"), 1, CUSTOM_ID)
            max_text(errors, [*here, "label"], item.get("label"), TEXT_INPUT_LABEL)
            max_text(errors, [*here, "value"], item.get("value"), TEXT_INPUT_VALUE)
            placeholder = item.get("placeholder")
            max_text(errors, [*here, "placeholder"], placeholder, TEXT_INPUT_PLACEHOLDER)
    return errors


# --- application commands -------------------------------------------------------------------
def _choices(option: dict[str, Any], here: list[str | int], errors: Errors) -> int:
    choices = option.get("choices") or []
    if len(choices) > COMMAND_CHOICES:
        too_long(errors, [*here, "choices"], COMMAND_CHOICES)
    total = 0
    for c_index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        name = str(choice.get("name") or "")
        text_between(errors, [*here, "choices", c_index, "name"], name, 1, CHOICE_TEXT)
        total += size(name)
        value = choice.get("value")
        if isinstance(value, str):
            text_between(errors, [*here, "choices", c_index, "value"], value, 1, CHOICE_TEXT)
            total += size(value)
    return total


def _string_lengths(option: dict[str, Any], here: list[str | int], errors: Errors) -> None:
    low, high = option.get("min_length"), option.get("max_length")
    if low is not None and not 0 <= int(low) <= STRING_OPTION_MAX:
        add(errors, [*here, "min_length"], "NUMBER_TYPE_MAX", "Must be between 0 and 6000.")
    if high is not None and not 1 <= int(high) <= STRING_OPTION_MAX:
        add(errors, [*here, "max_length"], "NUMBER_TYPE_MAX", "Must be between 1 and 6000.")


def check_options(options: list[Any], path: list[str | int], errors: Errors) -> int:
    """Check an options list; return the characters it adds to the command's total."""
    if len(options) > COMMAND_OPTIONS:
        too_long(errors, [*path, "options"], COMMAND_OPTIONS)
    total = 0
    seen: set[str] = set()
    optional_seen = False
    for index, option in enumerate(options):
        if not isinstance(option, dict):
            continue
        here: list[str | int] = [*path, "options", index]
        name = str(option.get("name", ""))
        if not COMMAND_NAME_RE.match(name) or name != name.lower():
            add(errors, [*here, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
        if name in seen:
            add(
                errors,
                [*here, "name"],
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        seen.add(name)
        description = str(option.get("description", ""))
        text_between(errors, [*here, "description"], description, 1, COMMAND_DESCRIPTION)
        total += size(name) + size(description)
        total += _choices(option, here, errors)
        if option.get("choices") and option.get("autocomplete"):
            add(
                errors,
                [*here, "autocomplete"],
                "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_AND_CHOICES",
                "Autocomplete cannot be set with choices",
            )
        if option.get("type") == STRING:
            _string_lengths(option, here, errors)
        if option.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
            total += check_options(option.get("options") or [], here, errors)
            continue
        if option.get("required"):
            if optional_seen:
                add(
                    errors,
                    [*here, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True
    return total


def check_command(command: dict[str, Any], path: list[str | int], errors: Errors) -> None:
    name = str(command.get("name", ""))
    command_type = command.get("type", 1)
    if command_type in CONTEXT_MENU_TYPES:
        # Context-menu names are shown as typed: any 1-32 characters, spaces allowed.
        text_between(errors, [*path, "name"], name, 1, 32)
    elif not COMMAND_NAME_RE.match(name) or name != name.lower():
        add(errors, [*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Invalid name")
    description = str(command.get("description") or "")
    if command_type in CONTEXT_MENU_TYPES:
        if description:
            add(
                errors,
                [*path, "description"],
                "BASE_TYPE_MAX_LENGTH",
                "Context menu commands cannot have a description.",
            )
    else:
        text_between(errors, [*path, "description"], description, 1, COMMAND_DESCRIPTION)
    total = size(name) + size(description)
    total += check_options(command.get("options") or [], path, errors)
    if total > COMMAND_TOTAL:
        add(
            errors,
            path,
            "APPLICATION_COMMAND_TOO_LARGE",
            f"Command exceeds maximum size ({COMMAND_TOTAL})",
        )
