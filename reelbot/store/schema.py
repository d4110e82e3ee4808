"""What every backend shares: the migration files and the columns callers may write."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

_MIGRATION_NAME = re.compile(r"^V(\d+)__[\w-]+\.sql$")

# Columns callers may change through update_task/release; anything else is a bug.
UPDATABLE = frozenset(
    {
        "provider_task_id", "thread_id", "status_message_id", "state", "raw_state",
        "progress", "attempts", "error_streak", "poll_interval", "next_action_at",
        "submitted_at", "finished_at", "error_code", "error_message", "outputs",
        "credits", "status_edited_at", "status_text", "request", "result_message_id",
        "delivery_attempts", "delivery_channel_id", "delivery_sent_at", "submit_key",
        "submit_call", "not_found_streak", "callback_token", "delivered",
    }
)  # fmt: skip


def load_migrations(dialect: str = "sqlite") -> list[tuple[int, str]]:
    """(version, sql) pairs from ``migrations/<dialect>/V<n>__name.sql``, in order."""
    folder = resources.files("reelbot.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, got {versions}")
    return found


def encode_field(column: str, value: Any) -> tuple[str, Any]:
    """(stored column, stored value) for an update_task field: JSON fields are text."""
    if column == "outputs":
        return "outputs_json", json.dumps(value) if value is not None else None
    if column == "request":
        return "request_json", json.dumps(value)
    return column, value
