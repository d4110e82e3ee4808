"""The task store: schema, migrations and queries behind one interface."""

from __future__ import annotations

from reelbot.config import database_backend, sqlite_path_from_url
from reelbot.store.base import Store
from reelbot.store.models import (
    CooldownActive,
    NewTask,
    QuotaExceeded,
    QuotaPolicy,
    QuotaStatus,
    SubmissionRefused,
    TaskRow,
    TooManyInFlight,
)
from reelbot.store.postgres import PostgresStore
from reelbot.store.sqlite import SqliteStore


def open_store(database_url: str) -> Store:
    """The backend for ``DATABASE_URL`` (not yet opened): its scheme picks it."""
    if database_backend(database_url) == "postgres":
        return PostgresStore(database_url)
    return SqliteStore(sqlite_path_from_url(database_url))


__all__ = [
    "CooldownActive",
    "NewTask",
    "PostgresStore",
    "QuotaExceeded",
    "QuotaPolicy",
    "QuotaStatus",
    "SqliteStore",
    "Store",
    "SubmissionRefused",
    "TaskRow",
    "TooManyInFlight",
    "open_store",
]
