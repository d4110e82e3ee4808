"""What both store backends share in Python: quota resolution, limit checks, usage sums,
server settings and the audit log's pages.

The SQL here is written once, with ``?`` placeholders, in the subset both SQLite and
PostgreSQL speak (``ON CONFLICT … DO UPDATE``, ``RETURNING``, ``COALESCE``). A backend
provides four primitives and keeps only the SQL that really differs:

- ``_transaction()``: an async context manager yielding a connection in a transaction;
- ``_reading()``: an async context manager yielding a connection for reads;
- ``_q(conn, sql, params)``: rows of a statement, as dicts;
- ``_x(conn, sql, params)``: run a statement.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from reelbot.failover.health import COOLOFF_BASE, PROBE_LEASE, Health, Outcome, Transition
from reelbot.failover.health import apply as apply_outcome
from reelbot.store.models import (
    BudgetExceeded,
    CharacterImage,
    CharacterRow,
    GuildSettings,
    NewTask,
    QuotaExceeded,
    QuotaPolicy,
    QuotaStatus,
    TaskRow,
    next_utc_midnight,
    utc_day,
)

# Characters: the columns callers may change, and the select every lookup uses.
CHARACTER_FIELDS = frozenset(
    {"state", "thread_id", "panel_message_id", "provider_model_id", "task_id", "shared", "error"}
)
CHARACTER_SELECT = (
    "SELECT c.*, (SELECT COUNT(*) FROM character_images i WHERE i.character_id = c.id)"
    " AS image_count FROM characters c"
)
CONFIG_FIELDS = frozenset({"server_budget", "default_provider", "default_model"})
ENTRY_KINDS = frozenset({"channel", "banned_word", "price", "role_limit"})


def resolve_limit(
    *,
    user_limit: int | None,
    role_limits: Mapping[int, int],
    role_ids: Sequence[int],
    guild_default: int | None,
    global_default: int,
) -> tuple[int, str, int | None]:
    """(limit, source, role id): per-user wins; else the highest of the member's role
    limits (0 = unlimited is the highest); else the server default; else DAILY_QUOTA."""
    if user_limit is not None:
        return user_limit, "user", None
    mine = [(role_limits[r], r) for r in role_ids if r in role_limits]
    if mine:
        unlimited = [r for limit, r in mine if limit == 0]
        if unlimited:
            return 0, "role", unlimited[0]
        limit, role = max(mine)
        return limit, "role", role
    if guild_default is not None:
        return guild_default, "guild", None
    return global_default, "default", None


def check_charge(status: QuotaStatus, price: int, *, enforce: bool) -> None:
    """Refuse a charge of ``price`` credits that passes the server budget (always) or
    the member's own limit (unless ``enforce`` is off)."""
    if status.server_limit and status.server_used + price > status.server_limit:
        raise BudgetExceeded(status, price)
    if enforce and status.limit and status.used + price > status.limit:
        raise QuotaExceeded(status)


