"""The health model per provider (reelbot/failover/health.py): thresholds, cool-off
growth, the single probe; and its store table on both backends, shared by processes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from providers.base import Delivery
from providers.base import ErrorKind as K
from providers.base import ProviderError as E
from reelbot.failover.health import (
    COOLOFF_BASE,
    COOLOFF_MAX,
    DOWN_AFTER,
    Health,
    Outcome,
    apply,
    classify,
    describe,
    verdict,
)
from reelbot.store.models import BudgetExceeded, QuotaExceeded, QuotaPolicy
from tests.test_store import NOW, Backend, new_task, open_backend

T0 = 1_790_000_000.0
R, A = Delivery.REFUSED, Delivery.AMBIGUOUS


def run(h: Health, *outcomes: Outcome, now: float = T0, **kw) -> tuple[Health, list]:
    seen = []
    for o in outcomes:
        h, t = apply(h, o, now=now, **kw)
        if t:
            seen.append(t)
    return h, seen


def test_down_after_three_refusals_or_connection_failures_in_a_row() -> None:
    h, seen = run(Health("hiapi"), Outcome.REFUSED, Outcome.CONNECTION)
    assert h.state == "degraded" and h.streak == 2 and not seen
    h, seen = run(h, Outcome.REFUSED)
    assert h.state == "down" and h.reason == "failures" and seen == ["down"]
    assert h.down_since == T0 and h.retry_at == T0 + COOLOFF_BASE


def test_a_good_submit_breaks_the_streak_and_an_ambiguous_one_does_not_count() -> None:
    h, _ = run(Health("x"), Outcome.REFUSED, Outcome.REFUSED, Outcome.OK, Outcome.REFUSED)
    assert h.streak == 1 and not h.down
    h, _ = run(Health("x"), Outcome.REFUSED, Outcome.ERROR, Outcome.ERROR, Outcome.REFUSED)
    assert h.streak == 2 and not h.down


def test_402_marks_down_at_once_with_its_own_reason() -> None:
    h, seen = run(Health("hiapi"), Outcome.CREDITS, error="out of credits")
    assert h.down and h.out_of_credits and seen == ["down"]
    assert "out of credits" in describe(h) and "<t:" in describe(h)


def test_cooloff_grows_per_failed_probe_and_a_good_probe_ends_it() -> None:
    h, _ = run(Health("hiapi"), Outcome.CREDITS)
    assert verdict(h, now=T0 + 1) == "skip"
    assert verdict(h, now=T0 + COOLOFF_BASE) == "probe"
    now = T0 + COOLOFF_BASE
    h, seen = run(h, Outcome.CREDITS, now=now, probe=True)
    assert h.cooloff == 2 * COOLOFF_BASE and h.retry_at == now + 2 * COOLOFF_BASE and not seen
    for _ in range(20):
        h, _ = run(h, Outcome.CONNECTION, now=now, probe=True)
    assert h.cooloff == COOLOFF_MAX and h.down_since == T0
    h, seen = run(h, Outcome.OK, now=now, probe=True)
    assert h.state in ("up", "degraded") and seen == ["up"] and h.cooloff == 0.0
    assert h.down_since is None and h.retry_at is None


def test_a_probe_in_flight_keeps_others_away_until_its_lease_ends() -> None:
    h, _ = run(Health("x"), *[Outcome.REFUSED] * DOWN_AFTER)
    h = replace(h, probe_until=T0 + 100)
    assert verdict(h, now=T0 + COOLOFF_BASE) == "skip"
    assert verdict(h, now=T0 + 100) == "probe"


def test_polls_move_the_success_rate_but_never_the_state() -> None:
    h, _ = run(Health("x"), Outcome.CREDITS)
    h, seen = run(h, *[Outcome.OK] * 10, submit=False)
    assert h.down and not seen  # an account out of credits still answers polls
    up, _ = run(Health("y"), *[Outcome.ERROR] * 4, submit=False)
    assert up.state == "degraded" and up.success_rate == 0.0


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (E(K.CREDITS, "no", http_status=402, delivery=R), "credits"),
        (E(K.RATE_LIMITED, "slow", http_status=429, delivery=R), "refused"),
        (E(K.AUTH, "key", http_status=401, delivery=R), "refused"),
        (E(K.TRANSIENT, "x", code="connection_error"), "connection"),
        (E(K.TRANSIENT, "502", http_status=502, delivery=A), "error"),
        (E(K.INVALID, "bad duration", http_status=400, delivery=R), "ok"),
        (E(K.MODERATION, "blocked", delivery=R), "ok"),
        (E(K.TRANSIENT, "bug", code="internal_error"), None),
        (E(K.TRANSIENT, "late", code="timeout"), None),
    ],
)  # fmt: skip
def test_classify_says_what_an_error_tells_about_the_provider(error, outcome) -> None:
    got = classify(error)
    assert (got.value if got else None) == outcome


# --- the store table ------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest):
    async with open_backend(request.param, request) as made:
        yield made


async def test_processes_agree_on_a_provider_and_see_each_transition_once(
    backend: Backend,
) -> None:
    one, two = await backend.open(), await backend.open()
    assert await one.provider_health() == {}
    results = await asyncio.gather(
        *[
            s.record_provider_outcome("hiapi", Outcome.REFUSED, now=T0, error="429")
            for s in (one, two, one, two, one, two)
        ]
    )
    assert [t for _, t in results].count("down") == 1
    seen_by_two = (await two.provider_health())["hiapi"]
    assert seen_by_two.down and seen_by_two.streak == 6 and seen_by_two.last_error == "429"
    assert (await one.provider_health())["hiapi"] == seen_by_two
    # One probe after the cool-off, whichever process asks first.
    assert not await one.claim_probe("hiapi", now=T0 + 1)
    claims = await asyncio.gather(
        *[s.claim_probe("hiapi", now=T0 + COOLOFF_BASE) for s in (one, two, one, two)]
    )
    assert claims.count(True) == 1
    back, transition = await two.record_provider_outcome(
        "hiapi", Outcome.OK, now=T0 + COOLOFF_BASE + 1, probe=True
    )
    assert transition == "up" and not back.down
    assert not (await one.provider_health())["hiapi"].down
    assert not await one.claim_probe("hiapi", now=T0 + 1000)  # not down: no probe


async def test_move_task_reprices_atomically_within_the_limits(backend: Backend) -> None:
    store = await backend.open()
    await store.set_entry(111, "price", "foxapi", 3)
    policy = QuotaPolicy(default_limit=4)
    task = await store.create_task(new_task(), now=NOW, policy=policy)
    assert (await store.quota_status(111, 222, now=NOW, default_limit=4)).used == 1
    moved = await store.move_task(
        task.id,
        provider="foxapi",
        request={"prompt": "a cat", "model": "m"},
        price=3,
        policy=policy,
        now=NOW + 1,
    )
    assert moved is not None and moved.provider == "foxapi" and moved.quota_weight == 3
    assert moved.request["model"] == "m"
    assert (await store.quota_status(111, 222, now=NOW, default_limit=4)).used == 3
    # Past the member's limit: refused, nothing changes.
    with pytest.raises(QuotaExceeded):
        await store.move_task(
            task.id, provider="hiapi", request={"prompt": "a cat"}, price=9, policy=policy, now=NOW
        )
    assert (await store.get_task(task.id)).provider == "foxapi"
    assert (await store.quota_status(111, 222, now=NOW, default_limit=4)).used == 3
    # Past the server budget: refused for moderators too.
    await store.set_guild_config(111, server_budget=3)
    exempt = QuotaPolicy(default_limit=4, enforce=False)
    with pytest.raises(BudgetExceeded):
        await store.move_task(
            task.id, provider="hiapi", request={"prompt": "a cat"}, price=4, policy=exempt, now=NOW
        )
    # Cheaper: credits come back; and the refund later gives back the new price.
    cheaper = await store.move_task(
        task.id, provider="hiapi", request={"prompt": "a cat"}, price=1, policy=policy, now=NOW
    )
    assert cheaper is not None and cheaper.quota_weight == 1
    assert (await store.quota_status(111, 222, now=NOW, default_limit=4)).used == 1
    assert await store.refund(task.id)
    assert (await store.quota_status(111, 222, now=NOW, default_limit=4)).used == 0
    # A task that moved on (sent, or finished) is not moved.
    await store.update_task(task.id, provider_task_id="abc", state="queued")
    assert (
        await store.move_task(
            task.id, provider="foxapi", request={"prompt": "x"}, price=1, policy=policy, now=NOW
        )
        is None
    )
