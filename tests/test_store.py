"""The store on both backends: migrations, quota atomicity, the due-task queue,
exactly-once markers, and (PostgreSQL) several processes sharing one database.

Every test taking ``store`` or ``backend`` runs once per backend. The PostgreSQL runs
use REELBOT_TEST_POSTGRES_URL (a URL of a role that may create databases), or else a
throwaway cluster started from Debian's postgresql package (tests/pg.py); where neither
is possible they are skipped with "PostgreSQL not available: <why>". Each test session
(xdist worker) gets its own database, and each test an empty schema in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from reelbot.store import NewTask, PostgresStore, QuotaExceeded, QuotaPolicy, SqliteStore, Store
from reelbot.store.models import (
    REACTION_RETENTION,
    BudgetExceeded,
    CharacterImage,
    CharacterUnavailable,
    CooldownActive,
    DuplicateName,
    TooManyInFlight,
    utc_day,
)
from reelbot.store.schema import load_migrations
from tests.pg import fresh_schema

NOW = 1_790_000_000.0  # a fixed instant keeps quota days deterministic
G, U = 111, 222
WAIT = 5.0  # generous bound for cross-connection events (NOTIFY, lock skipping)


def new_task(provider: str = "hiapi", user: int = U, **kw) -> NewTask:
    return NewTask(
        provider=provider,
        guild_id=G,
        channel_id=5,
        requester_id=user,
        request={"prompt": "a cat"},
        poll_interval=5.0,
        **kw,
    )


POLICY = QuotaPolicy(default_limit=3)
POLICY_10 = QuotaPolicy(default_limit=10)
AnyStore = SqliteStore | PostgresStore  # the protocol plus what tests peek at


# --- backends -------------------------------------------------------------------------------
class Backend:
    """One empty database of one backend; each ``open()`` is another process's store."""

    def __init__(self, dialect: str, make: Callable[[], AnyStore]) -> None:
        self.dialect = dialect
        self._make = make
        self._opened: list[AnyStore] = []

    async def open(self) -> AnyStore:
        store = self._make()
        await store.open()
        self._opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self._opened:
            await store.close()


