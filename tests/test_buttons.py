"""The action bar's pure parts: custom ids, which buttons a message gets, the ETA words."""

from __future__ import annotations

import dataclasses

import pytest

from cogs.actions import modal_values
from reelbot import buttons
from reelbot.jobs.scheduling import CompletionModel
from reelbot.store.models import TaskRow


def row(**fields) -> TaskRow:
    base = {f.name: None for f in dataclasses.fields(TaskRow)}
    base.update(
        id=12,
        kind="video",
        provider="hiapi",
        state="succeeded",
        request={"prompt": "a fox", "model": "m1"},
        created_at=1000.0,
        submitted_at=1000.0,
        finished_at=1240.0,
    )
    base.update(fields)
    return TaskRow(**base)


def ids(view) -> list[str]:
    return [item.custom_id for item in view.children]


def test_custom_ids_carry_the_action_and_task_and_fit_discord() -> None:
    for action in buttons.ACTIONS:
        cid = buttons.custom_id(action, 2**63 - 1)
        match = buttons.TEMPLATE.fullmatch(cid)
        assert match and match["action"] == action and int(match["task_id"]) == 2**63 - 1
        assert len(cid) <= 100
    assert buttons.TEMPLATE.fullmatch("reelbot:again:") is None
    assert buttons.TEMPLATE.fullmatch("reelbot:explode:1") is None
    assert buttons.REMIX_MODAL.fullmatch(buttons.remix_modal_id(5))
    assert len(buttons.animate_modal_id(2**63, 2**63)) <= 100


def test_which_buttons_each_message_gets() -> None:
    assert ids(buttons.final_view(row(), rerunnable=True, can_vary=True)) == [
        "reelbot:again:12",
        "reelbot:vary:12",
        "reelbot:remix:12",
        "reelbot:delete:12",
    ]
    assert "reelbot:vary:12" not in ids(buttons.final_view(row(), rerunnable=True, can_vary=False))
    for state in ("failed", "cancelled"):
        assert ids(buttons.final_view(row(state=state), rerunnable=True, can_vary=True)) == [
            "reelbot:again:12"
        ]
    assert ids(buttons.final_view(row(kind="training"), rerunnable=False, can_vary=True)) == []
    for state in ("submitting", "queued", "running"):
        assert ids(buttons.status_view(row(state=state))) == ["reelbot:cancel:12"]
    assert ids(buttons.status_view(row(state="succeeded"))) == []
    view = buttons.final_view(row(), rerunnable=True, can_vary=True)
    assert view.timeout is None  # persistent
    [action_row] = view.to_components()
    assert len(action_row["components"]) <= 5
    assert all(len(c["label"]) <= 80 for c in action_row["components"])


def model_of(seconds: list[float], min_samples: int = 30) -> CompletionModel:
    model = CompletionModel(capacity=512, min_samples=min_samples)
    for s in seconds:
        model.observe(s)
    return model


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([240.0] * 30, "usually ready in about 4 min"),
        ([250.0, 230.0, 260.0] * 10, "usually ready in about 4 min"),
        ([20.0] * 30, "usually ready in under a minute"),
        ([13 * 60.0] * 30, "usually ready in about 15 min"),
        ([100 * 60.0] * 30, "usually ready in about 1 h 45 min"),
        ([60.0] * 10 + [240.0] * 10 + [600.0] * 10, "usually ready in 1–10 min"),
    ],
)
def test_eta_words_claim_no_more_precision_than_the_data_has(
    samples: list[float], expected: str
) -> None:
    assert buttons.eta_text(model_of(samples)) == expected


def test_no_eta_without_enough_completions() -> None:
    assert buttons.eta_text(None) is None
    assert buttons.eta_text(model_of([240.0] * 29)) is None


def test_eta_book_is_per_provider_and_model() -> None:
    book = buttons.EtaBook()
    for _ in range(30):
        book.observe(row())
    assert book.text_for(row(state="running")) == "usually ready in about 4 min"
    other = row(state="running", request={"prompt": "x", "model": "m2"})
    assert book.text_for(other) is None  # never borrowed from another model
    provider_model = model_of([600.0] * 30)
    assert book.text_for(other, provider_model=provider_model) is None
    assert (
        book.text_for(other, provider_model=provider_model, single_model=True)
        == "usually ready in about 10 min"
    )
    book.observe(row(state="failed"))  # only successes count
    book.observe(row(kind="training"))


def test_modal_values_read_action_rows_and_labels() -> None:
    components = [
        {"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "a fox"}]},
        {"type": 18, "component": {"type": 4, "custom_id": "provider", "value": "hiapi"}},
        {"type": 1, "components": [{"type": 3, "custom_id": "pick", "values": ["x"]}]},
    ]
    assert modal_values(components) == {"prompt": "a fox", "provider": "hiapi"}


def test_eta_book_starts_from_the_stores_completions() -> None:
    book = buttons.EtaBook()
    book.seed("hiapi", [("m1", 240.0)] * 30 + [(None, 30.0)] * 30)
    assert book.text_for(row(state="running")) == "usually ready in about 4 min"
    no_model = row(state="running", request={"prompt": "x"})
    assert book.text_for(no_model) == "usually ready in under a minute"
