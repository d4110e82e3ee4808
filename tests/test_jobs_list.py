"""/jobs lines (cogs/jobs.py): each kind says what its task is about (JobKind.about)."""

from __future__ import annotations

from cogs.jobs import job_line
from reelbot.characters.kind import TrainingKind
from reelbot.generations.kind import VideoKind
from reelbot.jobs.kinds import JobKind
from tests.jobs.rows import finished_task


def test_each_kind_describes_its_own_request() -> None:
    video = finished_task(request={"prompt": "a fox  in\nthe snow", "model": "m1"})
    training = finished_task(kind="training", request={"name": "Tia", "character_id": 3})
    assert VideoKind(None).about(video) == "a fox  in\nthe snow"  # type: ignore[arg-type]
    assert TrainingKind(None).about(training) == "Tia"  # type: ignore[arg-type]
    assert JobKind.about(VideoKind(None), training) == ""  # type: ignore[arg-type]


def test_a_job_line_shows_the_model_of_a_video_and_what_it_is_about() -> None:
    video = finished_task(request={"prompt": "a fox", "model": "m1"}, created_at=0.0)
    line = job_line(video, now=90.0, show_requester=True, about="a fox  in\nthe snow")
    assert line.startswith("**#9** ✅ Done · foxapi · m1 · <@4> · 1m 30s ago")
    assert line.endswith("\n  a fox in the snow")
    training = finished_task(kind="training", request={"name": "Tia", "character_id": 3})
    line = job_line(training, now=5.0, show_requester=False, about="Tia")
    assert "· foxapi ·" in line and "<@4>" not in line and line.endswith("\n  Tia")
