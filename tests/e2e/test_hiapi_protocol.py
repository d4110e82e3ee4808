"""hiapi end to end: what its Idempotency-Key answers and its base URL forms do to a task.

The real bot against the hiapi double (whose behaviour is checked against HiAPI's own
SDK in tests/providers/test_hiapi_sdk.py).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from doubles.harness import World, build_world
from doubles.providers import HiapiDouble
from tests.helpers import (
    all_tasks,
    assert_exactly_once,
    eventually,
    final_message,
    started,
)

pytestmark = pytest.mark.timeout(60)

FAST = {"POLL_INTERVAL_SECONDS": "0.05", "POLL_MAX_INTERVAL_SECONDS": "0.05"}
PROCESSING = 409


async def hiapi_world(tmp_path: Path, base_suffix: str = "") -> tuple[World, HiapiDouble]:
    world = await build_world(tmp_path, provider_ids=("hiapi",), env=FAST, start=False)
    double = world.providers["hiapi"]
    assert isinstance(double, HiapiDouble)
    world.env["HIAPI_BASE_URL"] = double.base_url + base_suffix
    await world.start_bot()
    return world, double


def creates(double: HiapiDouble) -> list[int]:
    """HTTP statuses of every create request the double answered."""
    return [status for method, path, status in double.requests if method == "POST"]


@pytest.mark.parametrize("suffix", ["/v1", "/v1/"])
async def test_base_url_ending_in_v1_delivers(tmp_path: Path, suffix: str) -> None:
    """HIAPI_BASE_URL in the SDK's own form (https://api.hiapi.ai/v1) used to make
    /v1/v1/tasks, a 404, and fail every task as "not found"."""
    world, double = await hiapi_world(tmp_path, suffix)
    try:
        ix = await world.animate("alice", prompt="a fox, via /v1", provider="hiapi")
        thread_id, task_id = await started(world, ix)
        final = await final_message(world, thread_id, task_id)
        assert any(a.filename.endswith(".mp4") for a in final.attachments), final.content
        assert creates(double) == [200]
        api = {path for _, path, _ in double.requests if not path.startswith("/media/")}
        assert api == {"/v1/tasks", f"/v1/tasks/{next(iter(double.tasks))}"}
    finally:
        await world.close()


async def test_key_mismatch_fails_as_unconfirmed_without_retrying(tmp_path: Path) -> None:
    """422 IDEMPOTENCY_KEY_MISMATCH: HiAPI holds another request under this task's key,
    which it may be making and billing. The task fails at once as "could not confirm"
    (not "rejected"), the quota is given back, and the bot does not resend."""
    world, double = await hiapi_world(tmp_path)
    try:
        double.fail_next_submit(
            422,
            body=double.error_body(
                422, "idempotency key reused with a different request body",
                "IDEMPOTENCY_KEY_MISMATCH",
            ),
        )  # fmt: skip
        ix = await world.animate("alice", prompt="a mismatched fox", provider="hiapi")
        thread_id, task_id = await started(world, ix)
        final = await final_message(world, thread_id, task_id)
        assert "could not be made" in final.content and "`submit_unconfirmed`" in final.content
        assert "could not confirm" in final.content and "may already be" in final.content
        assert "quota for it was given back" in final.content
        assert "rejected" not in final.content
        assert creates(double) == [422]  # asked once: resending would mismatch again
        (task,) = await all_tasks(world)
        assert (task.state, task.error_code) == ("failed", "submit_unconfirmed")
    finally:
        await world.close()


async def test_key_still_processing_is_retried_into_the_replay(tmp_path: Path) -> None:
    """The first submit times out while HiAPI is still creating the task; the resend
    with the same key gets 409 IDEMPOTENCY_KEY_PROCESSING, waits its Retry-After and
    tries again until the replay answers: one provider task, delivered once."""
    world, double = await hiapi_world(tmp_path)
    try:
        assert world.bot is not None
        world.bot.providers["hiapi"].http.timeout = aiohttp.ClientTimeout(total=0.3)
        double.hold_creates()
        double.processing_retry_after = 0.1
        ix = await world.animate("alice", prompt="a patient fox", provider="hiapi")
        thread_id, task_id = await started(world, ix)
        await eventually(
            lambda: creates(double).count(PROCESSING) >= 2, description="two 409 answers"
        )
        assert double.tasks == {}
        double.release_creates()
        final = await final_message(world, thread_id, task_id)
        assert any(a.filename.endswith(".mp4") for a in final.attachments), final.content
        assert len(double.tasks) == 1
        # The timed-out first request made the task once released; the resend replayed it.
        assert creates(double).count(200) == 2 and creates(double)[-1] == 200
        await assert_exactly_once(world)
    finally:
        await world.close()
