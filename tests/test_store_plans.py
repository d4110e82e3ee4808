"""The claim queries' plans (SQLite): each lane reads its own index.

With only tasks_due (next_action_at), a claim for one lane walked every due row of
every other lane first: at N = 25,000 with two polled providers behind, each claim of
an idle lane cost ~5 ms of the SQLite thread, and every tick makes six. Not timed:
the plan is what decides the cost.
"""

from __future__ import annotations

from pathlib import Path

from reelbot.store import SqliteStore


async def _claim_plans(tmp_path: Path) -> dict[str, str]:
    store = SqliteStore(str(tmp_path / "plans.db"))
    await store.open()
    traced: list[str] = []
    try:
        conn = store.db._conn  # the sqlite3 connection aiosqlite drives
        await store.db._execute(conn.set_trace_callback, traced.append)
        plans: dict[str, str] = {}
        for lane, kw in (("provider", {"provider": "hiapi"}), ("delivery", {"delivery": True})):
            traced.clear()
            await store.claim_due(now=1.0, limit=8, owner="w", lease_seconds=60, **kw)
            await store.db._execute(conn.set_trace_callback, None)
            sql = next(s for s in traced if "lease_owner" in s)
            # Literal values in the traced text; the plan is the same as with bound ones.
            async with store.db.execute("EXPLAIN QUERY PLAN " + sql) as cur:
                plans[lane] = " / ".join(str(r[3]) for r in await cur.fetchall())
            await store.db._execute(conn.set_trace_callback, traced.append)
        return plans
    finally:
        await store.close()


async def test_provider_lane_claim_uses_its_own_index(tmp_path: Path) -> None:
    plans = await _claim_plans(tmp_path)
    assert "tasks_lane_due (provider=? AND next_action_at" in plans["provider"], plans


async def test_delivery_lane_claim_uses_its_own_index(tmp_path: Path) -> None:
    plans = await _claim_plans(tmp_path)
    assert "tasks_delivery_due" in plans["delivery"], plans
