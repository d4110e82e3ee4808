"""Provider callbacks end to end (SPEC §6): the real bot, its callback server and the
provider doubles calling it back.

A callback is a hint: it makes the task due now and the poll decides. The tasks here
are held ``running`` until the test finishes them, with POLL_MAX_INTERVAL_SECONDS
high enough that the safety-net poll (30 s here) cannot be what delivers them within
the test's time.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from doubles.harness import World, build_world
from doubles.providers import ProviderDouble, Step
from doubles.providers.hiapi import sign_callback
from tests.helpers import (
    all_tasks,
    assert_exactly_once,
    eventually,
    fast_forward,
    final_message,
    finish,
    gate_polls,
    hold,
    started,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)

SLOW_NET = {"POLL_INTERVAL_SECONDS": "0.05", "POLL_MAX_INTERVAL_SECONDS": "30"}
SECRET = "whsec-test-0123456789abcdef"
CALLBACK_PROVIDERS = ("hiapi", "foxapi", "gptge")


async def callback_world(tmp_path: Path, provider: str, **kwargs: Any) -> World:
    return await build_world(
        tmp_path, provider_ids=(provider,), env=SLOW_NET, callbacks=True, **kwargs
    )


def status_polls(double: ProviderDouble) -> int:
    return sum(t.polls for t in double.tasks.values())


async def held_task(world: World, provider: str) -> tuple[int, int, ProviderDouble, str]:
    """A task submitted (held running at the provider, never polled yet: the provider
    will call back, so its first poll is the sparse safety net's): thread, task id,
    double, URL."""
    double = world.providers[provider]
    hold(double)
    ix = await world.animate("alice", prompt=f"a fox via {provider}", provider=provider)
    thread_id, task_id = await started(world, ix)
    await eventually(lambda: _submitted(world, task_id), description="the submit recorded")
    (pid,) = double.tasks
    url = double.callbacks.urls[pid]
    return thread_id, task_id, double, url


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
        ) as resp,
    ):
        text = await resp.text()
        return resp.status, text


async def task_row(world: World, task_id: int):
    assert world.bot is not None
    task = await world.bot.store.get_task(task_id)
    assert task is not None
    return task


@pytest.mark.parametrize("provider", CALLBACK_PROVIDERS)
async def test_a_callback_delivers_with_no_poll_after_the_one_it_triggered(
    tmp_path: Path, provider: str
) -> None:
    kwargs = {"hiapi_webhook_secret": SECRET} if provider == "hiapi" else {}
    world = await callback_world(tmp_path, provider, **kwargs)
    try:
        thread_id, task_id, double, url = await held_task(world, provider)
        task = await task_row(world, task_id)
        assert task.callback_token and url.endswith(f"/callbacks/{provider}/{task.callback_token}")
        assert url.startswith(world.env["PUBLIC_BASE_URL"])
        submitted = double.submissions[0]["json"]
        if provider == "hiapi":
            assert submitted["callback"] == {"url": url, "when": "final"}
            assert "callback" not in submitted["input"]
        else:
            assert submitted["callback_url"] == url
        # The safety net is sparse, from the submit on: the first poll is half a minute
        # away, and none was made before the callback.
        assert task.next_action_at is not None and task.next_action_at > time.time() + 20
        polls = status_polls(double)
        assert polls == 0
        finish(double)
        await video_lands(world, thread_id, task_id)
        sent = double.callbacks.of(next(iter(double.tasks)))
        assert [s.status for s in sent] == [200]
        if provider == "gptge":  # MiniMax: the challenge was echoed first
            assert [s.status for s in double.callbacks.sent if s.challenge] == [200]
        assert status_polls(double) == polls + 1  # the one poll the callback triggered
        await assert_exactly_once(world, expect=1)
        assert status_polls(double) == polls + 1
    finally:
        await world.close()


async def test_forged_tokens_and_wrong_providers_get_404_and_change_nothing(
    tmp_path: Path,
) -> None:
    world = await callback_world(tmp_path, "foxapi")
    try:
        _, task_id, double, url = await held_task(world, "foxapi")
        before = await task_row(world, task_id)
        base = world.env["PUBLIC_BASE_URL"]
        token = before.callback_token
        assert token is not None
        for target in (
            f"{base}/callbacks/foxapi/{token[:-1]}{'y' if token.endswith('x') else 'x'}",
            f"{base}/callbacks/hiapi/{token}",  # the token, under another provider
            f"{base}/callbacks/gptge/{token}",
            f"{base}/callbacks/foxapi/",
            f"{base}/r/{token}",
            f"{base}/callbacks/nosuch/{token}",
        ):
            status, _ = await post(target, b'{"status":"completed"}')
            assert status in (404, 405), (target, status)
        after = await task_row(world, task_id)
        assert after.next_action_at == before.next_action_at
        assert after.state == "queued" and status_polls(double) == 0
        assert world.bot is not None and world.bot.callbacks is not None
        assert world.bot.callbacks.received == 0
        assert url.endswith(token)
    finally:
        await world.close()


async def test_hiapi_unsigned_badly_signed_and_stale_callbacks_are_refused(
    tmp_path: Path,
) -> None:
    world = await callback_world(tmp_path, "hiapi", hiapi_webhook_secret=SECRET)
    try:
        thread_id, task_id, double, url = await held_task(world, "hiapi")
        before = await task_row(world, task_id)
        double.callbacks.mode = "never"  # only the test's own callbacks arrive
        finish(double)  # the next poll would say "success"
        body = json.dumps({"taskId": next(iter(double.tasks)), "status": "success"}).encode()
        now = int(time.time())
        refused = {
            "unsigned": ({}, 401),
            "wrong key": (sign_callback("another-secret-0123456789", body, now), 403),
            "stale": (sign_callback(SECRET, body, now - 1000), 403),
            "from the future": (sign_callback(SECRET, body, now + 1000), 403),
            "other body": (sign_callback(SECRET, body + b" ", now), 403),
            "garbage": ({"X-HiAPI-Timestamp": "x", "X-HiAPI-Signature": "y" * 64}, 403),
        }
        signed = sign_callback(SECRET, body, now)
        for name, (headers, expected) in refused.items():
            if name == "other body":
                status, _ = await post(url, body + b"  ", headers)
            else:
                status, _ = await post(url, body, headers)
            assert status == expected, name
        after = await task_row(world, task_id)
        assert after.next_action_at == before.next_action_at and after.state == "queued"
        assert status_polls(double) == 0
        # The genuine one (signed now, over the raw bytes) is taken.
        status, _ = await post(url, body, signed)
        assert status == 200
        await video_lands(world, thread_id, task_id)
    finally:
        await world.close()


async def test_a_replayed_callback_for_a_finished_task_is_harmless(tmp_path: Path) -> None:
    world = await callback_world(tmp_path, "hiapi", hiapi_webhook_secret=SECRET)
    try:
        thread_id, task_id, double, url = await held_task(world, "hiapi")
        finish(double)
        await video_lands(world, thread_id, task_id)
        (sent,) = double.callbacks.of(next(iter(double.tasks)))
        await assert_exactly_once(world, expect=1)
        polls = status_polls(double)
        # The very same callback again (within hiapi's ±300 s), and a fresh one.
        status, _ = await post(url, sent.body, double.callback_headers(sent.body))
        assert status == 200
        assert await double.callbacks.send(next(iter(double.tasks))) == 200
        tasks = await assert_exactly_once(world, expect=1)
        assert tasks[0].next_action_at is None and status_polls(double) == polls
    finally:
        await world.close()


async def test_a_callback_carrying_a_url_never_makes_the_bot_download_it(
    tmp_path: Path,
) -> None:
    """Only the poll's answer counts: a (forged) callback that says "done, the video is
    at <url>" makes the bot poll, the provider says "running", and nothing is fetched."""
    fetched: list[str] = []

    async def bait(request: web.Request) -> web.Response:
        fetched.append(request.path)
        return web.Response(body=b"not a video", content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/{tail:.*}", bait)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bait_url = f"http://127.0.0.1:{runner.addresses[0][1]}/evil.mp4"
    world = await callback_world(tmp_path, "foxapi")
    try:
        _, task_id, double, url = await held_task(world, "foxapi")
        forged = {
            "id": next(iter(double.tasks)),
            "status": "completed",
            "progress": 100,
            "results": [bait_url],
            "output": {"url": bait_url, "urls": [bait_url]},
        }
        status, _ = await post(url, json.dumps(forged).encode())
        assert status == 200
        await eventually(lambda: status_polls(double) >= 1, description="the hinted poll")
        task = await eventually(
            lambda: _polled_times(world, task_id, 1), description="the poll's answer recorded"
        )
        assert task.state == "running" and task.outputs == []
        assert fetched == []
    finally:
        await world.close()
        await runner.cleanup()


async def _submitted(world: World, task_id: int):
    """The task, once its submit is recorded."""
    task = await task_row(world, task_id)
    return task if task.provider_task_id and task.state == "queued" else None


async def _polled_times(world: World, task_id: int, times: int):
    """The task, once the outcome of its ``times``-th poll is recorded."""
    task = await task_row(world, task_id)
    return task if task.attempts >= times else None


async def test_a_lost_callback_is_delivered_by_the_safety_net(tmp_path: Path) -> None:
    world = await callback_world(tmp_path, "gptge")
    try:
        thread_id, task_id, double, _ = await held_task(world, "gptge")
        double.callbacks.mode = "never"
        finish(double)
        await fast_forward(world, task_id)  # the sparse poll comes (as if 30 s passed)
        await video_lands(world, thread_id, task_id)
        assert double.callbacks.sent == []
        await assert_exactly_once(world, expect=1)
    finally:
        await world.close()


async def test_late_and_duplicated_callbacks_deliver_once(tmp_path: Path) -> None:
    world = await callback_world(tmp_path, "hiapi", hiapi_webhook_secret=SECRET)
    try:
        double = world.providers["hiapi"]
        double.callbacks.mode = "duplicate"
        double.callbacks.delay = 0.3
        thread_id, task_id, _, _ = await held_task(world, "hiapi")
        finish(double)
        await video_lands(world, thread_id, task_id)
        await eventually(
            lambda: len(double.callbacks.of(next(iter(double.tasks)))) == 2,
            description="both copies of the callback",
        )
        await assert_exactly_once(world, expect=1)
    finally:
        await world.close()


async def test_without_public_base_url_nothing_changes(tmp_path: Path) -> None:
    world = await build_world(tmp_path, provider_ids=("hiapi",))
    try:
        ix = await world.animate("alice", prompt="a fox, polled", provider="hiapi")
        thread_id, task_id = await started(world, ix)
        await video_lands(world, thread_id, task_id)
        double = world.providers["hiapi"]
        assert "callback" not in double.submissions[0]["json"]
        assert world.bot is not None and world.bot.callbacks is None
        (task,) = await all_tasks(world)
        assert task.callback_token is None
    finally:
        await world.close()


async def test_a_link_too_long_for_a_message_becomes_a_short_redirect(tmp_path: Path) -> None:
    """SPEC §3 with PUBLIC_BASE_URL: a 2,500-character provider link is posted as
    PUBLIC_BASE_URL/r/<token>, which redirects to it (the embed is the fallback
    without PUBLIC_BASE_URL: tests/e2e/test_discord_limits.py)."""
    world = await callback_world(tmp_path, "foxapi")
    try:
        double = world.providers["foxapi"]
        signature = "&X-Amz-Signature=" + "a1b2c3d4" * 310
        plain = double.output_url
        double.output_url = lambda task, step, kind="video": plain(task, step, kind) + signature
        thread_id, task_id, _, _ = await held_task(world, "foxapi")
        finish(double, [Step.succeed(large_bytes=11 * 1024 * 1024, content_length=True)])
        final = await final_message(world, thread_id, task_id)
        assert not final.attachments and not final.embeds and signature not in final.content
        base = world.env["PUBLIC_BASE_URL"]
        match = re.search(re.escape(base) + r"/r/([A-Za-z0-9_-]+)", final.content)
        assert match, final.content
        async with aiohttp.ClientSession() as session:
            async with session.get(match.group(0), allow_redirects=False) as resp:
                assert resp.status == 302
                assert resp.headers["Location"].endswith(signature)
                assert len(resp.headers["Location"]) > 2500
            token = match.group(1)
            guessed = token[:-1] + ("y" if token.endswith("x") else "x")  # one char off
            async with session.get(f"{base}/r/{guessed}", allow_redirects=False) as r:
                assert r.status == 404
        await assert_exactly_once(world, expect=1)
    finally:
        await world.close()


async def test_a_callback_during_a_poll_is_not_lost(tmp_path: Path) -> None:
    """The callback arrives while a poll is in flight (the task is claimed, and that
    poll answers "running", from before the provider finished): the task is polled
    again at once when that poll is recorded, not at the sparse safety net (30 s,
    longer than this test waits)."""
    world = await callback_world(tmp_path, "foxapi")
    try:
        double = world.providers["foxapi"]
        double.callbacks.mode = "never"  # the test sends it, at the worst moment
        # Poll 1 and 2 answer "running", poll 3 "completed".
        double.script_next([Step.running(40, polls=2), Step.succeed()])
        ix = await world.animate("alice", prompt="a racing fox", provider="foxapi")
        thread_id, task_id = await started(world, ix)
        await eventually(lambda: _submitted(world, task_id), description="the submit")
        await fast_forward(world, task_id)  # poll 1, as if the safety net's time came
        await eventually(lambda: _polled_times(world, task_id, 1), description="poll 1")
        (pid,) = double.tasks
        url = double.callbacks.urls[pid]
        gate = gate_polls(double)
        await fast_forward(world, task_id)  # poll 2 starts, and is held at the provider
        await gate.wait_reached()
        status, _ = await post(url, b"{}")  # "done!" while poll 2 is in flight
        assert status == 200
        gate.release()  # poll 2 answers "running"
        await video_lands(world, thread_id, task_id)  # no fast_forward: the hint held
        assert double.tasks[pid].polls == 3
        await assert_exactly_once(world, expect=1)
    finally:
        await world.close()
