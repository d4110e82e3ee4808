"""Time-based snowflake ids and Discord timestamps.

discord.py derives ``created_at`` (and an interaction's expiry) from the id, so
ids must be real snowflakes: ``(ms_since_discord_epoch << 22) | low_bits``.
"""

from __future__ import annotations

import datetime as dt
import time

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_time(snowflake: int) -> dt.datetime:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def iso(moment: dt.datetime | None) -> str | None:
    """Discord's ISO-8601 format (always UTC, with offset)."""
    return moment.astimezone(dt.UTC).isoformat() if moment else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SnowflakeFactory:
    """Strictly increasing snowflakes that still carry the current time."""

    def __init__(self) -> None:
        self._last_ms = 0
        self._increment = 0

    def next(self, *, shard: tuple[int, int] | None = None) -> int:
        """A new id; with ``shard=(shard_id, shard_count)`` the id maps to that shard.

        Discord routes a guild to shard ``(guild_id >> 22) % shard_count``; a
        test that needs a guild on a given shard gets an id whose millisecond
        part has the right remainder (it may lie a few ms in the future).
        """
        ms = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, self._last_ms)
        if shard is not None:
            shard_id, shard_count = shard
            ms = max(ms, self._last_ms + 1)
            ms += (shard_id - ms) % shard_count
        if ms == self._last_ms:
            self._increment += 1
            if self._increment >= 1 << 12:
                ms += 1
                self._increment = 0
        else:
            self._increment = 0
        self._last_ms = ms
        return (ms << 22) | self._increment
