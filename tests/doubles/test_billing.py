"""The double-billing ledger (doubles/billing.py) on its own."""

from __future__ import annotations

import dataclasses
from typing import Any

from doubles.billing import Tally, ledgers
from reelbot.store.models import TaskRow

BASE: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskRow)}


def task(provider: str, provider_task_id: str | None, *, sent: bool = True, **kw: Any) -> TaskRow:
    fields = {
        **BASE,
        "id": 1,
        "kind": "video",
        "provider": provider,
        "request": {},
        "state": "succeeded",
        "outputs": [],
        "provider_task_id": provider_task_id,
        "submitted_at": 1.0 if sent else None,
        **kw,
    }
    return TaskRow(**fields)


def test_every_created_task_tracked_is_fine() -> None:
    [ledger] = ledgers({"foxapi": ["a", "b"]}, [task("foxapi", "a"), task("foxapi", "b")])
    assert ledger.orphans == () and ledger.double_billed == 0


def test_a_second_task_for_one_request_is_double_billed() -> None:
    [ledger] = ledgers({"foxapi": ["a", "b"]}, [task("foxapi", "b")])
    assert ledger.orphans == ("a",) and ledger.double_billed == 1


def test_an_ambiguous_failure_owns_at_most_one_orphan() -> None:
    failed = task("foxapi", None, state="failed", error_code="submit_unconfirmed")
    [ledger] = ledgers({"foxapi": ["a", "b", "c"]}, [failed])
    assert ledger.explained == 1 and ledger.double_billed == 2


def test_a_task_never_sent_explains_nothing_and_declared_orphans_are_allowed() -> None:
    never = task("gptge", None, sent=False, state="failed", error_code="task_timeout")
    [ledger] = ledgers({"gptge": ["a"]}, [never], {"gptge": 1})
    assert ledger.explained == 0 and ledger.allowed == 1 and ledger.double_billed == 0


def test_tallies_merge_across_workers() -> None:
    one, two = Tally(), Tally()
    one.add(ledgers({"foxapi": ["a", "b"]}, [task("foxapi", "b")]), "t1")
    two.merge(one.as_dict())
    assert (two.created, two.orphans, two.double_billed) == (2, 1, 1)
    assert two.offenders == ["t1: foxapi x1"]
