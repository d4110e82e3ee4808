"""The worker's decisions, below end to end: what a submit, a poll answer or an error
leads to, as pure functions of the task and the clock (reelbot/jobs/outcomes.py)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from providers.base import Delivery, ErrorKind, Output, ProviderError, TaskStatus
from reelbot.jobs import outcomes
from reelbot.jobs.lease import applied
from reelbot.jobs.outcomes import UNCONFIRMED, Schedule
from reelbot.store.models import TaskChange, TaskRow
from reelbot.store.schema import UPDATABLE

NOW = 1_000.0
SCHEDULE = Schedule(floor=1.0, ceiling=5.0)
BASE: dict[str, Any] = {f.name: None for f in dataclasses.fields(TaskRow)}


def task(**kw: Any) -> TaskRow:
    fields = {
        **BASE,
        "id": 7,
        "kind": "video",
        "provider": "foxapi",
        "request": {},
        "state": "submitting",
        "outputs": [],
        "error_streak": 0,
        "not_found_streak": 0,
        "attempts": 0,
        "created_at": NOW - 10,
        "updated_at": NOW - 5,
        **kw,
    }
    return TaskRow(**fields)


def before(row: TaskRow, *, configured=True, idempotent=False, timeout=60.0):
    return outcomes.before_submit(
        row, configured=configured, idempotent=idempotent, now=NOW, task_timeout=timeout
    )


def test_a_fresh_task_is_sent() -> None:
    assert before(task()) is None


def test_an_unconfigured_provider_fails_the_task() -> None:
    assert before(task(), configured=False)["error_code"] == "provider_unavailable"


def test_a_task_with_a_provider_id_moves_on_without_sending() -> None:
    assert before(task(provider_task_id="p-1")) == {"state": "queued", "next_action_at": NOW}


@pytest.mark.parametrize(("idempotent", "sent"), [(False, True), (True, False)])
def test_an_earlier_attempt_is_resent_only_where_the_provider_deduplicates(
    idempotent: bool, sent: bool
) -> None:
    out = before(task(submitted_at=NOW - 1), idempotent=idempotent)
    if sent:
        assert out is not None and out["error_code"] == UNCONFIRMED
    else:
        assert out is None


@pytest.mark.parametrize(("submitted_at", "code"), [(None, "task_timeout"), (NOW - 1, UNCONFIRMED)])
def test_a_submit_past_the_task_timeout(submitted_at: float | None, code: str) -> None:
    row = task(created_at=NOW - 61, submitted_at=submitted_at)
    assert before(row, idempotent=True)["error_code"] == code


def test_an_accepted_submit_is_queued_and_polled_after_the_interval() -> None:
    out = outcomes.submitted("p-1", sent_at=NOW - 2, now=NOW, interval=3.0)
    assert out["state"] == "queued" and out["provider_task_id"] == "p-1"
    assert out["submitted_at"] == NOW - 2 and out["next_action_at"] == NOW + 3.0


def test_a_retried_submit_backs_off_within_the_schedule() -> None:
    exc = ProviderError(ErrorKind.TRANSIENT, "busy", code="http_503", delivery=Delivery.NOT_SENT)
    out = outcomes.submit_error(task(), exc, idempotent=False, now=NOW, schedule=SCHEDULE)
    assert out["error_streak"] == 1 and NOW + 1.0 <= out["next_action_at"] <= NOW + 5.0


def test_a_refused_submit_names_the_kind_of_error() -> None:
    exc = ProviderError(ErrorKind.AUTH, "nope", code="1004", delivery=Delivery.REFUSED)
    out = outcomes.submit_error(task(), exc, idempotent=False, now=NOW, schedule=SCHEDULE)
    assert out["state"] == "failed" and out["error_code"] == "1004"
    assert out["error_message"] != "nope" and out["error_message"].endswith("nope")


def test_a_poll_past_the_task_timeout_fails() -> None:
    row = task(state="running", submitted_at=NOW - 61)
    assert outcomes.poll_timed_out(row, now=NOW, task_timeout=60)["error_code"] == "task_timeout"
    assert outcomes.poll_timed_out(row, now=NOW, task_timeout=120) is None


def test_not_found_is_believed_only_after_confirmations() -> None:
    exc = ProviderError(ErrorKind.NOT_FOUND, "no such task", code="not_found")
    row = task(state="running")
    for _ in range(outcomes.NOT_FOUND_CONFIRMATIONS - 1):
        out = outcomes.poll_error(row, exc, now=NOW, schedule=SCHEDULE)
        assert "state" not in out
        row = applied(row, out)
    out = outcomes.poll_error(row, exc, now=NOW, schedule=SCHEDULE)
    assert out["state"] == "failed" and out["error_code"] == "not_found"


def test_other_poll_errors_neither_count_nor_reset_not_found() -> None:
    exc = ProviderError(ErrorKind.TRANSIENT, "busy", code="http_502")
    out = outcomes.poll_error(task(not_found_streak=2), exc, now=NOW, schedule=SCHEDULE)
    assert out["not_found_streak"] == 2 and "state" not in out


def test_a_running_answer_schedules_the_next_poll() -> None:
    status = TaskStatus(state="running", progress=40, raw_state="processing")
    out = outcomes.from_status(task(state="queued"), status, now=NOW, interval=2.5)
    assert out["state"] == "running" and out["progress"] == 40
    assert out["next_action_at"] == NOW + 2.5 and out["error_streak"] == 0


def test_a_success_without_output_fails_a_video_but_not_a_training() -> None:
    status = TaskStatus(state="succeeded", progress=100, raw_state="done")
    assert outcomes.from_status(task(), status, now=NOW, interval=1)["error_code"] == "no_output"
    training = outcomes.from_status(
        task(kind="training"), status, now=NOW, interval=1, outputs_expected=False
    )
    assert training["state"] == "succeeded"


def test_a_success_records_the_outputs() -> None:
    status = TaskStatus(
        state="succeeded",
        progress=100,
        raw_state="x" * 500,
        outputs=(Output(kind="video", url="https://cdn.example/v.mp4"),),
    )
    out = outcomes.from_status(task(state="running"), status, now=NOW, interval=1)
    assert out["state"] == "succeeded" and out["next_action_at"] == NOW
    assert out["outputs"][0]["url"] == "https://cdn.example/v.mp4"
    assert len(out["raw_state"]) == outcomes.MAX_PROVIDER_WORD


def test_provider_words_are_clipped() -> None:
    out = outcomes.failed(NOW, "c" * 500, "m" * 5000)
    assert len(out["error_code"]) == outcomes.MAX_PROVIDER_WORD
    assert len(out["error_message"]) == outcomes.MAX_ERROR_MESSAGE


def test_a_refusal_of_a_named_provider_fails_naming_providers_that_are_up() -> None:
    """Failover (SPEC §4): a request that named its provider is never moved; its failure
    says which providers are up. A retry says nothing yet."""
    credits = ProviderError(
        ErrorKind.CREDITS, "balance too low", http_status=402, delivery=Delivery.REFUSED
    )
    up = "providers that are up: foxapi, gptge"
    out = outcomes.submit_error(
        task(provider="hiapi"), credits, idempotent=True, now=NOW, schedule=SCHEDULE, also=up
    )
    assert out["state"] == "failed" and out["error_message"].endswith(up)
    limited = ProviderError(
        ErrorKind.RATE_LIMITED, "slow", http_status=429, delivery=Delivery.REFUSED
    )
    retry = outcomes.submit_error(
        task(provider="hiapi"), limited, idempotent=True, now=NOW, schedule=SCHEDULE, also=up
    )
    assert "state" not in retry and retry["error_streak"] == 1


# --- the outcome's type ------------------------------------------------------------------
def test_task_change_lists_exactly_the_columns_the_store_updates() -> None:
    # mypy checks every outcome against TaskChange; the store refuses what UPDATABLE
    # lacks. The two lists must be one: a column typed but not updatable would pass
    # mypy and fail at run time, one updatable but untyped could not be written.
    assert TaskChange.__optional_keys__ == UPDATABLE
    assert TaskChange.__required_keys__ == frozenset()


def test_every_task_change_column_has_its_task_row_type() -> None:
    # applied() turns an outcome into the TaskRow the poller goes on with: a column
    # typed differently in the two would make that row lie about its own fields.
    row_types = typing.get_type_hints(TaskRow)
    change_types = typing.get_type_hints(TaskChange)
    assert {k: row_types[k] for k in change_types} == change_types