class SharedQueries(ABC):
    """Base of SqliteStore and PostgresStore (see the module docstring): the queries
    written once, over the four primitives each backend provides."""

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[Any]: ...

    @abstractmethod
    def _reading(self) -> AbstractAsyncContextManager[Any]: ...

    @abstractmethod
    async def _q(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def _x(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> None: ...

    # --- quotas ---------------------------------------------------------------------------
    async def set_user_limit(self, guild_id: int, user_id: int, limit: int) -> None:
        async with self._transaction() as conn:
            await self._x(
                conn,
                "INSERT INTO user_quotas (guild_id, user_id, daily_limit) VALUES (?, ?, ?) "
                "ON CONFLICT (guild_id, user_id) DO UPDATE SET daily_limit = excluded.daily_limit",
                (guild_id, user_id, limit),
            )

    async def set_guild_default(self, guild_id: int, limit: int) -> None:
        async with self._transaction() as conn:
            await self._x(
                conn,
                "INSERT INTO guild_settings (guild_id, daily_quota) VALUES (?, ?) "
                "ON CONFLICT (guild_id) DO UPDATE SET daily_quota = excluded.daily_quota",
                (guild_id, limit),
            )

    async def quota_status(
        self,
        guild_id: int,
        user_id: int,
        *,
        now: float,
        default_limit: int,
        role_ids: Sequence[int] = (),
    ) -> QuotaStatus:
        async with self._reading() as conn:
            return await self._quota_status(
                conn, guild_id, user_id, now=now, default_limit=default_limit, role_ids=role_ids
            )

    async def _quota_status(
        self,
        conn: Any,
        guild_id: int,
        user_id: int,
        *,
        now: float,
        default_limit: int,
        role_ids: Sequence[int] = (),
    ) -> QuotaStatus:
        day = utc_day(now)
        rows = await self._q(
            conn,
            "SELECT"
            " (SELECT daily_limit FROM user_quotas WHERE guild_id = ? AND user_id = ?) AS ul,"
            " (SELECT daily_quota FROM guild_settings WHERE guild_id = ?) AS gl,"
            " (SELECT used FROM quota_usage WHERE guild_id = ? AND user_id = ? AND day = ?)"
            " AS used,"
            " (SELECT server_budget FROM guild_config WHERE guild_id = ?) AS budget,"
            " (SELECT COALESCE(SUM(used), 0) FROM quota_usage WHERE guild_id = ? AND day = ?)"
            " AS spent",
            (guild_id, user_id, guild_id, guild_id, user_id, day, guild_id, guild_id, day),
        )
        row = rows[0]
        role_limits: dict[int, int] = {}
        if role_ids:
            for r in await self._q(
                conn,
                "SELECT entry, value FROM guild_entries WHERE guild_id = ? AND kind = 'role_limit'",
                (guild_id,),
            ):
                role_limits[int(r["entry"])] = int(r["value"])
        limit, source, role = resolve_limit(
            user_limit=row["ul"],
            role_limits=role_limits,
            role_ids=role_ids,
            guild_default=row["gl"],
            global_default=default_limit,
        )
        return QuotaStatus(
            limit=int(limit),
            used=int(row["used"] or 0),
            day=day,
            resets_at=next_utc_midnight(now),
            source=source,
            role_id=role,
            server_used=int(row["spent"] or 0),
            server_limit=int(row["budget"] or 0),
        )

    async def _check_charge(
        self, conn: Any, task: NewTask, *, now: float, policy: QuotaPolicy
    ) -> None:
        """Inside the creating transaction (and the backend's lock): budget and limit."""
        status = await self._quota_status(
            conn,
            task.guild_id,
            task.requester_id,
            now=now,
            default_limit=policy.default_limit,
            role_ids=policy.role_ids,
        )
        check_charge(status, task.quota_weight, enforce=policy.enforce)

    async def server_spend(self, guild_id: int, *, now: float) -> int:
        async with self._reading() as conn:
            rows = await self._q(
                conn,
                "SELECT COALESCE(SUM(used), 0) AS spent FROM quota_usage "
                "WHERE guild_id = ? AND day = ?",
                (guild_id, utc_day(now)),
            )
        return int(rows[0]["spent"] or 0)

    async def top_spenders(
        self, guild_id: int, *, now: float, limit: int = 5
    ) -> list[tuple[int, int]]:
        """(user id, credits) of today's biggest spenders, biggest first."""
        async with self._reading() as conn:
            rows = await self._q(
                conn,
                "SELECT user_id, used FROM quota_usage WHERE guild_id = ? AND day = ? "
                "AND used > 0 ORDER BY used DESC, user_id LIMIT ?",
                (guild_id, utc_day(now), limit),
            )
        return [(int(r["user_id"]), int(r["used"])) for r in rows]

    async def user_limit(self, guild_id: int, user_id: int) -> int | None:
        async with self._reading() as conn:
            rows = await self._q(
                conn,
                "SELECT daily_limit FROM user_quotas WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            )
        return int(rows[0]["daily_limit"]) if rows else None

    # --- server settings ------------------------------------------------------------------
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        async with self._reading() as conn:
            config = await self._q(
                conn,
                "SELECT server_budget, default_provider, default_model FROM guild_config "
                "WHERE guild_id = ?",
                (guild_id,),
            )
            entries = await self._q(
                conn,
                "SELECT kind, entry, value FROM guild_entries WHERE guild_id = ? "
                "ORDER BY kind, entry",
                (guild_id,),
            )
            default = await self._q(
                conn, "SELECT daily_quota FROM guild_settings WHERE guild_id = ?", (guild_id,)
            )
        c = config[0] if config else {}
        of = {kind: [e for e in entries if e["kind"] == kind] for kind in ENTRY_KINDS}
        return GuildSettings(
            guild_id=guild_id,
            server_budget=int(c.get("server_budget") or 0),
            default_provider=c.get("default_provider"),
            default_model=c.get("default_model"),
            allowed_channels=frozenset(int(e["entry"]) for e in of["channel"]),
            banned_words=tuple(e["entry"] for e in of["banned_word"]),
            prices={e["entry"]: int(e["value"]) for e in of["price"]},
            role_limits={int(e["entry"]): int(e["value"]) for e in of["role_limit"]},
            daily_default=int(default[0]["daily_quota"]) if default else None,
        )

    async def set_guild_config(self, guild_id: int, **fields: Any) -> dict[str, Any]:
        """Change server_budget / default_provider / default_model; the old values."""
        unknown = set(fields) - CONFIG_FIELDS
        if unknown:
            raise ValueError(f"not a guild setting: {sorted(unknown)}")
        names = sorted(fields)
        async with self._transaction() as conn:
            old = await self._q(
                conn,
                "SELECT server_budget, default_provider, default_model FROM guild_config "
                "WHERE guild_id = ?",
                (guild_id,),
            )
            await self._x(
                conn,
                "INSERT INTO guild_config (guild_id) VALUES (?) ON CONFLICT (guild_id) DO NOTHING",
                (guild_id,),
            )
            assignments = ", ".join(f"{n} = ?" for n in names)  # names are whitelisted
            await self._x(
                conn,
                f"UPDATE guild_config SET {assignments} WHERE guild_id = ?",  # noqa: S608
                (*(fields[n] for n in names), guild_id),
            )
        before = old[0] if old else {"server_budget": 0}
        return {n: before.get(n) for n in names}

    async def set_entry(
        self, guild_id: int, kind: str, entry: str, value: int | None
    ) -> int | None:
        """Set (or with ``value`` None remove) one entry; its old value (None: absent)."""
        if kind not in ENTRY_KINDS:
            raise ValueError(f"not an entry kind: {kind}")
        async with self._transaction() as conn:
            old = await self._q(
                conn,
                "SELECT value FROM guild_entries WHERE guild_id = ? AND kind = ? AND entry = ?",
                (guild_id, kind, entry),
            )
            if value is None:
                await self._x(
                    conn,
                    "DELETE FROM guild_entries WHERE guild_id = ? AND kind = ? AND entry = ?",
                    (guild_id, kind, entry),
                )
            else:
                await self._x(
                    conn,
                    "INSERT INTO guild_entries (guild_id, kind, entry, value) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (guild_id, kind, entry) DO UPDATE SET value = excluded.value",
                    (guild_id, kind, entry, value),
                )
        return int(old[0]["value"]) if old else None

    async def credit_price(self, guild_id: int, provider: str) -> int:
        async with self._reading() as conn:
            rows = await self._q(
                conn,
                "SELECT value FROM guild_entries WHERE guild_id = ? AND kind = 'price' "
                "AND entry = ?",
                (guild_id, provider),
            )
        return int(rows[0]["value"]) if rows else 1

    async def audit(
        self,
        guild_id: int,
        actor_id: int,
        action: str,
        *,
        target_id: int | None,
        details: str,
        now: float,
    ) -> None:
        async with self._transaction() as conn:
            await self._x(
                conn,
                "INSERT INTO audit_log (guild_id, actor_id, action, target_id, details, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, actor_id, action, target_id, details, now),
            )

    async def audit_entries(self, guild_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
        return await self.audit_page(guild_id, offset=0, limit=limit)

    async def audit_page(
        self, guild_id: int, *, offset: int = 0, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first, ``limit`` from ``offset``."""
        async with self._reading() as conn:
            return await self._q(
                conn,
                "SELECT actor_id, action, target_id, details, at FROM audit_log "
                "WHERE guild_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (guild_id, limit, offset),
            )

    # --- characters -----------------------------------------------------------------------
    async def _fetch_characters(self, where: str, params: Sequence[Any]) -> list[CharacterRow]:
        sql = f"{CHARACTER_SELECT} WHERE {where} ORDER BY c.name, c.id"
        async with self._reading() as conn:
            rows = await self._q(conn, sql, params)
        return [CharacterRow.from_mapping(r) for r in rows]

    async def get_character(self, character_id: int) -> CharacterRow | None:
        found = await self._fetch_characters("c.id = ?", (character_id,))
        return found[0] if found else None

    async def character_by_thread(self, thread_id: int) -> CharacterRow | None:
        found = await self._fetch_characters("c.thread_id = ?", (thread_id,))
        return found[0] if found else None

    async def guild_characters(self, guild_id: int) -> list[CharacterRow]:
        return await self._fetch_characters("c.guild_id = ?", (guild_id,))

    async def update_character(self, character_id: int, **fields: Any) -> None:
        unknown = set(fields) - CHARACTER_FIELDS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "shared" in fields:
            fields["shared"] = bool(fields["shared"])  # BOOLEAN in PostgreSQL, 0/1 in SQLite
        names = list(fields)
        assignments = ", ".join(f"{name} = ?" for name in names)  # whitelisted names
        sql = f"UPDATE characters SET {assignments}, updated_at = ? WHERE id = ?"  # noqa: S608
        async with self._transaction() as conn:
            await self._x(conn, sql, (*fields.values(), time.time(), character_id))

    async def character_images(self, character_id: int) -> list[CharacterImage]:
        async with self._reading() as conn:
            rows = await self._q(
                conn,
                "SELECT sha256, content_type, size, channel_id, message_id, url FROM"
                " character_images WHERE character_id = ? ORDER BY added_at, sha256",
                (character_id,),
            )
        return [
            CharacterImage(
                r["sha256"],
                r["content_type"],
                r["size"],
                r["channel_id"],
                r["message_id"],
                r["url"],
            )
            for r in rows
        ]

    # --- provider health (reelbot/failover/health.py decides; SPEC §4 "Failover") ------------
    async def _lock_quota(self, conn: Any, guild_id: int) -> None:
        """Serialise charges in one guild (PostgreSQL: an advisory lock; SQLite's write
        transaction already is one)."""
        return  # SQLite's default; PostgresStore overrides it

    _FOR_UPDATE = ""  # PostgreSQL: " FOR UPDATE"

    async def provider_health(self) -> dict[str, Health]:
        async with self._reading() as conn:
            rows = await self._q(conn, "SELECT * FROM provider_health ORDER BY provider")
        return {r["provider"]: _health_of(r) for r in rows}

    async def record_provider_outcome(
        self,
        provider: str,
        outcome: Outcome,
        *,
        now: float,
        submit: bool = True,
        probe: bool = False,
        error: str | None = None,
        cooloff_base: float = COOLOFF_BASE,
    ) -> tuple[Health, Transition | None]:
        """Apply one outcome to the provider's record, in one transaction: processes
        recording at once take turns on the row, so exactly one sees a transition."""
        async with self._transaction() as conn:
            await self._x(
                conn,
                "INSERT INTO provider_health (provider) VALUES (?) ON CONFLICT (provider) "
                "DO NOTHING",
                (provider,),
            )
            rows = await self._q(
                conn,
                "SELECT * FROM provider_health WHERE provider = ?" + self._FOR_UPDATE,  # noqa: S608
                (provider,),
            )
            before = _health_of(rows[0])
            after, transition = apply_outcome(
                before,
                outcome,
                now=now,
                submit=submit,
                probe=probe,
                error=error,
                cooloff_base=cooloff_base,
            )
            await self._x(
                conn,
                "UPDATE provider_health SET state = ?, streak = ?, down_since = ?, "
                "retry_at = ?, cooloff = ?, reason = ?, last_error = ?, recent = ?, "
                "probe_until = ?, updated_at = ? WHERE provider = ?",
                (
                    after.state,
                    after.streak,
                    after.down_since,
                    after.retry_at,
                    after.cooloff,
                    after.reason,
                    after.last_error,
                    after.recent,
                    after.probe_until,
                    after.updated_at,
                    provider,
                ),
            )
        return after, transition

    async def claim_probe(self, provider: str, *, now: float, lease: float = PROBE_LEASE) -> bool:
        """Take the one probe of a down provider whose cool-off has ended; False when it
        is not down, still cooling off, or another process holds the probe."""
        async with self._transaction() as conn:
            rows = await self._q(
                conn,
                "UPDATE provider_health SET probe_until = ? WHERE provider = ? "
                "AND state = 'down' AND (retry_at IS NULL OR retry_at <= ?) "
                "AND (probe_until IS NULL OR probe_until <= ?) RETURNING provider",
                (now + lease, provider, now, now),
            )
        return bool(rows)

    async def move_task(
        self,
        task_id: int,
        *,
        provider: str,
        request: Mapping[str, Any],
        price: int,
        policy: QuotaPolicy,
        now: float,
    ) -> TaskRow | None:
        """Failover: give a task that was never sent anywhere to another provider, and
        its charge that provider's price, in one transaction: the old price back, the
        new one taken under the same rules as a new request (server budget always, the
        member's limit unless ``policy.enforce`` is off). Raises BudgetExceeded or
        QuotaExceeded and changes nothing; None when the task is no longer a submit
        that made nothing (it moved on meanwhile)."""
        async with self._transaction() as conn:
            rows = await self._q(
                conn,
                "SELECT * FROM tasks WHERE id = ?" + self._FOR_UPDATE,  # noqa: S608
                (task_id,),
            )
            if not rows:
                return None
            task = rows[0]
            if task["state"] != "submitting" or task["provider_task_id"]:
                return None
            await self._lock_quota(conn, task["guild_id"])
            delta = price - int(task["quota_weight"])
            if delta and not task["refunded"]:
                if delta > 0:
                    status = await self._quota_status(
                        conn,
                        task["guild_id"],
                        task["requester_id"],
                        now=now,
                        default_limit=policy.default_limit,
                        role_ids=policy.role_ids,
                    )
                    check_charge(status, delta, enforce=policy.enforce)
                # Within the epoch it was charged in (a /quota reset since gave it back).
                await self._x(
                    conn,
                    "UPDATE quota_usage SET used = CASE WHEN used + ? < 0 THEN 0 "
                    "ELSE used + ? END "
                    "WHERE guild_id = ? AND user_id = ? AND day = ? AND resets = ?",
                    (
                        delta,
                        delta,
                        task["guild_id"],
                        task["requester_id"],
                        task["quota_day"],
                        task["quota_epoch"],
                    ),
                )
            moved = await self._q(
                conn,
                "UPDATE tasks SET provider = ?, request_json = ?, quota_weight = ?, "
                "submitted_at = NULL, submit_key = NULL, submit_call = NULL, "
                "callback_token = NULL, error_streak = 0, updated_at = ? "
                "WHERE id = ? RETURNING *",
                (provider, json.dumps(dict(request)), price, now, task_id),
            )
        return TaskRow.from_mapping(moved[0])


def _health_of(row: Mapping[str, Any]) -> Health:
    return Health(
        provider=row["provider"],
        state=row["state"],
        streak=int(row["streak"] or 0),
        down_since=row["down_since"],
        retry_at=row["retry_at"],
        cooloff=float(row["cooloff"] or 0.0),
        reason=row["reason"],
        last_error=row["last_error"],
        recent=row["recent"] or "",
        probe_until=row["probe_until"],
        updated_at=float(row["updated_at"] or 0.0),
    )
