"""The SQLite backend (aiosqlite, WAL): the zero-set-up default store."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any, Unpack

import aiosqlite

from reelbot.store.models import (
    REACTION_RETENTION,
    CallbackHint,
    CharacterImage,
    CharacterRow,
    CharacterUnavailable,
    CooldownActive,
    DuplicateName,
    NewTask,
    QuotaPolicy,
    TaskChange,
    TaskRow,
    TooManyInFlight,
    UsageSummary,
    utc_day,
)
from reelbot.store.schema import UPDATABLE, encode_field, load_migrations
from reelbot.store.shared import CHARACTER_SELECT, SharedQueries

# load_migrations lives in schema.py (shared by both backends); re-exported here.
__all__ = ["SqliteStore", "load_migrations"]

log = logging.getLogger(__name__)

RENEW_CHUNK = 500  # renew_leases: ids per statement


class SqliteStore(SharedQueries):
    # One process per database file, so a starting process owns every lease in it.
    single_process = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One writer at a time: aiosqlite runs statements in order on one thread, but
        # a transaction spans several awaits, and nothing else may interleave with it.
        self._write_lock = asyncio.Lock()
        # release(): statements waiting for the next batch, and the task writing it.
        self._releases: list[_Batched] = []
        self._release_flush: asyncio.Task[None] | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode; only power loss can
        # drop the last commits, which is the usual trade for a bot's write rate.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self.migrate()

    async def close(self) -> None:
        if self._release_flush is not None:  # releases already asked for are written
            with contextlib.suppress(Exception):
                await self._release_flush
        if self._db is not None:
            async with self._write_lock:
                await self._db.close()
            self._db = None

    async def subscribe(self, wake: Callable[[], None]) -> None:
        """Nothing to listen to: in one process, writers call the poller's wake directly."""

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> None:
        """Apply migrations newer than ``PRAGMA user_version``, each in a transaction."""
        current = await self.schema_version()
        for version, sql in load_migrations("sqlite"):
            if version <= current:
                continue
            log.info("applying store migration V%d", version)
            async with self._transaction():
                for statement in _split_sql(sql):
                    await self.db.execute(statement)
                # user_version is transactional in SQLite: it moves with the schema.
                await self.db.execute(f"PRAGMA user_version = {int(version)}")

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._write_lock:
            try:
                await self.db.execute("BEGIN IMMEDIATE")
                yield self.db
            except BaseException:
                # Also when cancelled while BEGIN was in flight: the worker thread runs it
                # anyway, and a transaction left open makes every later BEGIN fail
                # ("cannot start a transaction within a transaction"). The ROLLBACK is
                # queued behind it on the same thread; with nothing open it is a no-op.
                with contextlib.suppress(sqlite3.OperationalError):
                    await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[aiosqlite.Connection]:
        yield self.db

    async def _q(
        self, conn: aiosqlite.Connection, sql: str, params: Any = ()
    ) -> list[dict[str, Any]]:
        async with conn.execute(sql, tuple(params)) as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def _x(self, conn: aiosqlite.Connection, sql: str, params: Any = ()) -> None:
        await conn.execute(sql, tuple(params))

    async def _write(self, sql: str, params: Any = ()) -> aiosqlite.Cursor:
        """One statement, atomic on its own (autocommit): one trip to the SQLite thread
        instead of three (BEGIN, statement, COMMIT). Under the write lock, so it never
        lands inside another caller's open transaction."""
        async with self._write_lock:
            return await self.db.execute(sql, params)

    async def _fetch_task(self, sql: str, params: tuple[Any, ...]) -> TaskRow | None:
        async with self.db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return TaskRow.from_mapping(row) if row else None

    async def _fetch_tasks(self, sql: str, params: tuple[Any, ...]) -> list[TaskRow]:
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [TaskRow.from_mapping(r) for r in rows]

    # --- tasks --------------------------------------------------------------------------
    async def create_task(self, task: NewTask, *, now: float, policy: QuotaPolicy) -> TaskRow:
        async with self._transaction() as db:
            if task.character_id is not None and task.kind == "video":
                await self._check_character_usable(db, task)
            return await self._insert_task(db, task, now=now, policy=policy)

    async def start_training(
        self, task: NewTask, *, now: float, policy: QuotaPolicy, min_images: int
    ) -> TaskRow:
        assert task.character_id is not None
        async with self._transaction() as db:
            # The guarded transition: only one caller moves the character to training.
            cur = await db.execute(
                "UPDATE characters SET state = 'training', error = NULL, updated_at = ? "
                "WHERE id = ? AND state IN ('collecting', 'failed') AND (SELECT COUNT(*) "
                "FROM character_images i WHERE i.character_id = characters.id) >= ?",
                (now, task.character_id, min_images),
            )
            if cur.rowcount != 1:
                async with db.execute(
                    f"{CHARACTER_SELECT} WHERE c.id = ?", (task.character_id,)
                ) as found:
                    row = await found.fetchone()
                raise CharacterUnavailable(
                    task.character_id,
                    row["state"] if row else None,
                    row["image_count"] if row else 0,
                )
            created = await self._insert_task(db, task, now=now, policy=policy)
            await db.execute(
                "UPDATE characters SET task_id = ? WHERE id = ?", (created.id, task.character_id)
            )
        return created

    async def training_tasks(self, character_id: int) -> list[TaskRow]:
        return await self._fetch_tasks(
            "SELECT * FROM tasks WHERE character_id = ? AND kind = 'training' ORDER BY id",
            (character_id,),
        )

    @staticmethod
    async def _check_character_usable(db: aiosqlite.Connection, task: NewTask) -> None:
        async with db.execute(
            "SELECT state, shared, owner_id FROM characters WHERE id = ?", (task.character_id,)
        ) as cur:
            row = await cur.fetchone()
        usable = (
            row is not None
            and row["state"] == "ready"
            and (bool(row["shared"]) or row["owner_id"] == task.requester_id)
        )
        if not usable:
            assert task.character_id is not None
            raise CharacterUnavailable(task.character_id, row["state"] if row else None)

    async def _insert_task(
        self, db: aiosqlite.Connection, task: NewTask, *, now: float, policy: QuotaPolicy
    ) -> TaskRow:
        """Check the limits, take the quota and insert the task (inside a transaction)."""
        day = utc_day(now)
        if policy.enforce:
            await self._check_limits(db, task, now=now, day=day, policy=policy)
        # The server budget binds moderators too; the write lock makes it atomic.
        await self._check_charge(db, task, now=now, policy=policy)
        async with db.execute(
            "INSERT INTO quota_usage (guild_id, user_id, day, used) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(guild_id, user_id, day) DO UPDATE SET used = used + excluded.used "
            "RETURNING resets",
            (task.guild_id, task.requester_id, day, task.quota_weight),
        ) as cur:
            usage = await cur.fetchone()
        assert usage is not None
        async with db.execute(
            "INSERT INTO tasks (kind, provider, guild_id, channel_id, thread_id, "
            "requester_id, request_json, state, poll_interval, next_action_at, "
            "created_at, updated_at, quota_day, quota_weight, retry_of, character_id, "
            "quota_epoch) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'submitting', ?, NULL, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING *",
            (
                task.kind,
                task.provider,
                task.guild_id,
                task.channel_id,
                task.thread_id,
                task.requester_id,
                json.dumps(task.request),
                task.poll_interval,
                now,
                now,
                day,
                task.quota_weight,
                task.retry_of,
                task.character_id,
                usage["resets"],
            ),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return TaskRow.from_mapping(row)

    async def _check_limits(
        self,
        db: aiosqlite.Connection,
        task: NewTask,
        *,
        now: float,
        day: str,
        policy: QuotaPolicy,
    ) -> None:
        if policy.cooldown > 0:
            async with db.execute(
                "SELECT MAX(created_at) FROM tasks WHERE guild_id = ? AND requester_id = ?",
                (task.guild_id, task.requester_id),
            ) as cur:
                row = await cur.fetchone()
            last = row[0] if row else None
            if last is not None and now - last < policy.cooldown:
                raise CooldownActive(last + policy.cooldown)
        if policy.max_in_flight > 0:
            async with db.execute(
                "SELECT COUNT(*) FROM tasks WHERE guild_id = ? AND requester_id = ? "
                "AND state IN ('submitting', 'queued', 'running')",
                (task.guild_id, task.requester_id),
            ) as cur:
                row = await cur.fetchone()
            if row and row[0] >= policy.max_in_flight:
                raise TooManyInFlight(policy.max_in_flight)

    async def get_task(self, task_id: int) -> TaskRow | None:
        return await self._fetch_task("SELECT * FROM tasks WHERE id = ?", (task_id,))

    async def task_by_message(self, message_id: int) -> TaskRow | None:
        return await self._fetch_task(
            "SELECT * FROM tasks WHERE status_message_id = ? OR result_message_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (message_id, message_id),
        )

    async def update_task(self, task_id: int, **fields: Unpack[TaskChange]) -> None:
        if fields:
            await self._update(task_id, fields, release_owner=None, expected_state=None)

    async def release(
        self,
        task_id: int,
        owner: str,
        *,
        expected_state: str | None = None,
        **fields: Unpack[TaskChange],
    ) -> bool:
        """Record an action's outcome and end its lease; True if the row was ours.

        Releases that arrive together (every poll ends in one, thousands a second at
        N = 10,000) are written together: one trip to the SQLite thread and one commit
        for the whole batch, instead of one each. Each caller still returns only once
        its own row is committed, so what it does next (post a message, count a
        delivery) never runs ahead of the store, exactly as with one write each.
        """
        sql, params = self._update_statement(
            task_id, fields, release_owner=owner, expected_state=expected_state
        )
        count: int = await self._batched(sql, params, fetch=False)
        return count == 1

    async def _batched(self, sql: str, params: Any, *, fetch: bool) -> Any:
        """One autocommit statement, written in the next batch: its row count, or with
        ``fetch`` its rows."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._releases.append((sql, params, future, fetch))
        if self._release_flush is None:
            self._release_flush = asyncio.create_task(self._flush_releases(), name="release")
        # The batch is written even if this caller is cancelled meanwhile (as a single
        # statement already on the SQLite thread would be).
        return await asyncio.shield(future)

    async def _flush_releases(self) -> None:
        async with self._write_lock:
            # Everything queued while we waited for the lock (the previous batch's
            # commit, a transaction) goes in this batch; later arrivals start the next.
            batch, self._releases = self._releases, []
            self._release_flush = None
            try:
                try:
                    # aiosqlite's own queue to its thread (what execute() uses), with
                    # a function that runs the whole batch there.
                    run = self.db._execute  # untyped in aiosqlite
                    results: list[Any] = await run(_write_batch, self.db, batch)  # type: ignore[no-untyped-call]
                except sqlite3.Error:
                    # One bad statement must not fail its neighbours: one at a time.
                    log.warning(
                        "batched release of %d task(s) failed; retrying one by one",
                        len(batch),
                        exc_info=True,
                    )
                    for sql, params, future, fetch in batch:
                        try:
                            if fetch:
                                result: Any = await self.db.execute_fetchall(sql, params)
                            else:
                                result = (await self.db.execute(sql, params)).rowcount
                        except sqlite3.Error as exc:
                            future.set_exception(exc)
                        else:
                            future.set_result(result)
                    return
            except BaseException as exc:  # closed, cancelled: nobody waits forever
                for _, _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
        for (_, _, future, _), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _update(
        self,
        task_id: int,
        fields: TaskChange,
        *,
        release_owner: str | None,
        expected_state: str | None,
    ) -> bool:
        sql, params = self._update_statement(
            task_id, fields, release_owner=release_owner, expected_state=expected_state
        )
        cur = await self._write(sql, params)
        return cur.rowcount == 1

    @staticmethod
    def _update_statement(
        task_id: int,
        fields: TaskChange,
        *,
        release_owner: str | None,
        expected_state: str | None,
    ) -> tuple[str, list[Any]]:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        assignments, params = [], []
        now = time.time()
        for column, value in fields.items():
            name, encoded = encode_field(column, value)
            if release_owner is not None and name == "next_action_at" and value is not None:
                # A callback arrived while this action ran: due at once (SPEC §6).
                assignments.append(
                    "next_action_at = CASE WHEN callback_hint = 1 THEN MIN(?, ?) ELSE ? END"
                )
                params += [encoded, now, encoded]
                continue
            assignments.append(f"{name} = ?")  # names come from the UPDATABLE whitelist
            params.append(encoded)
        if release_owner is not None:
            assignments.append("callback_hint = 0")
        assignments.append("updated_at = ?")
        params.append(now)
        where = "id = ?"
        params.append(task_id)
        if release_owner is not None:
            assignments += ["lease_owner = NULL", "lease_until = NULL"]
            where += " AND (lease_owner = ? OR lease_owner IS NULL)"
            params.append(release_owner)
        if expected_state is not None:
            # Someone else (a cancel) may have moved the task meanwhile: theirs wins.
            where += " AND state = ?"
            params.append(expected_state)
        sql = f"UPDATE tasks SET {', '.join(assignments)} WHERE {where}"  # noqa: S608
        return sql, params

    async def callback_hint(self, provider: str, token: str, *, now: float) -> CallbackHint | None:
        async with self._transaction() as db:
            async with db.execute(
                "SELECT id, state FROM tasks WHERE callback_token = ? AND provider = ?",
                (token, provider),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            cur = await db.execute(
                "UPDATE tasks SET callback_hint = 1, next_action_at = CASE "
                "WHEN lease_until IS NULL OR lease_until < ? THEN ? ELSE next_action_at END "
                "WHERE id = ? AND state IN ('submitting', 'queued', 'running')",
                (now, now, row[0]),
            )
            return CallbackHint(int(row[0]), cur.rowcount == 1)

    async def short_link(
        self, task_id: int, url: str, *, token: str, expires_at: float, now: float
    ) -> str:
        digest = hashlib.sha256(url.encode()).hexdigest()
        async with self._transaction() as db:
            await db.execute("DELETE FROM short_links WHERE expires_at < ?", (now,))
            await db.execute(
                "INSERT INTO short_links (token, task_id, url_hash, url, expires_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (task_id, url_hash) DO NOTHING",
                (token, task_id, digest, url, expires_at),
            )
            async with db.execute(
                "SELECT token FROM short_links WHERE task_id = ? AND url_hash = ?",
                (task_id, digest),
            ) as cur:
                row = await cur.fetchone()
        assert row is not None
        return str(row[0])

    async def resolve_short_link(self, token: str, *, now: float) -> str | None:
        async with self.db.execute(
            "SELECT url FROM short_links WHERE token = ? AND expires_at >= ?", (token, now)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def cancel_task(self, task_id: int, *, now: float) -> bool:
        """Move an in-flight task to ``cancelled`` (its final message is still to post)."""
        async with self._transaction() as db:
            cur = await db.execute(
                "UPDATE tasks SET state = 'cancelled', error_code = 'cancelled', "
                "finished_at = ?, updated_at = ?, next_action_at = ?, lease_owner = NULL, "
                "lease_until = NULL WHERE id = ? AND state IN ('submitting', 'queued', 'running')",
                (now, now, now, task_id),
            )
            return cur.rowcount == 1

    async def release_all_leases(self) -> int:
        """Single-process start-up: leases of a previous run of this process are void,
        and their tasks due now (a task the poller held in memory for its next poll had
        its stored next action put at its lease's end)."""
        async with self._transaction() as db:
            cur = await db.execute(
                "UPDATE tasks SET lease_owner = NULL, lease_until = NULL, "
                "next_action_at = MIN(next_action_at, ?) WHERE lease_owner IS NOT NULL",
                (time.time(),),
            )
            return cur.rowcount

    async def renew_leases(
        self, task_ids: Collection[int], owner: str, *, until: float, due_at_end: bool = False
    ) -> list[int]:
        """Extend the leases ``owner`` still holds on these tasks; the ids extended."""
        ids = sorted(set(task_ids))
        if not ids:
            return []
        # One placeholder per id, RENEW_CHUNK ids a statement (a poller holds thousands
        # of leased tasks waiting for their next poll), all in the next batch: the
        # poller renews the leases of the tasks it is about to poll again every tick.
        chunks = [ids[i : i + RENEW_CHUNK] for i in range(0, len(ids), RENEW_CHUNK)]
        found = await asyncio.gather(
            *(self._renew_chunk(c, owner, until, due_at_end) for c in chunks)
        )
        return sorted(int(r[0]) for rows in found for r in rows)

    async def _renew_chunk(
        self, ids: list[int], owner: str, until: float, due_at_end: bool
    ) -> list[Any]:
        marks = ", ".join("?" * len(ids))
        due = ", next_action_at = MAX(next_action_at, ?)" if due_at_end else ""
        sql = (
            f"UPDATE tasks SET lease_until = ?{due} "  # noqa: S608 - only constant text
            f"WHERE lease_owner = ? AND id IN ({marks}) RETURNING id"
        )
        params = (until, until, owner, *ids) if due_at_end else (until, owner, *ids)
        rows: list[Any] = await self._batched(sql, params, fetch=True)
        return rows

    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        owner: str,
        lease_seconds: float,
        provider: str | None = None,
        delivery: bool = False,
    ) -> list[TaskRow]:
        """Lease up to ``limit`` due tasks of one lane, earliest first.

        A lane is either one provider's in-flight tasks (submit and poll), or, with
        ``delivery``, the finished tasks whose final message is still to be posted.
        """
        lane_params: tuple[str | None, ...]
        if delivery:
            lane, lane_params = "state IN ('succeeded', 'failed', 'cancelled')", ()
        else:
            lane = "provider = ? AND state IN ('submitting', 'queued', 'running')"
            lane_params = (provider,)
        # lane is one of the two constant strings above; values are bound parameters.
        sql = (
            "UPDATE tasks SET lease_owner = ?, lease_until = ?, callback_hint = 0 WHERE id IN ("  # noqa: S608
            " SELECT id FROM tasks WHERE next_action_at IS NOT NULL AND next_action_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?)"
            f" AND {lane} ORDER BY next_action_at LIMIT ?) RETURNING *"
        )
        params = (owner, now + lease_seconds, now, now, *lane_params, limit)
        # In the next batch with the releases and the other lanes' claims of this tick
        # (the poller asks for them together): one trip to the SQLite thread for all.
        rows = await self._batched(sql, params, fetch=True)
        tasks = [TaskRow.from_mapping(r) for r in rows]
        tasks.sort(key=lambda t: t.next_action_at or 0.0)
        return tasks

    async def next_due_at(self) -> float | None:
        # The earliest claimable row, walking the tasks_due index in order: the cost is
        # the number of leased rows ahead of it (tasks being acted on now), not the
        # number of tasks. A lease of a dead owner is picked up by the idle wake.
        async with self.db.execute(
            "SELECT next_action_at FROM tasks WHERE next_action_at IS NOT NULL "
            "AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_action_at LIMIT 1",
            (time.time(),),
        ) as cur:
            row = await cur.fetchone()
        return row[0] if row and row[0] is not None else None

    async def mark_delivered(self, task_id: int, result_message_id: int, *, now: float) -> bool:
        async with self._transaction() as db:
            cur = await db.execute(
                "UPDATE tasks SET delivered = 1, result_message_id = ?, next_action_at = NULL, "
                "updated_at = ? WHERE id = ? AND delivered = 0",
                (result_message_id, now, task_id),
            )
            return cur.rowcount == 1

    async def refund(self, task_id: int) -> bool:
        async with self._transaction() as db:
            async with db.execute(
                "UPDATE tasks SET refunded = 1 WHERE id = ? AND refunded = 0 "
                "RETURNING guild_id, requester_id, quota_day, quota_weight, quota_epoch",
                (task_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return False
            # Only within the epoch it was charged in: a /quota reset since then already
            # gave this charge back.
            await db.execute(
                "UPDATE quota_usage SET used = MAX(0, used - ?) "
                "WHERE guild_id = ? AND user_id = ? AND day = ? AND resets = ?",
                (
                    row["quota_weight"],
                    row["guild_id"],
                    row["requester_id"],
                    row["quota_day"],
                    row["quota_epoch"],
                ),
            )
            return True

    async def user_tasks(self, guild_id: int, user_id: int, *, limit: int) -> list[TaskRow]:
        return await self._fetch_tasks(
            "SELECT * FROM tasks WHERE guild_id = ? AND requester_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, user_id, limit),
        )

    async def guild_tasks(self, guild_id: int, *, limit: int) -> list[TaskRow]:
        return await self._fetch_tasks(
            "SELECT * FROM tasks WHERE guild_id = ? ORDER BY id DESC LIMIT ?", (guild_id, limit)
        )

    async def recent_durations(self, provider: str, *, limit: int) -> list[float]:
        """Seconds from submit to success of the provider's latest ``limit`` videos."""
        # Newest first by rowid: a backwards walk of the table that stops at ``limit``.
        async with self.db.execute(
            "SELECT finished_at - submitted_at FROM tasks WHERE provider = ? AND kind = 'video' "
            "AND state = 'succeeded' AND submitted_at IS NOT NULL AND finished_at IS NOT NULL "
            "ORDER BY id DESC LIMIT ?",
            (provider, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [float(r[0]) for r in reversed(list(rows))]

    async def recent_completions(
        self, provider: str, *, limit: int
    ) -> list[tuple[str | None, float]]:
        async with self.db.execute(
            "SELECT json_extract(request_json, '$.model'), finished_at - submitted_at "
            "FROM tasks WHERE provider = ? AND kind = 'video' AND state = 'succeeded' "
            "AND submitted_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY id DESC LIMIT ?",
            (provider, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [(None if r[0] is None else str(r[0]), float(r[1])) for r in reversed(list(rows))]

    async def input_images_in_use(self, *, since: float) -> set[str]:
        async with self.db.execute(
            "SELECT DISTINCT json_extract(request_json, '$.image.sha256') FROM tasks "
            "WHERE created_at >= ? AND json_extract(request_json, '$.image.sha256') IS NOT NULL",
            (since,),
        ) as cur:
            rows = await cur.fetchall()
        return {str(r[0]) for r in rows}

    async def count_unfinished(self) -> int:
        async with self.db.execute(
            "SELECT COUNT(*) FROM tasks WHERE next_action_at IS NOT NULL"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- quotas & moderation ------------------------------------------------------------
    async def reset_usage(self, guild_id: int, user_id: int, *, now: float) -> int:
        """Clear today's usage; returns what it was."""
        params = (guild_id, user_id, utc_day(now))
        async with self._transaction() as db:
            async with db.execute(
                "SELECT used FROM quota_usage WHERE guild_id = ? AND user_id = ? AND day = ?",
                params,
            ) as cur:
                row = await cur.fetchone()
            await db.execute(
                "UPDATE quota_usage SET used = 0, resets = resets + 1 "
                "WHERE guild_id = ? AND user_id = ? AND day = ?",
                params,
            )
        return 0 if row is None else int(row[0])

    async def usage_summary(self, guild_id: int, user_id: int | None = None) -> UsageSummary:
        sql = "SELECT provider, COUNT(*), COALESCE(SUM(credits), 0) FROM tasks WHERE guild_id = ?"
        params: tuple[Any, ...] = (guild_id,)
        if user_id is not None:
            sql += " AND requester_id = ?"
            params += (user_id,)
        sql += " GROUP BY provider"
        async with self.db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        by_provider = {r[0]: float(r[2]) for r in rows}
        return UsageSummary(
            tasks=sum(int(r[1]) for r in rows),
            credits=sum(by_provider.values()),
            by_provider=by_provider,
        )

    async def claim_reaction(
        self, message_id: int, user_id: int, emoji: str, *, now: float, window: float
    ) -> bool:
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM reaction_actions WHERE at < ?",
                (now - max(window, REACTION_RETENTION),),
            )
            cur = await db.execute(
                "INSERT INTO reaction_actions (message_id, user_id, emoji, at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(message_id, user_id, emoji) DO UPDATE "
                "SET at = excluded.at WHERE reaction_actions.at < excluded.at - ?",
                (message_id, user_id, emoji, now, window),
            )
            return cur.rowcount == 1

    # --- characters -------------------------------------------------------------------

    async def create_character(
        self, *, guild_id: int, owner_id: int, name: str, provider: str, now: float
    ) -> CharacterRow:
        async with self._transaction() as db:
            try:
                async with db.execute(
                    "INSERT INTO characters (guild_id, owner_id, name, provider, state,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, 'collecting', ?, ?) RETURNING *",
                    (guild_id, owner_id, name, provider, now, now),
                ) as cur:
                    row = await cur.fetchone()
            except sqlite3.IntegrityError as exc:
                raise DuplicateName(name) from exc
        assert row is not None
        return CharacterRow.from_mapping(row)

    async def add_character_image(
        self, character_id: int, image: CharacterImage, *, now: float, limit: int
    ) -> str:
        """Add one reference photo: 'added', 'duplicate' or 'full'."""
        async with self._transaction() as db:
            async with db.execute(
                "SELECT COUNT(*) FROM character_images WHERE character_id = ?", (character_id,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] >= limit:
                return "full"
            cur2 = await db.execute(
                "INSERT OR IGNORE INTO character_images (character_id, sha256, content_type,"
                " size, channel_id, message_id, url, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    character_id,
                    image.sha256,
                    image.content_type,
                    image.size,
                    image.channel_id,
                    image.message_id,
                    image.url,
                    now,
                ),
            )
            return "added" if cur2.rowcount == 1 else "duplicate"

    async def delete_character(self, character_id: int) -> list[CharacterImage]:
        """Remove the character and its image records; return what the files were."""
        images = await self.character_images(character_id)
        async with self._transaction() as db:
            await db.execute("DELETE FROM character_images WHERE character_id = ?", (character_id,))
            await db.execute("DELETE FROM characters WHERE id = ?", (character_id,))
        return images


# A statement waiting for the next batch: (sql, params, its caller's future, fetch rows?).
_Batched = tuple[str, Any, "asyncio.Future[Any]", bool]


def _write_batch(db: aiosqlite.Connection, batch: list[_Batched]) -> list[Any]:
    """On the SQLite thread: every statement of a batch in one transaction; each one's
    row count (or rows, for a fetch). One failing statement rolls the whole batch back
    (nothing half-done)."""
    conn = db._conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        results: list[Any] = []
        for sql, params, _, fetch in batch:
            cur = conn.execute(sql, params)
            results.append(cur.fetchall() if fetch else cur.rowcount)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return results


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file (no semicolons inside literals in our migrations)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
