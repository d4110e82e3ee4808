"""The PostgreSQL backend (asyncpg): one database shared by several bot processes.

Same semantics as :class:`~reelbot.store.sqlite.SqliteStore`, method for method; what
differs is how concurrency is made safe when other processes write too:

- quota checks at creation hold a per-(guild, user) transaction-scoped advisory lock,
  so two creations at the limit (from any processes) are checked one after the other;
- ``claim_due`` locks the rows it leases with ``FOR UPDATE SKIP LOCKED``: concurrent
  claimers never wait on each other and never lease the same task;
- leases expire, so a crashed process's tasks are claimed by another after
  ``lease_seconds`` (``release_all_leases`` is never run at start: ``single_process``
  is False);
- writes that make work due ``NOTIFY reelbot_work`` in their transaction, and
  :meth:`subscribe` LISTENs on a dedicated connection to wake the local poller.

Times are the callers' unix seconds (as with SQLite), so hosts sharing one database
need synchronised clocks (NTP); a lease is long compared with any sane skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Unpack

import asyncpg

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

log = logging.getLogger(__name__)

WORK_CHANNEL = "reelbot_work"
CLOSE_GRACE = 10.0  # seconds close() waits for in-flight queries before cutting them
# Every statement here takes milliseconds; one hanging on a dead network link must fail
# (and be retried by the poller) rather than stall a lane forever.
COMMAND_TIMEOUT = 60.0
RELISTEN_MAX_DELAY = 30.0


def _lock_key(*parts: object) -> int:
    """A stable signed 64-bit advisory-lock key (Python's hash() differs per process)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_MIGRATION_LOCK = _lock_key("reelbot", "migrate")


def _rows_changed(status: str) -> int:
    """asyncpg's command tag ('UPDATE 1', 'INSERT 0 1') → the affected row count."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _dollar(sql: str) -> str:
    """The shared queries' ``?`` placeholders as ``$1, $2, …`` (none sit in literals)."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


class PostgresStore(SharedQueries):
    # Several processes may share the database: a starting process must not void the
    # leases of the others (expired leases are re-claimed instead).
    single_process = False
    _FOR_UPDATE = " FOR UPDATE"  # provider health, failover moves: take turns on the row

    async def _lock_quota(self, conn: Any, guild_id: int) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("quota", guild_id))

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.dsn = dsn
        self._pool_size = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._wake: Callable[[], None] | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def open(self) -> None:
        self._closing = False
        min_size, max_size = self._pool_size
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=min_size, max_size=max_size, command_timeout=COMMAND_TIMEOUT
        )
        await self.migrate()

    async def close(self) -> None:
        self._closing = True
        if self._relisten is not None:
            self._relisten.cancel()
            await asyncio.gather(self._relisten, return_exceptions=True)
            self._relisten = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            try:
                # Lets in-flight writes finish (connections are returned), then closes.
                await asyncio.wait_for(self._pool.close(), CLOSE_GRACE)
            except TimeoutError:
                log.warning("store: queries still running after %.0fs; cutting them", CLOSE_GRACE)
                self._pool.terminate()
            self._pool = None

    # --- schema ---------------------------------------------------------------------------
    async def schema_version(self) -> int:
        exists = await self.pool.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        if not exists:
            return 0
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def migrate(self) -> None:
        """Apply migrations newer than ``schema_version``, each in a transaction.

        An advisory lock makes processes starting together take turns: the first
        migrates, the others then find nothing left to do.
        """
        for version, sql in load_migrations("postgres"):
            async with self._transaction() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
                )
                current = await conn.fetchval(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version"
                )
                if version <= current:
                    continue
                log.info("applying store migration V%d (postgres)", version)
                await conn.execute(sql)  # no arguments: runs the whole script
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    version,
                    time.time(),
                )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield conn

    async def _q(
        self, conn: asyncpg.Connection, sql: str, params: Any = ()
    ) -> list[dict[str, Any]]:
        return [dict(r) for r in await conn.fetch(_dollar(sql), *params)]

    async def _x(self, conn: asyncpg.Connection, sql: str, params: Any = ()) -> None:
        await conn.execute(_dollar(sql), *params)

    # --- waking workers ---------------------------------------------------------------------
    @staticmethod
    async def _notify(conn: asyncpg.Connection) -> None:
        # Inside the writer's transaction: listeners hear it only once the work is visible.
        await conn.execute("SELECT pg_notify($1, '')", WORK_CHANNEL)

    async def notify_work(self) -> None:
        """Wake every subscribed process (e.g. after changing tasks outside the store)."""
        async with self.pool.acquire() as conn:
            await self._notify(conn)

    async def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever any process sharing the database signals new work."""
        self._wake = wake
        if self._listener is None:  # one LISTEN connection, whatever the subscribers
            await self._listen()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        conn.add_termination_listener(self._listener_lost)
        await conn.add_listener(WORK_CHANNEL, self._on_notify)
        self._listener = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        if self._wake is not None:
            self._wake()

    def _listener_lost(self, _conn: object) -> None:
        if self._closing:
            return
        log.warning("store: lost the LISTEN connection; reconnecting (timer wake-ups meanwhile)")
        self._listener = None
        self._relisten = asyncio.get_running_loop().create_task(self._reconnect_listener())
        self._relisten.add_done_callback(_log_failure)

    async def _reconnect_listener(self) -> None:
        delay = 1.0
        while not self._closing:
            try:
                await self._listen()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("store: LISTEN reconnect failed (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RELISTEN_MAX_DELAY)
                continue
            log.info("store: LISTEN connection restored")
            if self._wake is not None:
                self._wake()  # notifications sent while we were away are lost: look now
            return

    # --- tasks ------------------------------------------------------------------------------
    async def create_task(self, task: NewTask, *, now: float, policy: QuotaPolicy) -> TaskRow:
        async with self._transaction() as conn:
            if task.character_id is not None and task.kind == "video":
                # FOR SHARE: a delete (or unshare) of the character waits for this commit.
                row = await conn.fetchrow(
                    "SELECT state, shared, owner_id FROM characters WHERE id = $1 FOR SHARE",
                    task.character_id,
                )
                usable = (
                    row is not None
                    and row["state"] == "ready"
                    and (row["shared"] or row["owner_id"] == task.requester_id)
                )
                if not usable:
                    raise CharacterUnavailable(task.character_id, row["state"] if row else None)
            return await self._insert_task(conn, task, now=now, policy=policy)

    async def start_training(
        self, task: NewTask, *, now: float, policy: QuotaPolicy, min_images: int
    ) -> TaskRow:
        assert task.character_id is not None
        async with self._transaction() as conn:
            # The guarded transition: a concurrent caller waits on the row lock, then
            # finds the state moved and changes nothing.
            moved = await conn.fetchval(
                "UPDATE characters SET state = 'training', error = NULL, updated_at = $1 "
                "WHERE id = $2 AND state IN ('collecting', 'failed') AND (SELECT COUNT(*) "
                "FROM character_images i WHERE i.character_id = characters.id) >= $3 "
                "RETURNING id",
                now,
                task.character_id,
                min_images,
            )
            if moved is None:
                row = await conn.fetchrow(f"{CHARACTER_SELECT} WHERE c.id = $1", task.character_id)
                raise CharacterUnavailable(
                    task.character_id,
                    row["state"] if row else None,
                    row["image_count"] if row else 0,
                )
            created = await self._insert_task(conn, task, now=now, policy=policy)
            await conn.execute(
                "UPDATE characters SET task_id = $1 WHERE id = $2", created.id, task.character_id
            )
        return created

    async def training_tasks(self, character_id: int) -> list[TaskRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM tasks WHERE character_id = $1 AND kind = 'training' ORDER BY id",
            character_id,
        )
        return [TaskRow.from_mapping(r) for r in rows]

    async def _insert_task(
        self, conn: asyncpg.Connection, task: NewTask, *, now: float, policy: QuotaPolicy
    ) -> TaskRow:
        """Check the limits, take the quota and insert the task (inside a transaction)."""
        day = utc_day(now)
        # Held until commit: another creation in this guild (in any process) waits
        # here, then sees this one's task and usage. Per guild, not per member: the
        # server budget is shared by everyone in it.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("quota", task.guild_id))
        if policy.enforce:
            await self._check_limits(conn, task, now=now, policy=policy)
        await self._check_charge(conn, task, now=now, policy=policy)
        epoch = await conn.fetchval(
            "INSERT INTO quota_usage (guild_id, user_id, day, used) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (guild_id, user_id, day) "
            "DO UPDATE SET used = quota_usage.used + EXCLUDED.used RETURNING resets",
            task.guild_id,
            task.requester_id,
            day,
            task.quota_weight,
        )
        row = await conn.fetchrow(
            "INSERT INTO tasks (kind, provider, guild_id, channel_id, thread_id, "
            "requester_id, request_json, state, poll_interval, next_action_at, "
            "created_at, updated_at, quota_day, quota_weight, retry_of, character_id, "
            "quota_epoch) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, 'submitting', $8, NULL, $9, $9, $10, $11, "
            "$12, $13, $14) RETURNING *",
            task.kind,
            task.provider,
            task.guild_id,
            task.channel_id,
            task.thread_id,
            task.requester_id,
            json.dumps(task.request),
            task.poll_interval,
            now,
            day,
            task.quota_weight,
            task.retry_of,
            task.character_id,
            epoch,
        )
        assert row is not None
        return TaskRow.from_mapping(row)

    async def _check_limits(
        self, conn: asyncpg.Connection, task: NewTask, *, now: float, policy: QuotaPolicy
    ) -> None:
        if policy.cooldown > 0:
            last = await conn.fetchval(
                "SELECT MAX(created_at) FROM tasks WHERE guild_id = $1 AND requester_id = $2",
                task.guild_id,
                task.requester_id,
            )
            if last is not None and now - last < policy.cooldown:
                raise CooldownActive(last + policy.cooldown)
        if policy.max_in_flight > 0:
            in_flight = await conn.fetchval(
                "SELECT COUNT(*) FROM tasks WHERE guild_id = $1 AND requester_id = $2 "
                "AND state IN ('submitting', 'queued', 'running')",
                task.guild_id,
                task.requester_id,
            )
            if in_flight >= policy.max_in_flight:
                raise TooManyInFlight(policy.max_in_flight)

    async def get_task(self, task_id: int) -> TaskRow | None:
        row = await self.pool.fetchrow("SELECT * FROM tasks WHERE id = $1", task_id)
        return TaskRow.from_mapping(row) if row else None

    async def task_by_message(self, message_id: int) -> TaskRow | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM tasks WHERE status_message_id = $1 OR result_message_id = $1 "
            "ORDER BY id DESC LIMIT 1",
            message_id,
        )
        return TaskRow.from_mapping(row) if row else None

    async def update_task(self, task_id: int, **fields: Unpack[TaskChange]) -> None:
        if fields:
            # Waking the pollers only when the task becomes due: a release (the poller's
            # own outcome) never notifies, or every poll would wake every process.
            notify = fields.get("next_action_at") is not None
            await self._update(
                task_id, fields, release_owner=None, expected_state=None, notify=notify
            )

    async def release(
        self,
        task_id: int,
        owner: str,
        *,
        expected_state: str | None = None,
        **fields: Unpack[TaskChange],
    ) -> bool:
        return await self._update(
            task_id, fields, release_owner=owner, expected_state=expected_state, notify=False
        )

    async def _update(
        self,
        task_id: int,
        fields: TaskChange,
        *,
        release_owner: str | None,
        expected_state: str | None,
        notify: bool,
    ) -> bool:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        params: list[Any] = []

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        # Column names come from the UPDATABLE whitelist; every value is bound.
        now = time.time()
        assignments = []
        for name, value in (encode_field(c, v) for c, v in fields.items()):
            if release_owner is not None and name == "next_action_at" and value is not None:
                # A callback arrived while this action ran: due at once (SPEC §6).
                mark = bind(value)
                assignments.append(
                    f"next_action_at = CASE WHEN callback_hint = 1 "
                    f"THEN LEAST({mark}::DOUBLE PRECISION, {bind(now)}::DOUBLE PRECISION) "
                    f"ELSE {mark}::DOUBLE PRECISION END"
                )
                continue
            assignments.append(f"{name} = {bind(value)}")
        if release_owner is not None:
            assignments.append("callback_hint = 0")
        assignments.append(f"updated_at = {bind(now)}")
        where = f"id = {bind(task_id)}"
        if release_owner is not None:
            assignments += ["lease_owner = NULL", "lease_until = NULL"]
            where += f" AND (lease_owner = {bind(release_owner)} OR lease_owner IS NULL)"
        if expected_state is not None:
            # Someone else (a cancel) may have moved the task meanwhile: theirs wins.
            where += f" AND state = {bind(expected_state)}"
        sql = f"UPDATE tasks SET {', '.join(assignments)} WHERE {where} RETURNING id"  # noqa: S608
        async with self._transaction() as conn:
            changed = await conn.fetchval(sql, *params) is not None
            if changed and notify:
                await self._notify(conn)
        return changed

    async def callback_hint(self, provider: str, token: str, *, now: float) -> CallbackHint | None:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "SELECT id FROM tasks WHERE callback_token = $1 AND provider = $2",
                token,
                provider,
            )
            if row is None:
                return None
            changed = (
                await conn.fetchval(
                    "UPDATE tasks SET callback_hint = 1, next_action_at = CASE "
                    "WHEN lease_until IS NULL OR lease_until < $1 THEN $1 "
                    "ELSE next_action_at END "
                    "WHERE id = $2 AND state IN ('submitting', 'queued', 'running') RETURNING id",
                    now,
                    row["id"],
                )
                is not None
            )
            if changed:
                await self._notify(conn)  # the worker of any process may poll it
        return CallbackHint(int(row["id"]), changed)

    async def short_link(
        self, task_id: int, url: str, *, token: str, expires_at: float, now: float
    ) -> str:
        digest = hashlib.sha256(url.encode()).hexdigest()
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM short_links WHERE expires_at < $1", now)
            await conn.execute(
                "INSERT INTO short_links (token, task_id, url_hash, url, expires_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, url_hash) DO NOTHING",
                token,
                task_id,
                digest,
                url,
                expires_at,
            )
            found = await conn.fetchval(
                "SELECT token FROM short_links WHERE task_id = $1 AND url_hash = $2",
                task_id,
                digest,
            )
        return str(found)

    async def resolve_short_link(self, token: str, *, now: float) -> str | None:
        url = await self.pool.fetchval(
            "SELECT url FROM short_links WHERE token = $1 AND expires_at >= $2", token, now
        )
        return str(url) if url is not None else None

    async def cancel_task(self, task_id: int, *, now: float) -> bool:
        """Move an in-flight task to ``cancelled`` (its final message is still to post)."""
        async with self._transaction() as conn:
            changed = (
                await conn.fetchval(
                    "UPDATE tasks SET state = 'cancelled', error_code = 'cancelled', "
                    "finished_at = $1, updated_at = $1, next_action_at = $1, lease_owner = NULL, "
                    "lease_until = NULL WHERE id = $2 "
                    "AND state IN ('submitting', 'queued', 'running') RETURNING id",
                    now,
                    task_id,
                )
                is not None
            )
            if changed:
                await self._notify(conn)  # the delivery lane of any process may post it
        return changed

    async def release_all_leases(self) -> int:
        """Void every lease. Only for a process that knows it is alone on the database
        (``single_process``); the app never calls it for Postgres."""
        async with self._transaction() as conn:
            status = await conn.execute(
                "UPDATE tasks SET lease_owner = NULL, lease_until = NULL, "
                "next_action_at = LEAST(next_action_at, $1) WHERE lease_owner IS NOT NULL",
                time.time(),
            )
        return _rows_changed(status)

    async def renew_leases(
        self, task_ids: Collection[int], owner: str, *, until: float, due_at_end: bool = False
    ) -> list[int]:
        """Extend the leases ``owner`` still holds on these tasks; the ids extended.

        Safe against a concurrent claimer: if another process leased a row first, this
        UPDATE waits for its commit, re-checks ``lease_owner`` and leaves the row alone.
        """
        ids = sorted(set(task_ids))
        if not ids:
            return []
        due = ", next_action_at = GREATEST(next_action_at, $1)" if due_at_end else ""
        rows = await self.pool.fetch(
            f"UPDATE tasks SET lease_until = $1{due} WHERE id = ANY($2::BIGINT[]) "  # noqa: S608
            "AND lease_owner = $3 RETURNING id",
            until,
            ids,
            owner,
        )
        return sorted(int(r["id"]) for r in rows)

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
        Rows another process is claiming right now are skipped, not waited for.
        """
        params: list[Any] = [owner, now + lease_seconds, now, limit]
        if delivery:
            lane = "state IN ('succeeded', 'failed', 'cancelled')"
        else:
            lane = "provider = $5 AND state IN ('submitting', 'queued', 'running')"
            params.append(provider)
        # lane is one of the two constant strings above; values are bound parameters.
        sql = (
            "UPDATE tasks SET lease_owner = $1, lease_until = $2, "  # noqa: S608
            "callback_hint = 0 WHERE id IN ("
            " SELECT id FROM tasks WHERE next_action_at IS NOT NULL AND next_action_at <= $3"
            " AND (lease_until IS NULL OR lease_until < $3)"
            f" AND {lane} ORDER BY next_action_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING *"
        )
        async with self._transaction() as conn:
            rows = await conn.fetch(sql, *params)
        tasks = [TaskRow.from_mapping(r) for r in rows]
        tasks.sort(key=lambda t: t.next_action_at or 0.0)
        return tasks

    async def next_due_at(self) -> float | None:
        # Leased rows are skipped by claim_due until the lease ends, so the next wake-up
        # is the later of the two times.
        due: float | None = await self.pool.fetchval(
            "SELECT MIN(GREATEST(next_action_at, COALESCE(lease_until, 0))) FROM tasks "
            "WHERE next_action_at IS NOT NULL"
        )
        return due

    async def mark_delivered(self, task_id: int, result_message_id: int, *, now: float) -> bool:
        row = await self.pool.fetchval(
            "UPDATE tasks SET delivered = TRUE, result_message_id = $1, next_action_at = NULL, "
            "updated_at = $2 WHERE id = $3 AND NOT delivered RETURNING id",
            result_message_id,
            now,
            task_id,
        )
        return row is not None

    async def refund(self, task_id: int) -> bool:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE tasks SET refunded = TRUE WHERE id = $1 AND NOT refunded "
                "RETURNING guild_id, requester_id, quota_day, quota_weight, quota_epoch",
                task_id,
            )
            if row is None:
                return False
            # Only within the epoch it was charged in: a /quota reset since then already
            # gave this charge back.
            await conn.execute(
                "UPDATE quota_usage SET used = GREATEST(0, used - $1) "
                "WHERE guild_id = $2 AND user_id = $3 AND day = $4 AND resets = $5",
                row["quota_weight"],
                row["guild_id"],
                row["requester_id"],
                row["quota_day"],
                row["quota_epoch"],
            )
            return True

    async def user_tasks(self, guild_id: int, user_id: int, *, limit: int) -> list[TaskRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM tasks WHERE guild_id = $1 AND requester_id = $2 "
            "ORDER BY id DESC LIMIT $3",
            guild_id,
            user_id,
            limit,
        )
        return [TaskRow.from_mapping(r) for r in rows]

    async def guild_tasks(self, guild_id: int, *, limit: int) -> list[TaskRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM tasks WHERE guild_id = $1 ORDER BY id DESC LIMIT $2", guild_id, limit
        )
        return [TaskRow.from_mapping(r) for r in rows]

    async def recent_durations(self, provider: str, *, limit: int) -> list[float]:
        """Seconds from submit to success of the provider's latest ``limit`` videos."""
        rows = await self.pool.fetch(
            "SELECT finished_at - submitted_at AS took FROM tasks WHERE provider = $1 "
            "AND kind = 'video' AND state = 'succeeded' AND submitted_at IS NOT NULL "
            "AND finished_at IS NOT NULL ORDER BY id DESC LIMIT $2",
            provider,
            limit,
        )
        return [float(r["took"]) for r in reversed(rows)]

    async def recent_completions(
        self, provider: str, *, limit: int
    ) -> list[tuple[str | None, float]]:
        rows = await self.pool.fetch(
            "SELECT request_json::jsonb ->> 'model' AS model, finished_at - submitted_at AS took "
            "FROM tasks WHERE provider = $1 AND kind = 'video' AND state = 'succeeded' "
            "AND submitted_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY id DESC LIMIT $2",
            provider,
            limit,
        )
        return [(r["model"], float(r["took"])) for r in reversed(rows)]

    async def input_images_in_use(self, *, since: float) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT request_json::jsonb #>> '{image,sha256}' AS sha256 FROM tasks "
            "WHERE created_at >= $1 AND request_json::jsonb #>> '{image,sha256}' IS NOT NULL",
            since,
        )
        return {str(r["sha256"]) for r in rows}

    async def count_unfinished(self) -> int:
        return int(
            await self.pool.fetchval("SELECT COUNT(*) FROM tasks WHERE next_action_at IS NOT NULL")
        )

    # --- quotas & moderation ------------------------------------------------------------------
    async def reset_usage(self, guild_id: int, user_id: int, *, now: float) -> int:
        """Clear today's usage; returns what it was."""
        async with self._transaction() as conn:
            before = await conn.fetchval(
                "SELECT used FROM quota_usage WHERE guild_id = $1 AND user_id = $2 AND day = $3 "
                "FOR UPDATE",
                guild_id,
                user_id,
                utc_day(now),
            )
            await conn.execute(
                "UPDATE quota_usage SET used = 0, resets = resets + 1 "
                "WHERE guild_id = $1 AND user_id = $2 AND day = $3",
                guild_id,
                user_id,
                utc_day(now),
            )
        return 0 if before is None else int(before)

    async def usage_summary(self, guild_id: int, user_id: int | None = None) -> UsageSummary:
        # One statement for both cases: a NULL user means "everyone in the guild".
        rows = await self.pool.fetch(
            "SELECT provider, COUNT(*), COALESCE(SUM(credits), 0) FROM tasks "
            "WHERE guild_id = $1 AND ($2::BIGINT IS NULL OR requester_id = $2) "
            "GROUP BY provider",
            guild_id,
            user_id,
        )
        by_provider = {r[0]: float(r[2]) for r in rows}
        return UsageSummary(
            tasks=sum(int(r[1]) for r in rows),
            credits=sum(by_provider.values()),
            by_provider=by_provider,
        )

    async def claim_reaction(
        self, message_id: int, user_id: int, emoji: str, *, now: float, window: float
    ) -> bool:
        async with self._transaction() as conn:
            # Expired rows only; rows another claimer is evicting are skipped, not waited
            # for (so two evictions never deadlock).
            await conn.execute(
                "DELETE FROM reaction_actions WHERE ctid IN (SELECT ctid FROM reaction_actions"
                " WHERE at < $1 FOR UPDATE SKIP LOCKED)",
                now - max(window, REACTION_RETENTION),
            )
            row = await conn.fetchval(
                "INSERT INTO reaction_actions (message_id, user_id, emoji, at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (message_id, user_id, emoji) DO UPDATE "
                "SET at = EXCLUDED.at WHERE reaction_actions.at < EXCLUDED.at - $5 RETURNING 1",
                message_id,
                user_id,
                emoji,
                now,
                window,
            )
        return row is not None

    # --- characters -------------------------------------------------------------------------
    async def create_character(
        self, *, guild_id: int, owner_id: int, name: str, provider: str, now: float
    ) -> CharacterRow:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO characters (guild_id, owner_id, name, provider, state,"
                " created_at, updated_at) VALUES ($1, $2, $3, $4, 'collecting', $5, $5)"
                " RETURNING *",
                guild_id,
                owner_id,
                name,
                provider,
                now,
            )
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateName(name) from exc
        assert row is not None
        return CharacterRow.from_mapping(row)

    async def add_character_image(
        self, character_id: int, image: CharacterImage, *, now: float, limit: int
    ) -> str:
        """Add one reference photo: 'added', 'duplicate' or 'full'."""
        async with self._transaction() as conn:
            # Lock the character so two photos arriving together cannot both pass the limit.
            await conn.execute("SELECT 1 FROM characters WHERE id = $1 FOR UPDATE", character_id)
            count = await conn.fetchval(
                "SELECT COUNT(*) FROM character_images WHERE character_id = $1", character_id
            )
            if count >= limit:
                return "full"
            added = await conn.fetchval(
                "INSERT INTO character_images (character_id, sha256, content_type, size,"
                " channel_id, message_id, url, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT DO NOTHING RETURNING 1",
                character_id,
                image.sha256,
                image.content_type,
                image.size,
                image.channel_id,
                image.message_id,
                image.url,
                now,
            )
        return "added" if added is not None else "duplicate"

    async def delete_character(self, character_id: int) -> list[CharacterImage]:
        """Remove the character and its image records; return what the files were."""
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM character_images WHERE character_id = $1 "
                "RETURNING sha256, content_type, size, channel_id, message_id, url, added_at",
                character_id,
            )
            await conn.execute("DELETE FROM characters WHERE id = $1", character_id)
        ordered = sorted(rows, key=lambda r: (r["added_at"], r["sha256"]))
        return [CharacterImage(*tuple(r)[:6]) for r in ordered]


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("store: LISTEN reconnection stopped", exc_info=task.exception())
