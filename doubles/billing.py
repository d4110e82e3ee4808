"""The suite's safety net against paying twice (SPEC §4 "Never pay twice").

Every provider double remembers each task it created, that is each generation it
would bill. When a World is torn down, those are compared with the store: every
created task must be the provider task of some Reelbot task. One that is not is an
*orphan*: money spent on a video nobody will receive. An orphan is honest only when
the bot could not know about it: a task whose submit may have left but that has no
provider task id (it failed as ``submit_unconfirmed``, or was cancelled while its
submit was in the air) accounts for at most one orphan, since a Reelbot task may
cost one generation. Anything beyond that is a double-billed submit, and fails the
test.

Tests that make orphans on purpose in other ways declare them with
``World.allow_orphans``. The counts of all Worlds of a session are summed in
``TALLY`` (and, under xdist, sent to the controller: tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reelbot.store.models import TaskRow


@dataclass(frozen=True, slots=True)
class Ledger:
    provider: str
    created: int  # tasks the double created (and would bill)
    orphans: tuple[str, ...]  # created tasks the store does not know
    explained: int  # tasks sent but without a provider task id: each may own one orphan
    allowed: int  # orphans the test declared

    @property
    def double_billed(self) -> int:
        return max(0, len(self.orphans) - self.explained - self.allowed)


def ledgers(
    created: Mapping[str, Iterable[str]],
    tasks: Iterable[TaskRow],
    allowed: Mapping[str, int] | None = None,
) -> list[Ledger]:
    """One ledger per provider: what its double created, against the store's tasks."""
    tasks = list(tasks)
    allowed = allowed or {}
    out = []
    for pid, ids in created.items():
        mine = [t for t in tasks if t.provider == pid]
        known = {t.provider_task_id for t in mine if t.provider_task_id}
        explained = sum(1 for t in mine if t.submitted_at is not None and not t.provider_task_id)
        ids = list(ids)
        orphans = tuple(i for i in ids if i not in known)
        out.append(Ledger(pid, len(ids), orphans, explained, allowed.get(pid, 0)))
    return out


@dataclass(slots=True)
class Tally:
    worlds: int = 0
    created: int = 0
    orphans: int = 0
    double_billed: int = 0
    unchecked: int = 0  # worlds whose store could not be read at teardown
    offenders: list[str] = field(default_factory=list)

    def add(self, found: Iterable[Ledger], where: str) -> None:
        self.worlds += 1
        for ledger in found:
            self.created += ledger.created
            self.orphans += len(ledger.orphans)
            self.double_billed += ledger.double_billed
            if ledger.double_billed:
                self.offenders.append(f"{where}: {ledger.provider} x{ledger.double_billed}")

    def as_dict(self) -> dict[str, object]:
        return {
            "worlds": self.worlds,
            "created": self.created,
            "orphans": self.orphans,
            "double_billed": self.double_billed,
            "unchecked": self.unchecked,
            "offenders": list(self.offenders),
        }

    def merge(self, data: Mapping[str, object]) -> None:
        self.worlds += int(data.get("worlds", 0))  # type: ignore[call-overload]
        self.created += int(data.get("created", 0))  # type: ignore[call-overload]
        self.orphans += int(data.get("orphans", 0))  # type: ignore[call-overload]
        self.double_billed += int(data.get("double_billed", 0))  # type: ignore[call-overload]
        self.unchecked += int(data.get("unchecked", 0))  # type: ignore[call-overload]
        offenders = data.get("offenders", [])
        if isinstance(offenders, list):
            self.offenders.extend(str(o) for o in offenders)


TALLY = Tally()


class DoubleBilled(AssertionError):
    pass
