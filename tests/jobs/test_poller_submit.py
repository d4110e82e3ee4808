"""The poller's submit rule (SPEC §4 "Never pay twice") as a table: what each failure of
a submit leads to, by whether the provider may have acted and can deduplicate."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from providers import provider_class
from providers.base import Delivery, ErrorKind, ProviderError
from reelbot.jobs.poller import MAX_SUBMIT_RETRIES, UNCONFIRMED, Poller, PollerSettings
from reelbot.store.models import TaskRow

BASE: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskRow)}


def task(provider: str, **kw: Any) -> TaskRow:
    fields = {
        **BASE,
        "id": 7,
        "kind": "video",
        "provider": provider,
        "request": {},
        "state": "submitting",
        "outputs": [],
        "error_streak": 0,
        "created_at": 0.0,
        "submit_call": '{"path": "/x", "body": "{}"}',
        "submit_key": "reelbot-7-ab",
        **kw,
    }
    return TaskRow(**fields)


def poller(pid: str) -> Poller:
    provider = provider_class(pid)(None)  # type: ignore[arg-type]  # never sends here
    settings = PollerSettings(poll_interval=1, poll_max_interval=5, task_timeout=60)
    return Poller(
        store=None,
        providers={pid: provider},
        settings=settings,  # type: ignore[arg-type]
        inputs=None,
        deliver=None,
        on_status=None,
    )  # type: ignore[arg-type]


def error(delivery: Delivery, kind: ErrorKind = ErrorKind.TRANSIENT) -> ProviderError:
    return ProviderError(kind, "it went wrong", code="http_x", delivery=delivery)


@pytest.mark.parametrize(
    ("pid", "delivery", "kind", "sent_before", "outcome"),
    [
        ("foxapi", Delivery.AMBIGUOUS, ErrorKind.TRANSIENT, False, "unconfirmed"),
        ("foxapi", Delivery.NOT_SENT, ErrorKind.TRANSIENT, False, "retry-afresh"),
        ("foxapi", Delivery.REFUSED, ErrorKind.RATE_LIMITED, False, "retry-afresh"),
        ("foxapi", Delivery.REFUSED, ErrorKind.INVALID, False, "failed"),
        ("hiapi", Delivery.AMBIGUOUS, ErrorKind.TRANSIENT, False, "retry-same"),
        ("hiapi", Delivery.REFUSED, ErrorKind.RATE_LIMITED, False, "retry-same-clear"),
        ("hiapi", Delivery.REFUSED, ErrorKind.RATE_LIMITED, True, "retry-same"),
        # An earlier attempt may have been taken: a later refusal does not undo that.
        ("hiapi", Delivery.REFUSED, ErrorKind.INVALID, True, "unconfirmed"),
        ("hiapi", Delivery.REFUSED, ErrorKind.INVALID, False, "failed"),
    ],
)
def test_submit_failures(pid, delivery, kind, sent_before: bool, outcome: str) -> None:
    row = task(pid, submitted_at=5.0 if sent_before else None)
    fields = poller(pid)._submit_error(row, poller(pid).providers[pid], error(delivery, kind))
    if outcome == "unconfirmed":
        assert fields["state"] == "failed" and fields["error_code"] == UNCONFIRMED
    elif outcome == "failed":
        assert fields["state"] == "failed" and fields["error_code"] == "http_x"
    else:
        assert "state" not in fields and fields["error_streak"] == 1
        assert ("submitted_at" in fields) == (outcome in ("retry-afresh", "retry-same-clear"))
        assert ("submit_call" in fields) == (outcome == "retry-afresh")


def test_retries_end() -> None:
    row = task("hiapi", error_streak=MAX_SUBMIT_RETRIES, submitted_at=5.0)
    fields = poller("hiapi")._submit_error(
        row, poller("hiapi").providers["hiapi"], error(Delivery.AMBIGUOUS)
    )
    assert fields["state"] == "failed" and fields["error_code"] == UNCONFIRMED
