"""The SQLite store: migrations, quota atomicity, the due-task queue, exactly-once markers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from reelbot.store import NewTask, QuotaExceeded, QuotaPolicy, SqliteStore
from reelbot.store.models import CooldownActive, TooManyInFlight, utc_day
from reelbot.store.sqlite import load_migrations

NOW = 1_790_000_000.0  # a fixed instant keeps quota days deterministic
G, U = 111, 222


def new_task(provider: str = "hiapi", user: int = U, **kw) -> NewTask:
    return NewTask(
        provider=provider, guild_id=G, channel_id=5, requester_id=user,
        request={"prompt": "a cat"}, poll_interval=5.0, **kw,
    )


POLICY = QuotaPolicy(default_limit=3)


@pytest.fixture
async def store(tmp_path: Path):
    s = SqliteStore(str(tmp_path / "sub" / "store.db"))
    await s.open()
    yield s
    await s.close()


async def test_migrations_from_empty_file_set_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    s = SqliteStore(str(path))
    await s.open()
    assert await s.schema_version() == len(load_migrations())
    await s.close()
    # Re-opening applies nothing twice and keeps the data.
    s = SqliteStore(str(path))
    await s.open()
    assert await s.schema_version() == len(load_migrations())
    await s.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tasks", "quota_usage", "user_quotas", "guild_settings", "audit_log"} <= tables


async def test_quota_is_taken_at_creation_and_refused_past_the_limit(store: SqliteStore) -> None:
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


async def test_concurrent_creations_at_the_limit_cannot_both_pass(store: SqliteStore) -> None:
    policy = QuotaPolicy(default_limit=1)
    results = await asyncio.gather(
        *(store.create_task(new_task(), now=NOW, policy=policy) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 4


async def test_user_limit_overrides_guild_default_which_overrides_config(
    store: SqliteStore,
) -> None:
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert (status.limit, status.source) == (10, "default")
    await store.set_guild_default(G, 4)
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert (status.limit, status.source) == (4, "guild")
    await store.set_user_limit(G, U, 0)
    status = await store.quota_status(G, U, now=NOW, default_limit=10)
    assert (status.limit, status.source, status.remaining) == (0, "user", None)


async def test_refund_gives_quota_back_once(store: SqliteStore) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 1
    assert await store.refund(task.id) is True
    assert await store.refund(task.id) is False
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 0


async def test_reset_usage_reports_previous_value(store: SqliteStore) -> None:
    await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.create_task(new_task(), now=NOW, policy=POLICY)
    assert await store.reset_usage(G, U, now=NOW) == 2
    assert (await store.quota_status(G, U, now=NOW, default_limit=3)).used == 0


async def test_cooldown_and_in_flight_caps(store: SqliteStore) -> None:
    policy = QuotaPolicy(default_limit=0, cooldown=10, max_in_flight=2)
    await store.create_task(new_task(), now=NOW, policy=policy)
    with pytest.raises(CooldownActive):
        await store.create_task(new_task(), now=NOW + 5, policy=policy)
    await store.create_task(new_task(), now=NOW + 11, policy=policy)
    with pytest.raises(TooManyInFlight):
        await store.create_task(new_task(), now=NOW + 30, policy=policy)


async def test_claim_due_takes_only_due_tasks_of_the_lane_and_leases_them(
    store: SqliteStore,
) -> None:
    a = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    b = await store.create_task(new_task("foxapi"), now=NOW, policy=POLICY)
    c = await store.create_task(new_task("hiapi"), now=NOW, policy=POLICY)
    await store.update_task(a.id, next_action_at=NOW - 1)
    await store.update_task(b.id, next_action_at=NOW - 1)
    await store.update_task(c.id, next_action_at=NOW + 100)
    claimed = await store.claim_due(now=NOW, limit=10, owner="w1", lease_seconds=60,
                                    provider="hiapi")
    assert [t.id for t in claimed] == [a.id]
    # Leased: a second claimer gets nothing until the lease ends.
    assert await store.claim_due(now=NOW, limit=10, owner="w2", lease_seconds=60,
                                 provider="hiapi") == []
    again = await store.claim_due(now=NOW + 61, limit=10, owner="w2", lease_seconds=60,
                                  provider="hiapi")
    assert [t.id for t in again] == [a.id]
    assert await store.next_due_at() == pytest.approx(NOW - 1)  # b, foxapi lane


async def test_release_with_expected_state_loses_to_a_cancel(store: SqliteStore) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.update_task(task.id, state="running", next_action_at=NOW)
    [claimed] = await store.claim_due(now=NOW, limit=1, owner="w", lease_seconds=60,
                                      provider="hiapi")
    assert await store.cancel_task(task.id, now=NOW) is True
    assert await store.release(task.id, "w", expected_state="running",
                               state="running", progress=50) is False
    row = await store.get_task(task.id)
    assert row is not None and row.state == "cancelled" and row.progress is None
    assert await store.cancel_task(task.id, now=NOW) is False
    assert claimed.id == task.id


async def test_delivery_marker_is_set_once(store: SqliteStore) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    await store.update_task(task.id, state="succeeded", next_action_at=NOW)
    assert await store.mark_delivered(task.id, 999, now=NOW) is True
    assert await store.mark_delivered(task.id, 1000, now=NOW) is False
    row = await store.get_task(task.id)
    assert row is not None
    assert (row.delivered, row.result_message_id, row.next_action_at) == (True, 999, None)
    assert (await store.task_by_message(999)).id == task.id


async def test_reaction_claims_are_deduplicated_within_the_window(store: SqliteStore) -> None:
    assert await store.claim_reaction(1, 2, "🔁", now=NOW, window=30) is True
    assert await store.claim_reaction(1, 2, "🔁", now=NOW + 1, window=30) is False
    assert await store.claim_reaction(1, 3, "🔁", now=NOW + 1, window=30) is True
    assert await store.claim_reaction(1, 2, "🔁", now=NOW + 60, window=30) is True


async def test_unknown_columns_are_refused(store: SqliteStore) -> None:
    task = await store.create_task(new_task(), now=NOW, policy=POLICY)
    with pytest.raises(ValueError, match="not updatable"):
        await store.update_task(task.id, requester_id=1)


async def test_a_crash_inside_a_write_leaves_the_store_consistent(tmp_path: Path) -> None:
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