@contextlib.asynccontextmanager
async def open_backend(dialect: str, request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with contextlib.AsyncExitStack() as stack:
        if dialect == "sqlite":
            path = str(request.getfixturevalue("tmp_path") / "sub" / "store.db")
            made = Backend("sqlite", lambda: SqliteStore(path))
        else:
            url = await stack.enter_async_context(
                fresh_schema(request.getfixturevalue("postgres_database"))
            )
            made = Backend("postgres", lambda: PostgresStore(url))
        stack.push_async_callback(made.close_all)
        yield made


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with open_backend(request.param, request) as made:
        yield made


@pytest.fixture
async def pg(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """For the PostgreSQL-only tests (multi-process specifics)."""
    async with open_backend("postgres", request) as made:
        yield made


@pytest.fixture
async def store(backend: Backend) -> AnyStore:
    return await backend.open()


# --- migrations -------------------------------------------------------------------------------
async def test_migrations_apply_once_and_reopening_keeps_the_data(backend: Backend) -> None:
    first = await backend.open()
    expected = len(load_migrations(backend.dialect))
    assert await first.schema_version() == expected
    task = await first.create_task(new_task(), now=NOW, policy=POLICY)
    # Two more processes starting together: nothing applied twice, nothing lost.
    second, third = await asyncio.gather(backend.open(), backend.open())
    assert await second.schema_version() == expected
    assert (await third.get_task(task.id)).request == {"prompt": "a cat"}


async def test_sqlite_file_is_wal_with_every_table(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    s = SqliteStore(str(path))
    await s.open()
    await s.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tasks", "quota_usage", "user_quotas", "guild_settings", "audit_log"} <= tables


async def test_both_dialects_have_the_same_migrations() -> None:
    sqlite, postgres = load_migrations("sqlite"), load_migrations("postgres")
    assert [v for v, _ in sqlite] == [v for v, _ in postgres]


# --- the shared semantics -----------------------------------------------------------------------
async def test_quota_is_taken_at_creation_and_refused_past_the_limit(store: Store) -> None:
    for _ in range(3):
        await store.create_task(new_task(), now=NOW, policy=POLICY)
    with pytest.raises(QuotaExceeded) as info:
        await store.create_task(new_task(), now=NOW, policy=POLICY)
    assert info.value.status.used == 3 and info.value.status.limit == 3
    assert "3 of your 3" in str(info.value)
    # The refused attempt created nothing.
    assert len(await store.user_tasks(G, U, limit=10)) == 3
    # Tomorrow (UTC) is a new day.
    await store.create_task(new_task(), now=NOW + 86_400, policy=POLICY)


async def test_concurrent_creations_at_the_limit_cannot_both_pass(store: Store) -> None:
    policy = QuotaPolicy(default_limit=1)
    results = await asyncio.gather(
        *(store.create_task(new_task(), now=NOW, policy=policy) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 4


async def test_user_limit_overrides_guild_default_which_overrides_config(
    store: Store,
) -> None:
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert (status.limit, status.source) == (10, "default")
    await store.set_guild_default(G, 4)
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert (status.limit, status.source) == (4, "guild")
    await store.set_user_limit(G, U, 0)
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert (status.limit, status.source, status.remaining) == (0, "user", None)


async def test_refund_gives_quota_back_once(store: Store) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 1
    assert await store.refund(task.id) is True
    assert await store.refund(task.id) is False
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 0


async def test_reset_usage_reports_previous_value(store: Store) -> None:
    await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.create_task(new_task(), now=NOW, policy=POLICY)
    assert await store.reset_usage(G, U, now=NOW) == 2
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 0


async def test_a_task_charged_before_a_reset_gives_nothing_back_after_it(store: Store) -> None:
    # /quota reset cleared the charge of the first two tasks: refunding them afterwards
    # must neither eat the charge of a task made after the reset nor go below zero.
    before = [await store.create_task(new_task(), now=NOW, policy=POLICY) for _ in range(2)]
    assert await store.reset_usage(G, U, now=NOW + 1) == 2
    after = await store.create_task(new_task(), now=NOW + 2, policy=POLICY)
    for task in before:
        assert await store.refund(task.id) is True  # its quota is not held any more
        assert await store.refund(task.id) is False
        assert (await store.quota_status(G, U, now=NOW + 3, default_limit=3)).used == 1
    # A second reset, then the post-reset task's refund: nothing left to give either.
    assert await store.reset_usage(G, U, now=NOW + 4) == 1
    newest = await store.create_task(new_task(), now=NOW + 5, policy=POLICY)
    assert await store.refund(after.id) is True
    assert (await store.quota_status(G, U, now=NOW + 6, default_limit=3)).used == 1
    assert await store.refund(newest.id) is True
    assert (await store.quota_status(G, U, now=NOW + 6, default_limit=3)).used == 0
    # The limit holds as before: 3 fresh creations pass, the 4th is refused.
    for _ in range(3):
        await store.create_task(new_task(), now=NOW + 7, policy=POLICY)
    with pytest.raises(QuotaExceeded):
        await store.create_task(new_task(), now=NOW + 7, policy=POLICY)


async def test_cooldown_and_in_flight_caps(store: Store) -> None:
    policy = QuotaPolicy(default_limit=0, cooldown=10, max_in_flight=2)
    await store.create_task(new_task(), now=NOW, policy=policy)
    with pytest.raises(CooldownActive):
        await store.create_task(new_task(), now=NOW + 5, policy=policy)
    await store.create_task(new_task(), now=NOW + 11, policy=policy)
    with pytest.raises(TooManyInFlight):
        await store.create_task(new_task(), now=NOW + 30, policy=policy)


async def test_claim_due_takes_only_due_tasks_of_the_lane_and_leases_them(
    store: Store,
) -> None:
    a = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    b = await store.create_task(new_task("foxapi"), now=NOW, policy=POLICY)
    c = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    await store.update_task(a.id, next_action_at=NOW - 1)
    await store.update_task(b.id, next_action_at=NOW - 1)
    await store.update_task(c.id, next_action_at=NOW + 100)
    claimed = await store.claim_due(
        now=NOW, limit=10, owner="w1", lease_seconds=60, provider="hiapi"
    )
    assert [t.id for t in claimed] == [a.id]
    # Leased: a second claimer gets nothing until the lease ends.
    assert (
        await store.claim_due(now=NOW, limit=10, owner="w2", lease_seconds=60, provider="hiapi")
        == []
    )
    again = await store.claim_due(
        now=NOW + 61, limit=10, owner="w2", lease_seconds=60, provider="hiapi"
    )
    assert [t.id for t in again] == [a.id]
    assert await store.next_due_at() == pytest.approx(NOW - 1)  # b, foxapi lane


async def test_release_with_expected_state_loses_to_a_cancel(store: Store) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.update_task(task.id, state="running", next_action_at=NOW)
    [claimed] = await store.claim_due(
        now=NOW, limit=1, owner="w", lease_seconds=60, provider="hiapi"
    )
    assert await store.cancel_task(task.id, now=NOW) is True
    assert (
        await store.release(task.id, "w", expected_state="running", state="running", progress=50)
        is False
    )
    row = await store.get_task(task.id)
    assert row is not None and row.state == "cancelled" and row.progress is None
    assert await store.cancel_task(task.id, now=NOW) is False
    assert claimed.id == task.id


async def test_delivery_marker_is_set_once(store: Store) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.update_task(task.id, state="succeeded", next_action_at=NOW)
    assert await store.mark_delivered(task.id, 999, now=NOW) is True
    assert await store.mark_delivered(task.id, 1000, now=NOW) is False
    row = await store.get_task(task.id)
    assert row is not None
    assert (row.delivered, row.result_message_id, row.next_action_at) == (True, 999, None)
    assert (await store.task_by_message(999)).id == task.id


async def test_reaction_claims_are_deduplicated_within_the_window(store: Store) -> None:
    assert await store.claim_reaction(1, 2, "🔁", now=NOW, window=30) is True
    assert await store.claim_reaction(1, 2, "🔁", now=NOW + 1, window=30) is False
    assert await store.claim_reaction(1, 3, "🔁", now=NOW + 1, window=30) is True
    assert await store.claim_reaction(1, 2, "🔁", now=NOW + 60, window=30) is True


async def _count_reaction_rows(store: AnyStore) -> int:
    if isinstance(store, SqliteStore):
        async with store.db.execute("SELECT COUNT(*) FROM reaction_actions") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
    return int(await store.pool.fetchval("SELECT COUNT(*) FROM reaction_actions"))


async def test_reaction_claims_expire_so_the_table_stays_bounded(store: AnyStore) -> None:
    # One row per reaction ever seen used to stay forever; past the dedup window (and
    # the store's retention floor) a row is useless and is evicted by later claims.
    for message_id in range(1, 51):
        assert await store.claim_reaction(message_id, U, "🔁", now=NOW, window=30)
    assert await _count_reaction_rows(store) == 50
    later = NOW + REACTION_RETENTION + 31
    for user in (1, 2, 3):
        assert await store.claim_reaction(999, user, "🔁", now=later, window=30)
    assert await _count_reaction_rows(store) == 3
    # The dedup itself is unchanged: within the window once, after it again.
    assert await store.claim_reaction(999, 1, "🔁", now=later + 1, window=30) is False
    assert await store.claim_reaction(1, U, "🔁", now=later + 2, window=30) is True


async def test_input_images_in_use_are_those_of_tasks_since_a_time(store: Store) -> None:
    def with_image(sha: str) -> NewTask:
        task = new_task()
        task.request = {"prompt": "a cat", "image": {"sha256": sha, "content_type": "image/png"}}
        return task

    await store.create_task(with_image("a" * 64), now=NOW - 100, policy=QuotaPolicy(0))
    await store.create_task(with_image("b" * 64), now=NOW, policy=QuotaPolicy(0))
    await store.create_task(new_task(), now=NOW, policy=QuotaPolicy(0))  # text only
    assert await store.input_images_in_use(since=NOW - 50) == {"b" * 64}
    assert await store.input_images_in_use(since=NOW - 100) == {"a" * 64, "b" * 64}
    assert await store.input_images_in_use(since=NOW + 1) == set()


async def test_unknown_columns_are_refused(store: Store) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    with pytest.raises(ValueError, match="not updatable"):
        await store.update_task(task.id, requester_id=1)


async def test_usage_summary_and_audit_log(store: Store) -> None:
    a = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    b = await store.create_task(new_task("foxapi"), now=NOW, policy=POLICY)
    await store.create_task(new_task("foxapi", user=U + 1), now=NOW, policy=POLICY)
    await store.update_task(a.id, credits=1.5)
    await store.update_task(b.id, credits=2)
    mine = await store.usage_summary(G, U)
    assert (mine.tasks, mine.credits, mine.by_provider) == (2, 3.5, {"hiapi": 1.5, "foxapi": 2.0})
    assert (await store.usage_summary(G)).tasks == 3
    await store.audit(G, 9, "quota.set", target_id=U, details="limit=5", now=NOW)
    await store.audit(G, 9, "quota.reset", target_id=None, details="", now=NOW + 1)
    entries = await store.audit_entries(G)
    assert [e["action"] for e in entries] == ["quota.reset", "quota.set"]
    assert entries[1] == {
        "actor_id": 9, "action": "quota.set", "target_id": U, "details": "limit=5", "at": NOW
    }  # fmt: skip


async def test_characters_keep_their_photos_once_and_up_to_the_limit(store: Store) -> None:
    made = await store.create_character(guild_id=G, owner_id=U, name="Ann", provider="hf", now=NOW)
    with pytest.raises(DuplicateName):
        await store.create_character(guild_id=G, owner_id=U, name="Ann", provider="hf", now=NOW)

    def photo(n: int) -> CharacterImage:
        return CharacterImage(f"sha{n}", "image/png", 10 + n, 5, 900 + n, f"https://cdn/{n}")

    assert await store.add_character_image(made.id, photo(1), now=NOW, limit=2) == "added"
    assert await store.add_character_image(made.id, photo(1), now=NOW, limit=2) == "duplicate"
    assert await store.add_character_image(made.id, photo(2), now=NOW + 1, limit=2) == "added"
    assert await store.add_character_image(made.id, photo(3), now=NOW + 2, limit=2) == "full"
    await store.update_character(made.id, state="ready", shared=True, thread_id=77)
    [listed] = await store.guild_characters(G)
    assert (listed.state, listed.shared, listed.image_count) == ("ready", True, 2)
    assert (await store.character_by_thread(77)).id == made.id
    assert await store.delete_character(made.id) == [photo(1), photo(2)]
    assert await store.get_character(made.id) is None


async def test_single_process_flag_matches_the_backend(backend: Backend, store: Store) -> None:
    # Only a store that is alone on its database may void leases at start.
    assert store.single_process is (backend.dialect == "sqlite")
    await store.subscribe(lambda: None)  # SQLite: a no-op; PostgreSQL: LISTEN


# --- several processes on one database ------------------------------------------------------------
async def test_an_expired_lease_is_taken_over_by_another_process(backend: Backend) -> None:
    crashed, survivor = await backend.open(), await backend.open()
    task = await crashed.create_task(new_task(), now=NOW, policy=POLICY)
    await crashed.update_task(task.id, next_action_at=NOW)
    claim = {"limit": 5, "lease_seconds": 60, "provider": "hiapi"}
    assert [t.id for t in await crashed.claim_due(now=NOW, owner="a", **claim)] == [task.id]
    # "a" dies without releasing. Until its lease ends nobody else may act on the task...
    assert await survivor.claim_due(now=NOW + 59, owner="b", **claim) == []
    assert await survivor.next_due_at() == pytest.approx(NOW + 60)
    # ...then the survivor takes it over, and a late release from "a" changes nothing.
    assert [t.id for t in await survivor.claim_due(now=NOW + 61, owner="b", **claim)] == [task.id]
    assert await crashed.release(task.id, "a", progress=10) is False
    assert await survivor.release(task.id, "b", progress=20) is True
    assert (await survivor.get_task(task.id)).progress == 20


async def test_concurrent_claimers_never_share_a_task(backend: Backend) -> None:
    workers = [await backend.open() for _ in range(3)]
    ids = []
    for _ in range(30):
        task = await workers[0].create_task(new_task(), now=NOW, policy=QuotaPolicy(0))
        await workers[0].update_task(task.id, next_action_at=NOW - 1)
        ids.append(task.id)

    async def drain(store: Store, owner: str) -> list[int]:
        got: list[int] = []
        while batch := await store.claim_due(
            now=NOW, limit=4, owner=owner, lease_seconds=60, provider="hiapi"
        ):
            got += [t.id for t in batch]
            await asyncio.sleep(0)  # let the other claimers interleave
        return got

    claimed = await asyncio.gather(*(drain(w, f"w{i}") for i, w in enumerate(workers)))
    flat = [i for batch in claimed for i in batch]
    assert sorted(flat) == sorted(ids)  # every task claimed exactly once


async def test_creations_from_two_processes_at_the_limit_cannot_both_pass(
    backend: Backend,
) -> None:
    a, b = await backend.open(), await backend.open()
    policy = QuotaPolicy(default_limit=2, max_in_flight=0)
    results = await asyncio.gather(
        *(s.create_task(new_task(), now=NOW, policy=policy) for s in (a, b, a, b, a, b)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 2
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 4
    assert (await b.quota_status(G, U, now=NOW, default_limit=2)).used == 2


# --- PostgreSQL only ----------------------------------------------------------------------------
async def test_postgres_claim_skips_rows_another_claimer_holds(pg: Backend) -> None:
    store = await pg.open()
    first = await store.create_task(new_task(), now=NOW, policy=POLICY)
    second = await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.update_task(first.id, next_action_at=NOW - 2)
    await store.update_task(second.id, next_action_at=NOW - 1)
    # Another claimer is mid-transaction on the earliest task (row locked, not yet leased).
    other = await asyncpg.connect(store.dsn)
    try:
        async with other.transaction():
            await other.execute("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", first.id)
            claimed = await asyncio.wait_for(
                store.claim_due(now=NOW, limit=5, owner="w", lease_seconds=60, provider="hiapi"),
                WAIT,
            )
        assert [t.id for t in claimed] == [second.id]  # skipped, not waited for
    finally:
        await other.close()


async def test_postgres_notify_wakes_subscribers_when_work_becomes_due(pg: Backend) -> None:
    writer, worker = await pg.open(), await pg.open()
    woken = asyncio.Event()
    await worker.subscribe(woken.set)
    task = await writer.create_task(new_task(), now=NOW, policy=POLICY)
    await writer.update_task(task.id, next_action_at=NOW)
    await asyncio.wait_for(woken.wait(), WAIT)
    woken.clear()
    # A poller recording its own outcome does not wake everyone...
    await writer.release(task.id, "w", next_action_at=NOW + 5)
    await asyncio.sleep(0.2)
    assert not woken.is_set()
    # ...a cancel does (some process's delivery lane must post the final message).
    assert await writer.cancel_task(task.id, now=NOW) is True
    await asyncio.wait_for(woken.wait(), WAIT)


async def test_postgres_listener_reconnects_after_losing_its_connection(pg: Backend) -> None:
    writer, worker = await pg.open(), await pg.open()
    woken = asyncio.Event()
    await worker.subscribe(woken.set)
    pid = worker._listener.get_server_pid()
    await writer.pool.execute("SELECT pg_terminate_backend($1)", pid)
    await asyncio.wait_for(woken.wait(), WAIT)  # restored: one wake for what was missed
    assert worker._listener is not None and worker._listener.get_server_pid() != pid
    woken.clear()
    await writer.notify_work()
    await asyncio.wait_for(woken.wait(), WAIT)


async def test_a_crash_inside_a_postgres_write_leaves_the_store_consistent(pg: Backend) -> None:
    store = await pg.open()
    await store.create_task(new_task(), now=NOW, policy=POLICY)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store._transaction() as conn:
            await conn.execute(
                "UPDATE quota_usage SET used = used + 5 WHERE guild_id = $1 AND day = $2",
                G,
                utc_day(NOW),
            )
            raise Boom
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 1
    # A connection killed mid-transaction rolls back the same way.
    conn = await asyncpg.connect(store.dsn)
    tr = conn.transaction()
    await tr.start()
    await conn.execute("UPDATE quota_usage SET used = used + 5 WHERE guild_id = $1", G)
    await store.pool.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    await conn.close()
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 1
    assert len(await store.user_tasks(G, U, limit=10)) == 1


# --- SQLite only ----------------------------------------------------------------------------------
async def test_a_crash_inside_a_sqlite_write_leaves_the_store_consistent(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    s = SqliteStore(str(path))
    await s.open()
    task = await s.create_task(new_task(), now=NOW, policy=POLICY)

    class Boom(Exception):
        pass

    # A transaction interrupted half-way (quota taken, task insert not reached) rolls back.
    with pytest.raises(Boom):
        async with s._transaction() as db:
            await db.execute(
                "UPDATE quota_usage SET used = used + 5 WHERE guild_id = ? AND day = ?",
                (G, utc_day(NOW)),
            )
            raise Boom
    assert (await s.quota_status(G, U, now=NOW, default_limit=3)).used == 1
    await s.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert raw.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 1
    assert task.state == "submitting"


# --- lease renewal (both backends) ------------------------------------------------------------
async def test_renewing_extends_only_the_leases_the_owner_still_holds(backend: Backend) -> None:
    a, b = await backend.open(), await backend.open()
    tasks = [await a.create_task(new_task(), now=NOW, policy=QuotaPolicy(0)) for _ in range(3)]
    for task in tasks:
        await a.update_task(task.id, next_action_at=NOW)
    claim = {"limit": 2, "lease_seconds": 60, "provider": "hiapi"}
    mine = [t.id for t in await a.claim_due(now=NOW, owner="a", **claim)]
    theirs = [t.id for t in await b.claim_due(now=NOW, owner="b", **claim)]
    assert len(mine) == 2 and len(theirs) == 1
    # "a" renews everything it thinks it holds, plus b's task and an unknown id: only
    # its own leases move, b's stays b's.
    renewed = await a.renew_leases([*mine, *theirs, 999_999], "a", until=NOW + 200)
    assert renewed == sorted(mine)
    assert await a.renew_leases([], "a", until=NOW + 200) == []
    # Past the original 60 s nobody can claim a's tasks; b's own lease did lapse.
    later = await b.claim_due(now=NOW + 100, owner="c", **claim)
    assert [t.id for t in later] == theirs
    assert await b.next_due_at() == pytest.approx(NOW + 200)


async def test_a_lapsed_lease_taken_over_is_not_renewed_back(backend: Backend) -> None:
    crashed, survivor = await backend.open(), await backend.open()
    task = await crashed.create_task(new_task(), now=NOW, policy=POLICY)
    await crashed.update_task(task.id, next_action_at=NOW)
    claim = {"limit": 1, "lease_seconds": 60, "provider": "hiapi"}
    await crashed.claim_due(now=NOW, owner="a", **claim)
    # "a" stalled past its lease; "b" took the task over. a's late renewal must not
    # steal it back, nor may a renewal after a release or a cancel revive a lease.
    assert [t.id for t in await survivor.claim_due(now=NOW + 61, owner="b", **claim)] == [task.id]
    assert await crashed.renew_leases([task.id], "a", until=NOW + 500) == []
    assert await survivor.renew_leases([task.id], "b", until=NOW + 130) == [task.id]
    assert await survivor.claim_due(now=NOW + 125, owner="c", **claim) == []
    assert await survivor.cancel_task(task.id, now=NOW + 126) is True
    assert await survivor.renew_leases([task.id], "b", until=NOW + 500) == []
    assert await survivor.next_due_at() == pytest.approx(NOW + 126)  # the delivery is due


async def test_postgres_renewal_waits_for_a_concurrent_claimer_and_then_yields(pg: Backend) -> None:
    store = await pg.open()
    assert isinstance(store, PostgresStore)
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.update_task(task.id, next_action_at=NOW)
    await store.claim_due(now=NOW, limit=1, owner="a", lease_seconds=60, provider="hiapi")
    # Another process is taking the lapsed task over, mid-transaction (row locked):
    # a's renewal waits for that commit, re-checks the owner and leaves the row alone.
    conn = await asyncpg.connect(store.dsn)
    try:
        tr = conn.transaction()
        await tr.start()
        await conn.execute(
            "UPDATE tasks SET lease_owner = 'b', lease_until = $1 WHERE id = $2", NOW + 200, task.id
        )
        renewal = asyncio.create_task(store.renew_leases([task.id], "a", until=NOW + 500))
        # Observed, not slept on: the renewal's backend is waiting for the row lock.
        # (Asked on another connection: inside a transaction the view is a snapshot.)
        async with asyncio.timeout(WAIT):
            while True:
                waiting = await store.pool.fetchval(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE tasks SET lease_until%'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.01)
        assert not renewal.done()
        await tr.commit()
        assert await asyncio.wait_for(renewal, WAIT) == []
    finally:
        await conn.close()
    assert await store.next_due_at() == pytest.approx(NOW + 200)


# --- characters: guarded transitions --------------------------------------------------------------
async def _character_with_photos(store: Store, name: str = "Tia", photos: int = 3) -> int:
    made = await store.create_character(guild_id=G, owner_id=U, name=name, provider="hf", now=NOW)
    for n in range(photos):
        image = CharacterImage(f"{name}{n}", "image/png", 10, 5, 900 + n, f"https://cdn/{n}")
        await store.add_character_image(made.id, image, now=NOW, limit=50)
    return made.id


def _training(character_id: int, weight: int = 2) -> NewTask:
    return NewTask(
        provider="hf",
        kind="training",
        guild_id=G,
        channel_id=5,
        requester_id=U,
        request={"name": "Tia", "character_id": character_id},
        poll_interval=5.0,
        quota_weight=weight,
        character_id=character_id,
    )


async def test_concurrent_trainings_of_one_character_from_two_processes_start_once(
    backend: Backend,
) -> None:
    a, b = await backend.open(), await backend.open()
    cid = await _character_with_photos(a)
    results = await asyncio.gather(
        *(
            s.start_training(_training(cid), now=NOW, policy=QuotaPolicy(0), min_images=3)
            for s in (a, b, a, b)
        ),
        return_exceptions=True,
    )
    started = [r for r in results if not isinstance(r, BaseException)]
    assert len(started) == 1, results
    assert all(isinstance(r, CharacterUnavailable) for r in results if r not in started)
    assert all(r.state == "training" for r in results if isinstance(r, CharacterUnavailable))
    character = await a.get_character(cid)
    assert (character.state, character.task_id) == ("training", started[0].id)
    assert (await a.quota_status(G, U, now=NOW, default_limit=0)).used == 2
    assert [t.id for t in await b.training_tasks(cid)] == [started[0].id]


async def test_a_refused_training_changes_nothing(store: Store) -> None:
    few = await _character_with_photos(store, "Few", photos=2)
    with pytest.raises(CharacterUnavailable) as info:
        await store.start_training(_training(few), now=NOW, policy=POLICY, min_images=3)
    assert (info.value.state, info.value.image_count) == ("collecting", 2)
    cid = await _character_with_photos(store)
    with pytest.raises(QuotaExceeded):  # weight 5 > limit 3: the state moves back too
        await store.start_training(_training(cid, weight=5), now=NOW, policy=POLICY, min_images=3)
    assert (await store.get_character(cid)).state == "collecting"
    assert await store.training_tasks(cid) == []
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 0
    await store.delete_character(cid)
    with pytest.raises(CharacterUnavailable) as gone:
        await store.start_training(_training(cid), now=NOW, policy=POLICY, min_images=3)
    assert gone.value.state is None


async def test_a_video_with_a_character_is_created_only_while_it_is_usable(store: Store) -> None:
    cid = await _character_with_photos(store)
    other = U + 1

    def video(user: int) -> NewTask:
        return new_task(user=user, character_id=cid)

    with pytest.raises(CharacterUnavailable):  # not ready yet
        await store.create_task(video(U), now=NOW, policy=QuotaPolicy(0))
    await store.update_character(cid, state="ready")
    await store.create_task(video(U), now=NOW, policy=QuotaPolicy(0))
    with pytest.raises(CharacterUnavailable):  # not shared
        await store.create_task(video(other), now=NOW, policy=QuotaPolicy(0))
    await store.update_character(cid, shared=True)
    await store.create_task(video(other), now=NOW, policy=QuotaPolicy(0))
    await store.delete_character(cid)
    with pytest.raises(CharacterUnavailable):
        await store.create_task(video(U), now=NOW, policy=QuotaPolicy(0))
    assert len(await store.user_tasks(G, U, limit=10)) == 1
    assert (await store.quota_status(G, other, now=NOW, default_limit=0)).used == 1


# --- callbacks (SPEC §6) ------------------------------------------------------------------
async def test_callback_hint_finds_the_task_by_token_and_provider_and_makes_it_due(
    store: Store,
) -> None:
    task = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    other = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    await store.update_task(
        task.id, state="running", callback_token="tok-a", next_action_at=NOW + 500
    )
    await store.update_task(
        other.id, state="running", callback_token="tok-b", next_action_at=NOW + 500
    )
    assert (await store.get_task(task.id)).callback_token == "tok-a"  # type: ignore[union-attr]
    assert await store.callback_hint("hiapi", "nope", now=NOW) is None
    assert await store.callback_hint("foxapi", "tok-a", now=NOW) is None  # another provider's
    hint = await store.callback_hint("hiapi", "tok-a", now=NOW)
    assert hint is not None and hint.task_id == task.id and hint.in_flight
    assert (await store.get_task(task.id)).next_action_at == pytest.approx(NOW)  # type: ignore[union-attr]
    assert (await store.get_task(other.id)).next_action_at == pytest.approx(NOW + 500)  # type: ignore[union-attr]


async def test_callback_hint_for_a_finished_task_changes_nothing(store: Store) -> None:
    task = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    await store.update_task(task.id, state="succeeded", callback_token="tok", next_action_at=None)
    hint = await store.callback_hint("hiapi", "tok", now=NOW)
    assert hint is not None and not hint.in_flight
    after = await store.get_task(task.id)
    assert after is not None and after.state == "succeeded" and after.next_action_at is None


async def test_a_callback_during_a_poll_makes_the_release_due_at_once(store: Store) -> None:
    """A callback that arrives while the task is claimed (its poll may have read the
    state from before the callback) is not lost: the release makes it due now rather
    than at the interval the poll chose. Without a callback the release is as asked."""
    now = time.time()
    hinted = await store.create_task(new_task("hiapi"), now=now, policy=POLICY)
    plain = await store.create_task(new_task("hiapi"), now=now, policy=POLICY)
    for t, token in ((hinted, "tok-h"), (plain, "tok-p")):
        await store.update_task(t.id, state="running", callback_token=token, next_action_at=now - 1)
    claimed = await store.claim_due(
        now=now, limit=10, owner="w1", lease_seconds=60, provider="hiapi"
    )
    assert {t.id for t in claimed} == {hinted.id, plain.id}
    hint = await store.callback_hint("hiapi", "tok-h", now=now)
    assert hint is not None and hint.in_flight
    # Leased: the lease is kept (no second worker takes it over meanwhile).
    assert (
        await store.claim_due(now=now, limit=10, owner="w2", lease_seconds=60, provider="hiapi")
        == []
    )
    for t in (hinted, plain):
        assert await store.release(t.id, "w1", expected_state="running", next_action_at=now + 300)
    due_now = await store.get_task(hinted.id)
    later = await store.get_task(plain.id)
    assert due_now is not None and due_now.next_action_at is not None
    assert due_now.next_action_at <= time.time()
    assert later is not None and later.next_action_at == pytest.approx(now + 300)
    # The mark is spent: the next release of the hinted task is as asked.
    await store.claim_due(now=time.time(), limit=10, owner="w1", lease_seconds=60, provider="hiapi")
    assert await store.release(hinted.id, "w1", next_action_at=now + 300)
    spent = await store.get_task(hinted.id)
    assert spent is not None and spent.next_action_at == pytest.approx(now + 300)


async def test_short_links_are_one_per_task_and_url_and_expire(store: Store) -> None:
    task = await store.create_task(new_task("foxapi"), now=NOW, policy=POLICY)
    long_url = "https://cdn.example/v.mp4?sig=" + "x" * 3000  # beyond a btree entry
    first = await store.short_link(task.id, long_url, token="t1", expires_at=NOW + 60, now=NOW)
    again = await store.short_link(task.id, long_url, token="t2", expires_at=NOW + 60, now=NOW)
    assert first == again == "t1"  # a delivery retry posts the same link
    assert await store.resolve_short_link("t1", now=NOW + 59) == long_url
    assert await store.resolve_short_link("t2", now=NOW) is None
    assert await store.resolve_short_link("t1", now=NOW + 61) is None  # expired


# --- spending: role limits, server budget, prices, settings (store/shared.py) ----------------
async def test_role_limits_the_highest_wins_and_a_user_limit_wins_over_roles(
    store: Store,
) -> None:
    await store.set_guild_default(G, 1)
    await store.set_entry(G, "role_limit", "10", 2)
    await store.set_entry(G, "role_limit", "20", 4)
    status = await store.quota_status(G, U, now=NOW, default_limit=9, role_ids=(10, 20, 30))
    assert (status.limit, status.source, status.role_id) == (4, "role", 20)
    await store.set_entry(G, "role_limit", "30", 0)  # unlimited is the highest
    status = await store.quota_status(G, U, now=NOW, default_limit=9, role_ids=(10, 20, 30))
    assert (status.limit, status.source, status.role_id) == (0, "role", 30)
    status = await store.quota_status(G, U, now=NOW, default_limit=9, role_ids=(99,))
    assert (status.limit, status.source) == (1, "guild")
    await store.set_user_limit(G, U, 3)
    status = await store.quota_status(G, U, now=NOW, default_limit=9, role_ids=(30,))
    assert (status.limit, status.source) == (3, "user")
    policy = QuotaPolicy(default_limit=9, role_ids=(20,))
    for _ in range(3):
        await store.create_task(new_task(), now=NOW, policy=policy)
    with pytest.raises(QuotaExceeded):
        await store.create_task(new_task(), now=NOW, policy=policy)


async def test_fifty_creations_from_two_processes_at_the_server_budget_edge(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    await first.set_guild_config(G, server_budget=7)
    policy = QuotaPolicy(default_limit=0, enforce=False)  # moderators: the budget still binds
    results = await asyncio.gather(
        *(
            (first if i % 2 else second).create_task(
                new_task(user=1000 + i % 5), now=NOW, policy=policy
            )
            for i in range(50)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 7
    assert sum(isinstance(r, BudgetExceeded) for r in results) == 43
    assert await first.server_spend(G, now=NOW) == 7


async def test_fifty_creations_at_the_edge_of_a_user_limit_with_a_price(store: Store) -> None:
    policy = QuotaPolicy(default_limit=10)
    results = await asyncio.gather(
        *(store.create_task(new_task(quota_weight=3), now=NOW, policy=policy) for _ in range(50)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 3  # 9 of 10 credits
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert status.used == 9


async def test_a_refund_goes_back_to_the_user_and_the_server_budget(store: Store) -> None:
    await store.set_guild_config(G, server_budget=5)
    task = await store.create_task(new_task(quota_weight=5), now=NOW, policy=POLICY_10)
    with pytest.raises(BudgetExceeded):
        await store.create_task(new_task(user=U + 1), now=NOW, policy=POLICY_10)
    assert await store.refund(task.id)
    assert await store.server_spend(G, now=NOW) == 0
    assert (await store.quota_status(G, U, now=NOW, default_limit=10)).used == 0
    await store.create_task(new_task(user=U + 1, quota_weight=5), now=NOW, policy=POLICY_10)
    assert await store.top_spenders(G, now=NOW) == [(U + 1, 5)]


async def test_guild_settings_round_trip(store: Store) -> None:
    assert await store.credit_price(G, "foxapi") == 1
    assert await store.set_entry(G, "price", "foxapi", 3) is None
    assert await store.set_entry(G, "price", "foxapi", 4) == 3
    await store.set_entry(G, "channel", "55", 1)
    await store.set_entry(G, "banned_word", "blood bath", 0)
    old = await store.set_guild_config(G, default_provider="foxapi", default_model="veo3.1-fast")
    assert old == {"default_provider": None, "default_model": None}
    settings = await store.guild_settings(G)
    assert settings.prices == {"foxapi": 4} and settings.allowed_channels == {55}
    assert settings.banned_words == ("blood bath",)
    assert (settings.default_provider, settings.default_model) == ("foxapi", "veo3.1-fast")
    assert await store.set_entry(G, "channel", "55", None) == 1
    assert (await store.guild_settings(G)).allowed_channels == frozenset()
    with pytest.raises(ValueError):
        await store.set_entry(G, "nonsense", "x", 1)
    with pytest.raises(ValueError):
        await store.set_guild_config(G, daily_quota=5)


async def test_a_training_is_charged_its_weight_against_the_server_budget(store: Store) -> None:
    await store.set_guild_config(G, server_budget=6)
    await store.create_task(new_task(user=U + 1, quota_weight=2), now=NOW, policy=POLICY_10)
    cid = await _character_with_photos(store)
    with pytest.raises(BudgetExceeded):  # 2 spent + 5 > 6, though the owner's limit is 10
        await store.start_training(
            _training(cid, weight=5), now=NOW, policy=POLICY_10, min_images=3
        )
    assert (await store.get_character(cid)).state == "collecting"
    await store.set_guild_config(G, server_budget=7)
    task = await store.start_training(
        _training(cid, weight=5), now=NOW, policy=POLICY_10, min_images=3
    )
    assert task.quota_weight == 5 and await store.server_spend(G, now=NOW) == 7


async def test_recent_completions_name_the_model(store: AnyStore) -> None:
    for model, took in (("m1", 100.0), (None, 50.0), ("m2", 300.0)):
        request = {"prompt": "a cat", **({"model": model} if model else {})}
        task = await store.create_task(
            dataclasses.replace(new_task("foxapi"), request=request), now=NOW, policy=POLICY_10
        )
        await store.update_task(
            task.id, state="succeeded", submitted_at=NOW, finished_at=NOW + took
        )
    failed = await store.create_task(new_task("foxapi"), now=NOW, policy=POLICY_10)
    await store.update_task(failed.id, state="failed", submitted_at=NOW, finished_at=NOW + 9)
    assert await store.recent_completions("foxapi", limit=10) == [
        ("m1", 100.0),
        (None, 50.0),
        ("m2", 300.0),
    ]
    assert await store.recent_completions("foxapi", limit=1) == [("m2", 300.0)]
    assert await store.recent_completions("hiapi", limit=10) == []
