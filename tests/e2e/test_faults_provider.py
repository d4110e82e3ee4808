"""Provider faults, end to end: every fault a provider API can throw at the bot, on every
protocol. Each test names the fault and asserts the outcome: the video is delivered
once (the fault was transient), or the task failed with a message that says why (and
gave the quota back) — and the bot stays up for everyone else.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from doubles.harness import World, build_world, input_png
from doubles.providers import Step
from providers import PROVIDER_IDS
from tests.helpers import (
    FlakyLink,
    Gate,
    MediaHost,
    all_tasks,
    assert_exactly_once,
    eventually,
    final_message,
    finish,
    gate_polls,
    gate_submits,
    hold,
    poll_times,
    polled,
    started,
    task_state,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)

DELIVERED, FAILED = "delivered", "failed"
# A 5xx after a submit may follow a task created (SPEC §4): hiapi's Idempotency-Key
# makes a resend safe, the others fail saying the provider may still have made it.
AMBIGUOUS = "ambiguous"
MAY_HAVE_RUN = "may still have made"
FAST = {"POLL_INTERVAL_SECONDS": "0.05", "POLL_MAX_INTERVAL_SECONDS": "0.05"}


@pytest.fixture
async def world(tmp_path: Path):
    """All five providers, polled (and backed off) every 50 ms."""
    w = await build_world(tmp_path, env=FAST)
    try:
        yield w
    finally:
        await w.close()


async def animate(world: World, pid: str, prompt: str = "a fault-tolerant fox", user="alice"):
    image = input_png() if pid == "higgsfield_feed" else None  # image-to-video only
    ix = await world.animate(user, prompt=prompt, provider=pid, image=image)
    return await started(world, ix)


async def outcome(world: World, thread_id: int, task_id: int, expected: str, *needles: str):
    """The final message shows the expected outcome; nothing lost or doubled."""
    final = await final_message(world, thread_id, task_id)
    videos = [a for a in final.attachments if a.filename.endswith(".mp4")]
    if expected == DELIVERED:
        assert videos, final.content
    else:
        assert not final.attachments, final.content
        assert "could not be made" in final.content
        assert "quota for it was given back" in final.content
    text = final.content.lower()
    for needle in needles:  # "a|b": either will do
        assert any(n.lower() in text for n in needle.split("|")), final.content
    await assert_exactly_once(world)
    return final


# --- faults while polling ------------------------------------------------------------------
POLL_FAULTS = {
    "http_429_with_retry_after": (
        [Step.rate_limit(0.1), Step.running(50), Step.rate_limit(0.1), Step.succeed()],
        DELIVERED,
        (),
    ),
    "5xx_burst_with_html_pages": (
        [
            Step.server_error(500),
            Step.server_error(502, html=True),
            Step.server_error(503),
            Step.server_error(504, html=True),
            Step.running(70),
            Step.server_error(503),
            Step.succeed(),
        ],
        DELIVERED,
        (),
    ),
    "truncated_and_wrong_shape_json": (
        [Step.running(30), Step.malformed(), Step.malformed(truncated=False), Step.succeed()],
        DELIVERED,
        (),
    ),
    "unknown_state": (
        [Step.unknown_state("thinking_hard", polls=2), Step.succeed()],
        DELIVERED,
        (),
    ),
    "task_404_once": ([Step.running(20), Step.not_found(), Step.succeed()], DELIVERED, ()),
    "task_404_for_good": ([Step.running(20), Step.not_found()], FAILED, ("not_found",)),
    "generation_failed": (
        [Step.running(20), Step.fail(code="2013", message="the model crashed")],
        FAILED,
        ("the model crashed",),
    ),
    "output_url_404": ([Step.output_404()], FAILED, ("download", "expired")),
}


@pytest.mark.parametrize("fault", POLL_FAULTS)
@pytest.mark.parametrize("pid", PROVIDER_IDS)
async def test_poll_fault(world: World, pid: str, fault: str) -> None:
    steps, expected, needles = POLL_FAULTS[fault]
    world.providers[pid].script_next(steps)
    thread_id, task_id = await animate(world, pid)
    final = await outcome(world, thread_id, task_id, expected, *needles)
    if fault == "generation_failed" and pid in ("hiapi", "foxapi", "gptge"):  # with a code
        assert "`2013`" in final.content


# --- faults on submit ----------------------------------------------------------------------
CREDITS_IN_A_200 = {
    "hiapi": {"code": 402, "message": "insufficient balance", "data": None},
    "foxapi": {
        "error": {
            "message": "insufficient balance",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    },
    "gptge": {
        "task_id": "",
        "base_resp": {"status_code": 1008, "status_msg": "insufficient balance"},
    },
    "higgsfield": {"success": False, "error": "insufficient credits"},
    "higgsfield_feed": {"code": 402, "message": "insufficient balance", "data": None},
}
BUSY_IN_A_200 = {
    "hiapi": {"code": 503, "message": "upstream busy", "data": None},
    "foxapi": {"error": {"message": "upstream temporarily unavailable", "type": "server_error"}},
    "gptge": {"task_id": "", "base_resp": {"status_code": 1002, "status_msg": "rate limited"}},
    "higgsfield": {"success": False, "error": "service unavailable, try again later"},
    "higgsfield_feed": {"code": 503, "message": "upstream busy", "data": None},
}
SUBMIT_FAULTS = {
    "http_429_with_retry_after": (dict(status=429, retry_after=0.1, times=2), DELIVERED, ()),
    "http_503": (dict(status=503, times=2), AMBIGUOUS, ()),
    "html_502_page": (dict(status=502, html=True), AMBIGUOUS, ()),
    "200_envelope_with_a_transient_error": ("busy", DELIVERED, ()),
    "http_401_bad_key": (dict(status=401), FAILED, ("api key", "operator")),
    "http_402_no_credits": (dict(status=402), FAILED, ("out of credits", "operator")),
    "http_400_rejected": (dict(status=400), FAILED, ("rejected",)),
    "200_envelope_with_no_credits": ("credits", FAILED, ("out of credits", "operator")),
}


@pytest.mark.parametrize("fault", SUBMIT_FAULTS)
@pytest.mark.parametrize("pid", PROVIDER_IDS)
async def test_submit_fault(world: World, pid: str, fault: str, caplog) -> None:
    spec, expected, needles = SUBMIT_FAULTS[fault]
    if expected == AMBIGUOUS:
        expected, needles = (DELIVERED, ()) if pid == "hiapi" else (FAILED, (MAY_HAVE_RUN,))
    double = world.providers[pid]
    if spec == "busy":
        double.fail_next_submit(200, body=BUSY_IN_A_200[pid])
    elif spec == "credits":
        double.fail_next_submit(200, body=CREDITS_IN_A_200[pid])
    else:
        double.fail_next_submit(**spec)
    thread_id, task_id = await animate(world, pid)
    await outcome(world, thread_id, task_id, expected, *needles)
    assert len(double.tasks) == (1 if expected == DELIVERED else 0)
    if fault == "http_401_bad_key":  # the operator is told which variable to check
        assert f"{pid.upper()}_API_KEY" in caplog.text


# --- Retry-After is honoured -----------------------------------------------------------------
@pytest.mark.parametrize("pid", PROVIDER_IDS)
async def test_poll_429_waits_for_retry_after(world: World, pid: str) -> None:
    """Fault: 429 with Retry-After 0.4 s on a status poll (polls are 50 ms apart)."""
    double = world.providers[pid]
    double.script_next([Step.running(10), Step.rate_limit(0.4), Step.succeed()])
    times = poll_times(double)
    thread_id, task_id = await animate(world, pid)
    await outcome(world, thread_id, task_id, DELIVERED)
    assert len(times) >= 3
    assert times[2] - times[1] >= 0.38, f"polled again {times[2] - times[1]:.2f}s after a 429"


@pytest.mark.parametrize("pid", ["hiapi", "foxapi", "gptge"])
async def test_submit_429_waits_for_retry_after(world: World, pid: str) -> None:
    """Fault: 429 with Retry-After 0.4 s on submit."""
    double = world.providers[pid]
    double.fail_next_submit(429, retry_after=0.4)
    submits: list[float] = []
    original = double.submit_gate

    async def timed():
        submits.append(double.now())
        await original()

    double.submit_gate = timed
    thread_id, task_id = await animate(world, pid)
    await outcome(world, thread_id, task_id, DELIVERED)
    assert len(submits) == 2 and submits[1] - submits[0] >= 0.38


# --- timeouts ------------------------------------------------------------------------------------
def short_timeout(world: World, pid: str) -> None:
    assert world.bot is not None
    world.bot.providers[pid].http.timeout = aiohttp.ClientTimeout(total=0.2)


@pytest.mark.parametrize("pid", ["hiapi", "foxapi", "higgsfield"])
async def test_poll_timeouts_are_retried(world: World, pid: str) -> None:
    """Fault: status requests hang past the client timeout (twice), then answer."""
    double = world.providers[pid]
    short_timeout(world, pid)
    gate = gate_polls(double)
    thread_id, task_id = await animate(world, pid)
    await gate.wait_reached(calls=3)  # two timed out, a third is waiting
    gate.release()
    await outcome(world, thread_id, task_id, DELIVERED)


@pytest.mark.parametrize("pid", ["hiapi", "foxapi"])
async def test_submit_timeout(world: World, pid: str) -> None:
    """Fault: the submit request hangs past the client timeout. hiapi: resubmitted with
    the same Idempotency-Key, one provider task, delivered. foxapi: the bot cannot know
    whether the provider took it, so it fails with a message instead of paying twice."""
    double = world.providers[pid]
    short_timeout(world, pid)
    gate = gate_submits(double)
    thread_id, task_id = await animate(world, pid)
    if pid == "hiapi":
        await gate.wait_reached(calls=2)
        gate.release()
        await outcome(world, thread_id, task_id, DELIVERED)
        assert len(double.tasks) == 1
    else:
        await outcome(world, thread_id, task_id, FAILED, "could not confirm")
        gate.release()


# --- the network: resets, refusals, long outages ---------------------------------------------
@pytest.fixture
async def linked(tmp_path: Path):
    """``await linked(pid)``: a world whose ``pid`` is reached through a FlakyLink."""
    made: list[tuple[World, FlakyLink]] = []

    async def make(pid: str, **env: str) -> tuple[World, FlakyLink]:
        world = await build_world(
            tmp_path / f"w{len(made)}",
            start=False,
            provider_ids=tuple(dict.fromkeys((pid, "hiapi"))),
            env=env,
        )
        link = await FlakyLink(world.providers[pid].base_url).start()
        made.append((world, link))
        world.env[f"{pid.upper()}_BASE_URL"] = link.url
        await world.start_bot()
        return world, link

    try:
        yield make
    finally:
        for world, link in made:
            await world.close()
            await link.close()


@pytest.mark.parametrize("pid", [p for p in PROVIDER_IDS if p != "hiapi"])
async def test_connection_resets_while_polling(linked, pid: str) -> None:
    """Fault: every connection to the provider is reset for a while mid-generation."""
    world, link = await linked(pid, **FAST)
    double = world.providers[pid]
    hold(double)
    thread_id, task_id = await animate(world, pid)
    await polled(double)
    await link.set_mode("reset")
    await eventually(lambda: link.resets >= 3, description="three reset connections")
    await link.set_mode("up")
    finish(double)
    await outcome(world, thread_id, task_id, DELIVERED)


@pytest.mark.parametrize("pid", ["foxapi", "gptge"])
async def test_provider_refusing_connections_at_submit(linked, pid: str) -> None:
    """Fault: the provider is down (connection refused) when the task is submitted. The
    request never left, so resubmitting is safe even without idempotency."""
    world, link = await linked(pid, **FAST)
    await link.set_mode("down")
    thread_id, task_id = await animate(world, pid)

    async def retrying() -> bool:
        task = await world.bot.store.get_task(task_id)
        return task is not None and task.error_streak >= 2

    await eventually(retrying, description="two failed submit attempts")
    await link.set_mode("up")
    await outcome(world, thread_id, task_id, DELIVERED)
    assert len(world.providers[pid].tasks) == 1


async def test_provider_down_for_long_does_not_fail_or_delay_others(linked) -> None:
    """Fault: foxapi refuses connections for many poll intervals mid-generation. Its task
    keeps being retried (not failed), hiapi keeps delivering meanwhile, and the task is
    delivered when foxapi is back."""
    world, link = await linked("foxapi", **FAST)
    fox = world.providers["foxapi"]
    hold(fox)
    fox_thread, fox_task = await animate(world, "foxapi", prompt="patient fox")
    # The bot, not just the double, must have seen "running": an answer is written in
    # pieces, and one still on the wire when the link goes down never arrives.
    await task_state(world, fox_task, "running")
    await link.set_mode("down")

    async def long_outage() -> bool:
        task = await world.bot.store.get_task(fox_task)
        return task is not None and task.error_streak >= 8

    for n in range(3):
        thread_id, task_id = await animate(world, "hiapi", prompt=f"meanwhile {n}")
        await video_lands(world, thread_id, task_id)
    await eventually(long_outage, description="eight failed polls in a row")
    assert (await world.bot.store.get_task(fox_task)).state == "running"
    await link.set_mode("up")
    finish(fox)
    await outcome(world, fox_thread, fox_task, DELIVERED)


async def test_provider_down_past_the_task_timeout_fails_with_a_message(linked) -> None:
    """Fault: the provider stays down longer than TASK_TIMEOUT_SECONDS."""
    world, link = await linked("foxapi", TASK_TIMEOUT_SECONDS="1", **FAST)
    hold(world.providers["foxapi"])
    thread_id, task_id = await animate(world, "foxapi")
    await polled(world.providers["foxapi"])
    await link.set_mode("down")
    await outcome(world, thread_id, task_id, FAILED, "task_timeout", "took too long")


# --- one slow provider must not hold up another ----------------------------------------------
@pytest.mark.parametrize("stuck_at", ["submit", "poll", "download"])
async def test_a_stuck_provider_does_not_delay_another(world: World, stuck_at: str) -> None:
    """Fault: foxapi hangs (its submit, its status request, or the download of its
    output never answers) while hiapi tasks come and go."""
    fox = world.providers["foxapi"]
    host = None
    if stuck_at == "submit":
        gate = gate_submits(fox)
    elif stuck_at == "poll":
        gate = gate_polls(fox)
    else:
        gate = Gate()
        host = await MediaHost(gate=gate).start()
        host.serve_outputs_of(fox)
    try:
        fox_thread, fox_task = await animate(world, "foxapi", prompt="stuck fox")
        await gate.wait_reached()
        for n in range(3):
            thread_id, task_id = await animate(world, "hiapi", prompt=f"free hiapi {n}")
            await video_lands(world, thread_id, task_id)
        assert not [m for m in world.discord.messages(fox_thread) if "ready" in m.content]
        gate.release()
        await outcome(world, fox_thread, fox_task, DELIVERED)
    finally:
        if host is not None:
            await host.close()


# --- outputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_output_over_the_download_cap_is_linked_not_fetched(
    world_factory, declared: bool
) -> None:
    """Fault: the output is larger than MAX_DOWNLOAD_MB (streamed without a length, or
    declared up front). The bot stops downloading and posts the link, saying why."""
    world = await world_factory(provider_ids=("hiapi",), env={"MAX_DOWNLOAD_MB": "1", **FAST})
    world.providers["hiapi"].script_next(
        [Step.succeed(("video",), large_bytes=3 * 1024 * 1024, content_length=declared)]
    )
    thread_id, task_id = await animate(world, "hiapi")
    final = await final_message(world, thread_id, task_id)
    assert not final.attachments
    assert "too large" in final.content and "/media/large/" in final.content
    await assert_exactly_once(world, expect=1)
    assert not list(world.data_dir.rglob("reelbot-*")), "a partial download was left behind"


async def test_output_that_is_not_media_fails_with_a_message(world: World) -> None:
    """Fault: the output URL answers 200 with an HTML page instead of a video."""
    host = await MediaHost(body=b"<html>Access denied</html>", content_type="text/html").start()
    try:
        host.serve_outputs_of(world.providers["foxapi"])
        thread_id, task_id = await animate(world, "foxapi")
        await outcome(world, thread_id, task_id, FAILED, "not a media file")
    finally:
        await host.close()


async def test_a_provider_fault_is_logged_without_crashing_the_poller(world: World, caplog) -> None:
    """Fault: a burst of every poll fault at once on one task; the poller keeps running
    and a task on another provider, started afterwards, is delivered."""
    caplog.set_level(logging.WARNING)
    world.providers["gptge"].script_next(
        [
            Step.malformed(),
            Step.server_error(500, html=True),
            Step.rate_limit(0.05),
            Step.not_found(),
            Step.unknown_state("???"),
            Step.malformed(truncated=False),
            Step.succeed(),
        ]
    )
    thread_id, task_id = await animate(world, "gptge")
    await task_state(world, task_id, "succeeded")
    other_thread, other_task = await animate(world, "higgsfield")
    await video_lands(world, other_thread, other_task)
    await outcome(world, thread_id, task_id, DELIVERED)
    assert world.bot is not None and not world.bot.poller._stopping
    assert "poller tick failed" not in caplog.text
    assert len(await all_tasks(world)) == 2


async def test_an_output_that_cannot_be_fetched_releases_the_lease(world: World, caplog) -> None:
    """Bug (issue 12): a permanent download error made delivery write state=failed itself,
    so the poller's release (expecting 'succeeded') no longer matched: the lease was left
    to expire and the log said the task "changed meanwhile" though nobody cancelled it."""
    caplog.set_level(logging.INFO, logger="reelbot")
    world.providers["foxapi"].script_next([Step.output_404()])
    thread_id, task_id = await animate(world, "foxapi")
    await outcome(world, thread_id, task_id, FAILED, "download|expired")

    assert world.bot is not None
    db = world.bot.store.db  # SQLite: the lease columns are not part of TaskRow

    async def released() -> bool:
        async with db.execute("SELECT lease_owner FROM tasks WHERE id = ?", (task_id,)) as cur:
            row = await cur.fetchone()
        return row is not None and row[0] is None

    await eventually(released, timeout=5, description="the lease released")
    assert "changed meanwhile" not in caplog.text
