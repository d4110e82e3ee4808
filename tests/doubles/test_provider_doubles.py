"""Provider doubles spoken to with raw aiohttp (not the bot's adapters)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from doubles.providers import PROTOCOL_IDS, ProviderDouble, Step, make_double, timed_timeline
from doubles.providers.timeline import Track, advance

MEDIA = Path(__file__).resolve().parents[2] / "doubles" / "media"
SAMPLE = (MEDIA / "sample.mp4").read_bytes()
FACE_PUNCH = "cd5bfd11-5a1a-46e0-9294-b22b0b733b1e"
AUTH = {"Authorization": "Bearer test-key"}

WORDS = {
    "queued": "queued", "pending": "queued", "Queueing": "queued", "in_queue": "queued",
    "submitted": "queued", "processing": "running", "in_progress": "running",
    "handling": "running", "Processing": "running", "completed": "succeeded",
    "success": "succeeded", "Success": "succeeded", "done": "succeeded", "succeed": "succeeded",
    "failed": "failed", "fail": "failed", "Fail": "failed", "Failed": "failed",
}  # fmt: skip


# --- a minimal raw client per protocol (family) ---------------------------------------
@dataclass(frozen=True)
class Proto:
    name: str
    protocol: str
    submit_path: str
    submit_body: Callable[[ProviderDouble, str], dict[str, Any]]
    task_id: Callable[[Any], str]
    status_path: str  # "{id}" is replaced
    raw_state: Callable[[Any], str]
    output: Callable[[Any], str]  # URL, or MiniMax file_id
    status_method: str = "GET"


PROTOS = [
    Proto(
        "higgsfield", "higgsfield", "/generate",
        lambda d, p: {"type": "text-to-video", "prompt": p, "duration": 5, "seed": 42},
        lambda b: b["generation_id"], "/status/{id}",
        lambda b: b["status"], lambda b: b["video_url"],
    ),
    Proto(
        "higgsfield_feed", "higgsfield_feed", "/higgsfield/generate",
        lambda d, p: {"model": "turbo", "motion_id": FACE_PUNCH, "prompt": p,
                      "image": [d.media_url("input.png")]},
        lambda b: b["id"], "/higgsfield/feed/{id}",
        lambda b: b["jobs"][0]["status"], lambda b: b["jobs"][0]["results"]["raw"]["url"],
        status_method="POST",
    ),
    Proto(
        "hiapi", "hiapi", "/v1/tasks",
        lambda d, p: {"model": "seedance-2-0", "input": {"prompt": p, "duration": 5}},
        lambda b: b["data"]["taskId"], "/v1/tasks/{id}",
        lambda b: b["data"]["status"], lambda b: b["data"]["output"][0]["url"],
    ),
    Proto(
        "foxapi", "foxapi", "/v1/videos/generations",
        lambda d, p: {"model": "happyhorse-1.0-text-to-video", "prompt": p, "duration": 5},
        lambda b: b["id"], "/v1/tasks/{id}",
        lambda b: b["status"], lambda b: b["results"][0]["url"],
    ),
    Proto(
        "gptge-minimax", "gptge", "/task/minimax/v1/video_generation",
        lambda d, p: {"model": "MiniMax-Hailuo-02", "prompt": p, "duration": 6,
                      "resolution": "768P"},
        lambda b: b["task_id"], "/task/{id}",
        lambda b: b["status"], lambda b: b["file_id"],
    ),
    Proto(
        "gptge-jimeng", "gptge", "/task/jimeng/text2video",
        lambda d, p: {"prompt": p, "aspect_ratio": "9:16"},
        lambda b: b["data"]["task_id"], "/task/{id}",
        lambda b: b["data"]["status"], lambda b: b["data"]["video_url"],
    ),
    Proto(
        "gptge-kling", "gptge", "/kling/v1/videos/text2video",
        lambda d, p: {"model_name": "kling-v1-6", "prompt": p, "duration": "5"},
        lambda b: b["data"]["task_id"], "/task/{id}",
        lambda b: b["data"]["task_status"], lambda b: b["data"]["task_result"]["videos"][0]["url"],
    ),
]  # fmt: skip
BY_NAME = {p.name: p for p in PROTOS}
ONE_PER_PROTOCOL = [BY_NAME[n] for n in ("higgsfield", "higgsfield_feed", "hiapi", "foxapi",
                                         "gptge-minimax")]  # fmt: skip


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def double(request: pytest.FixtureRequest) -> AsyncIterator[ProviderDouble]:
    proto = request.param if isinstance(request.param, Proto) else BY_NAME[request.param]
    async with make_double(proto.protocol, api_key="test-key", seed=7) as d:
        yield d


def by_proto(protos: list[Proto]) -> Any:
    return pytest.mark.parametrize(
        ("double", "proto"), [(p, p) for p in protos], ids=[p.name for p in protos],
        indirect=["double"],
    )  # fmt: skip


async def submit(
    s: aiohttp.ClientSession, d: ProviderDouble, proto: Proto, prompt: str = "a cat"
) -> str:
    async with s.post(d.base_url + proto.submit_path, json=proto.submit_body(d, prompt),
                      headers=AUTH) as r:  # fmt: skip
        assert r.status == 200, await r.text()
        return proto.task_id(await r.json())


async def status(
    s: aiohttp.ClientSession, d: ProviderDouble, proto: Proto, task_id: str
) -> tuple[int, Any, aiohttp.ClientResponse]:
    url = d.base_url + proto.status_path.format(id=task_id)
    body = {"task_id": task_id} if proto.status_method == "POST" else None
    async with s.request(proto.status_method, url, json=body, headers=AUTH) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text), r
        except ValueError:
            return r.status, text, r


async def state_of(s: aiohttp.ClientSession, d: ProviderDouble, proto: Proto, tid: str) -> str:
    code, body, _ = await status(s, d, proto, tid)
    assert code == 200, body
    return WORDS[proto.raw_state(body)]


async def download(s: aiohttp.ClientSession, d: ProviderDouble, proto: Proto, body: Any) -> bytes:
    ref = proto.output(body)
    if proto.name == "gptge-minimax":  # file_id -> files/retrieve -> download_url
        async with s.get(d.base_url + "/task/minimax/v1/files/retrieve",
                         params={"file_id": ref}, headers=AUTH) as r:  # fmt: skip
            assert r.status == 200
            retrieved = await r.json()
        assert retrieved["base_resp"]["status_code"] == 0
        ref = retrieved["file"]["download_url"]
    assert ref.startswith(d.media_url(""))
    async with s.get(ref) as r:  # media needs no auth
        assert r.status == 200
        return await r.read()


def assert_error_shape(protocol: str, status_code: int, body: Any) -> None:
    if protocol == "hiapi":
        assert body["code"] == status_code and body["data"] is None and body["message"]
    elif protocol == "higgsfield":
        assert body["success"] is False and isinstance(body["error"], str)
    else:
        assert set(body["error"]) >= {"message", "type", "code"}


# --- every protocol -------------------------------------------------------------------
@by_proto(PROTOS)
async def test_submit_poll_to_success_and_download(session, double, proto):
    double.script_next([Step.queued(polls=2), Step.running(30), Step.running(80), Step.succeed()])
    tid = await submit(session, double, proto)
    states = [await state_of(session, double, proto, tid) for _ in range(5)]
    assert states == ["queued", "queued", "running", "running", "succeeded"]
    _, body, _ = await status(session, double, proto, tid)  # finished tasks stay finished
    assert WORDS[proto.raw_state(body)] == "succeeded"
    assert await download(session, double, proto, body) == SAMPLE
    assert double.polls(tid) == 6
    assert double.tasks[tid].state == "succeeded"
    sub = double.submissions[0]
    assert sub["task_id"] == tid and sub["path"] == double.base_path + proto.submit_path
    assert sub["json"] == proto.submit_body(double, "a cat") and double.tasks[tid].prompt == "a cat"
    assert "Authorization" not in sub["headers"] and "authorization" not in sub["headers"]


@by_proto(PROTOS)
async def test_failure_timeline(session, double, proto):
    double.script_next([Step.queued(), Step.fail(message="boom")])
    tid = await submit(session, double, proto)
    assert await state_of(session, double, proto, tid) == "queued"
    code, body, _ = await status(session, double, proto, tid)
    assert code == 200 and WORDS[proto.raw_state(body)] == "failed"
    assert "boom" in json.dumps(body)
    assert double.tasks[tid].state == "failed"


@by_proto(ONE_PER_PROTOCOL)
async def test_rate_limit_is_one_off_with_retry_after(session, double, proto):
    double.script_next([Step.rate_limit(retry_after=2.5), Step.running(10), Step.succeed()])
    tid = await submit(session, double, proto)
    code, body, resp = await status(session, double, proto, tid)
    assert code == 429 and resp.headers["Retry-After"] == "2.5"
    assert_error_shape(proto.protocol, 429, body)
    assert await state_of(session, double, proto, tid) == "running"
    assert await state_of(session, double, proto, tid) == "succeeded"
    path = double.base_path + proto.status_path.format(id=tid)
    assert (proto.status_method, path, 429) in double.requests


@by_proto(ONE_PER_PROTOCOL)
async def test_auth_rejected_in_provider_shape(session, double, proto):
    url = double.base_url + proto.submit_path
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        async with session.post(url, json=proto.submit_body(double, "x"), headers=headers) as r:
            assert r.status == 401
            assert_error_shape(proto.protocol, 401, await r.json())
    assert double.tasks == {}
    async with session.get(double.media_url("first_frame.jpg")) as r:  # media: no auth
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        assert int(r.headers["Content-Length"]) == (MEDIA / "first_frame.jpg").stat().st_size


@by_proto(ONE_PER_PROTOCOL)
async def test_unknown_task_and_scripted_faults(session, double, proto):
    code, body, _ = await status(session, double, proto, "no-such-task")
    assert code == 404
    assert_error_shape(proto.protocol, 404, body)
    double.script_next([
        Step.server_error(502), Step.server_error(html=True), Step.malformed(),
        Step.malformed(truncated=False), Step.not_found(), Step.unknown_state("weird"),
        Step.succeed(),
    ])  # fmt: skip
    tid = await submit(session, double, proto)
    code, body, _ = await status(session, double, proto, tid)
    assert code == 502
    assert_error_shape(proto.protocol, 502, body)
    code, body, resp = await status(session, double, proto, tid)
    assert code == 503 and resp.content_type == "text/html" and "<html>" in body
    code, body, resp = await status(session, double, proto, tid)
    assert code == 200 and isinstance(body, str)  # truncated JSON does not parse
    code, body, _ = await status(session, double, proto, tid)
    assert code == 200 and body == {"unexpected": "shape"}
    code, _, _ = await status(session, double, proto, tid)
    assert code == 404
    code, body, _ = await status(session, double, proto, tid)
    assert proto.raw_state(body) == "weird"
    assert await state_of(session, double, proto, tid) == "succeeded"


@by_proto(ONE_PER_PROTOCOL)
async def test_fail_next_submit(session, double, proto):
    double.fail_next_submit(429, retry_after=3)
    double.fail_next_submit(402)
    double.fail_next_submit(500, times=2)
    url = double.base_url + proto.submit_path
    seen = []
    for _ in range(4):
        async with session.post(url, json=proto.submit_body(double, "x"), headers=AUTH) as r:
            seen.append(r.status)
            assert_error_shape(proto.protocol, r.status, await r.json())
            if r.status == 429:
                assert r.headers["Retry-After"] == "3"
    assert seen == [429, 402, 500, 500]
    assert double.tasks == {}
    await submit(session, double, proto)  # faults are used up
    assert len(double.tasks) == 1


@by_proto([BY_NAME["hiapi"], BY_NAME["gptge-jimeng"]])
async def test_script_for_prompt_and_default_timeline(session, double, proto):
    double.script_for_prompt("fail please", [Step.fail(code="TASK_FAILED", message="no")])
    double.default_timeline = [Step.succeed()]
    bad = await submit(session, double, proto, "Oh FAIL PLEASE now")
    good = await submit(session, double, proto, "fine")
    assert await state_of(session, double, proto, bad) == "failed"
    assert await state_of(session, double, proto, good) == "succeeded"
    assert [t.index for t in double.tasks.values()] == [0, 1]


@by_proto([BY_NAME["foxapi"], BY_NAME["higgsfield"]])
async def test_large_bytes_streamed_and_output_404(session, double, proto):
    size = 3 * 2**20 + 17
    double.script_next([Step.succeed(large_bytes=size)])
    double.script_next([Step.succeed(large_bytes=1000, content_length=True)])
    double.script_next([Step.output_404()])
    chunked, declared, gone = [await submit(session, double, proto) for _ in range(3)]

    _, body, _ = await status(session, double, proto, chunked)
    async with session.get(proto.output(body)) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
        assert "Content-Length" not in r.headers and r.headers["Transfer-Encoding"] == "chunked"
        total, first = 0, b""
        async for chunk in r.content.iter_chunked(65536):
            first = first or chunk
            total += len(chunk)
    assert total == size and first[:16] == SAMPLE[:16]

    _, body, _ = await status(session, double, proto, declared)
    async with session.get(proto.output(body)) as r:
        assert r.headers["Content-Length"] == "1000" and len(await r.read()) == 1000

    _, body, _ = await status(session, double, proto, gone)
    assert WORDS[proto.raw_state(body)] == "succeeded"
    async with session.get(proto.output(body)) as r:
        assert r.status == 404


# --- time-based timelines (a fake clock: no sleeping) ---------------------------------
@by_proto([BY_NAME["foxapi"]])
async def test_wait_steps_follow_the_clock_not_the_polls(session, double, proto):
    clock = [1000.0]
    double.now = lambda: clock[0]  # type: ignore[method-assign]
    double.script_next([Step.queued(), Step.wait(5), Step.running(40), Step.wait(5),
                        Step.succeed()])  # fmt: skip
    tid = await submit(session, double, proto)
    assert await state_of(session, double, proto, tid) == "queued"
    for _ in range(3):  # polling faster does not make it finish sooner
        assert await state_of(session, double, proto, tid) == "queued"
    clock[0] += 5
    _, body, _ = await status(session, double, proto, tid)
    assert body["status"] == "processing" and body["progress"] == 40
    clock[0] += 4.9
    assert await state_of(session, double, proto, tid) == "running"
    clock[0] += 0.1
    assert await state_of(session, double, proto, tid) == "succeeded"


@by_proto([BY_NAME["hiapi"]])
async def test_completion_delay_is_measured_from_submit(session, double, proto):
    clock = [50.0]
    double.now = lambda: clock[0]  # type: ignore[method-assign]
    double.completion_delay = lambda index: 10.0 * (index + 1)
    first = await submit(session, double, proto)
    second = await submit(session, double, proto)
    clock[0] += 1
    assert await state_of(session, double, proto, first) == "queued"
    clock[0] += 5
    assert await state_of(session, double, proto, first) == "running"
    clock[0] += 4  # t = 10: first done without any poll in between
    assert await state_of(session, double, proto, first) == "succeeded"
    assert await state_of(session, double, proto, second) == "running"
    clock[0] += 10
    assert await state_of(session, double, proto, second) == "succeeded"


async def test_wait_with_the_real_loop_clock(session):
    proto = BY_NAME["higgsfield"]
    async with make_double("higgsfield") as d:
        d.default_timeline = [Step.wait(0.05), Step.succeed()]
        tid = await submit(session, d, proto)
        assert await state_of(session, d, proto, tid) == "queued"
        await asyncio.sleep(0.06)
        assert await state_of(session, d, proto, tid) == "succeeded"


def test_timeline_rules_without_a_server():
    track = Track(steps=(Step.queued(polls=2), Step.rate_limit(), Step.running(5),
                         Step.succeed()), since=0.0)  # fmt: skip
    kinds = [advance(track, 0.0).kind.value for _ in range(6)]
    assert kinds == ["queued", "queued", "rate_limit", "running", "succeed", "succeed"]
    assert track.state == "succeeded"
    timed = Track(steps=tuple(timed_timeline(8.0)), since=0.0)
    assert advance(timed, 1.0).kind.value == "queued"
    assert advance(timed, 2.0).progress == 25
    assert advance(timed, 7.9).progress == 75
    assert advance(timed, 8.0).kind.value == "succeed"
    with pytest.raises(ValueError):
        Step.succeed(outputs=["hologram"])
    with pytest.raises(ValueError):
        Track(steps=(), since=0).replace_timeline([], 0)


# --- protocol specifics ---------------------------------------------------------------
async def test_hiapi_idempotency_and_validation(session):
    async with make_double("hiapi") as d:
        url = d.base_url + "/v1/tasks"
        body = {"model": "seedance-2-0", "input": {"prompt": "a red fox"}}
        headers = {**AUTH, "Idempotency-Key": "task-42"}
        async with session.post(url, json=body, headers=headers) as r:
            first = (await r.json())["data"]["taskId"]
            assert "Idempotent-Replay" not in r.headers
        assert first.startswith("tk-hiapi-") and len(first) == 35
        async with session.post(url, json=body, headers=headers) as r:
            assert r.status == 200 and r.headers["Idempotent-Replay"] == "true"
            assert (await r.json())["data"]["taskId"] == first
        other = {"model": "seedance-2-0", "input": {"prompt": "a blue fox"}}
        async with session.post(url, json=other, headers=headers) as r:
            assert r.status == 422
            assert (await r.json())["error_code"] == "IDEMPOTENCY_KEY_MISMATCH"
        assert list(d.tasks) == [first] and len(d.submissions) == 1
        assert d.submissions[0]["headers"]["idempotency-key"] == "task-42"

        invalid = {"code": 400, "message": "invalid request", "data": None,
                   "error_code": "INVALID_REQUEST"}  # fmt: skip
        for bad in (
            {"model": "sora-9", "input": {"prompt": "hello"}},
            {"model": "happyhorse-1-0", "input": {"prompt": "hello", "first_frame_url": "x"}},
            {"model": "seedance-2-0", "input": {"prompt": "hello", "duration": 99}},
            {"model": "seedance-2-0"},
        ):
            async with session.post(url, json=bad, headers=AUTH) as r:
                assert r.status == 400 and await r.json() == invalid
        assert any("text-to-video only" in reason for _, _, reason in d.rejections)


async def test_hiapi_same_key_while_first_in_flight_is_409(session):
    async with make_double("hiapi") as d:
        d.submit_latency = 0.1
        url = d.base_url + "/v1/tasks"
        body = {"model": "happyhorse-1-0", "input": {"prompt": "slow"}}
        headers = {**AUTH, "Idempotency-Key": "k"}

        async def post() -> tuple[int, Any]:
            async with session.post(url, json=body, headers=headers) as r:
                return r.status, await r.json()

        first = asyncio.create_task(post())
        await asyncio.sleep(0.02)
        code, busy = await post()
        assert code == 409 and busy["error_code"] == "IDEMPOTENCY_KEY_PROCESSING"
        assert (await first)[0] == 200 and len(d.tasks) == 1


async def test_gptge_success_forms(session):
    async with make_double("gptge") as d:
        proto = BY_NAME["gptge-minimax"]
        for form in ("video_url", "base64", "kling", "doubao", "file_id"):
            d.script_next([Step.succeed(form=form)])
        ids = [await submit(session, d, proto) for _ in range(5)]
        bodies = [(await status(session, d, proto, t))[1] for t in ids]
        assert bodies[0]["data"]["status"] == "Success" and bodies[0]["code"] == 0
        assert bodies[0]["data"]["video_url"] == d.media_url("sample.mp4")
        assert base64.b64decode(bodies[1]["data"]["binary_data_base64"][0]) == SAMPLE
        assert bodies[2]["data"]["task_status"] == "succeed"
        assert bodies[3]["status"] == "succeeded" and bodies[3]["content"]["video_url"]
        assert bodies[4]["base_resp"] == {"status_code": 0, "status_msg": "success"}
        assert await download(session, d, proto, bodies[4]) == SAMPLE
        async with session.get(d.base_url + "/task/minimax/v1/files/retrieve",
                               params={"file_id": "1"}, headers=AUTH) as r:  # fmt: skip
            assert r.status == 404


async def test_gptge_family_validation_and_shapes(session):
    async with make_double("gptge") as d:
        # MiniMax reports bad input inside an HTTP 200.
        async with session.post(d.base_url + "/task/minimax/v1/video_generation", headers=AUTH,
                                json={"model": "MiniMax-Hailuo-02", "prompt": "x",
                                      "duration": 6, "resolution": "768p"}) as r:  # fmt: skip
            body = await r.json()
            assert r.status == 200 and body["base_resp"]["status_code"] == 2013
        async with session.post(d.base_url + "/kling/v1/videos/text2video", headers=AUTH,
                                json={"prompt": "x", "duration": 5}) as r:  # fmt: skip
            assert r.status == 400 and (await r.json())["code"] == 1201
        async with session.post(d.base_url + "/task/jimeng/image2video", headers=AUTH,
                                json={"prompt": "x"}) as r:  # fmt: skip
            assert r.status == 400 and (await r.json())["code"] == 50400
        assert d.tasks == {}
        async with session.post(
            d.base_url + "/kling/v1/videos/image2video",
            headers=AUTH,
            json={"prompt": "x", "image": d.media_url("input.png")},
        ) as r:
            submitted = await r.json()
        assert submitted["code"] == 0 and submitted["data"]["task_status"] == "submitted"
        tid = submitted["data"]["task_id"]
        async with session.get(f"{d.base_url}/kling/v1/videos/image2video/{tid}",
                               headers=AUTH) as r:  # fmt: skip
            assert (await r.json())["data"]["task_status"] == "submitted"
        d.script_next([Step.fail(code="1002", message="rate limit")])
        mm = await submit(session, d, BY_NAME["gptge-minimax"])
        _, body, _ = await status(session, d, BY_NAME["gptge-minimax"], mm)
        assert body["status"] == "Fail" and body["base_resp"]["status_code"] == 1002


async def test_higgsfield_feed_post_status_motions_and_validation(session):
    async with make_double("higgsfield_feed") as d:
        proto = BY_NAME["higgsfield_feed"]
        url = d.base_url + "/higgsfield/generate"
        good = proto.submit_body(d, "punch")
        for missing in ("image", "motion_id"):
            bad = {k: v for k, v in good.items() if k != missing}
            async with session.post(url, json=bad, headers=AUTH) as r:
                assert r.status == 422 and (await r.json())["error"]["type"]
        async with session.post(url, json={**good, "image": ["a", "b", "c"]}, headers=AUTH) as r:
            assert r.status == 422
        tid = await submit(session, d, proto, "punch")
        feed = f"{d.base_url}/higgsfield/feed/{tid}"
        async with session.post(feed, json={"task_id": "other"}, headers=AUTH) as r:
            assert r.status == 400
        async with session.get(feed, headers=AUTH) as r:
            assert r.status == 405
        assert d.polls(tid) == 0
        _, body, _ = await status(session, d, proto, tid)
        assert body["id"] == tid and body["params"]["motion"]["name"] == "Face Punch"
        assert body["params"]["input_image"]["url"] == d.media_url("input.png")
        async with session.get(
            d.base_url + "/higgsfield/tpl/motions",
            params={"size": "30", "search": "punch"},
            headers=AUTH,
        ) as r:
            motions = await r.json()
        assert [m["id"] for m in motions] == [FACE_PUNCH]
        async with session.get(d.base_url + "/higgsfield/tpl/motions", params={"size": "2"},
                               headers=AUTH) as r:  # fmt: skip
            assert len(await r.json()) == 2


async def test_foxapi_progress_usage_and_character(session):
    async with make_double("foxapi") as d:
        proto = BY_NAME["foxapi"]
        d.script_next([Step.running(30), Step.running(80), Step.succeed()])
        tid = await submit(session, d, proto)
        seen = [(await status(session, d, proto, tid))[1] for _ in range(3)]
        assert [b["progress"] for b in seen] == [30, 80, 100]
        assert all(b["usage"]["credits_reserved"] > 0 for b in seen)
        async with session.post(
            d.base_url + "/v1/videos/generations",
            headers=AUTH,
            json={
                "model": "sora-2-character",
                "name": "Mia",
                "video_url": d.media_url("sample.mp4"),
            },
        ) as r:
            char = await r.json()
        assert char["usage"]["credits_reserved"] > 0
        _, body, _ = await status(session, d, proto, char["id"])
        _, body, _ = await status(session, d, proto, char["id"])
        _, body, _ = await status(session, d, proto, char["id"])
        result = body["results"][0]
        assert body["status"] == "completed" and result["name"] == "Mia"
        assert result["character_id"] and "url" not in result
        d.script_next([Step.succeed(form="string_results")])
        tid = await submit(session, d, proto)
        _, body, _ = await status(session, d, proto, tid)
        assert body["results"] == [d.media_url("sample.mp4")]
        d.cancel(tid)
        _, body, _ = await status(session, d, proto, tid)
        assert body["status"] == "cancelled" and tid in d.cancelled


async def test_soul_training_lifecycle(session):
    async with make_double("higgsfield") as d:
        base = d.base_url
        images = [f"https://img.example/{i}.jpg" for i in range(20)]
        for bad_images, code in ((images[:5], 422), ([*images, *images, *images], 422),
                                 ("nope", 400)):  # fmt: skip
            async with session.post(
                base + "/soul/train", headers=AUTH, json={"name": "mia", "images": bad_images}
            ) as r:
                assert r.status == code and (await r.json())["success"] is False
        async with session.post(base + "/soul/train", headers=AUTH,
                                json={"name": "mia", "images": images}) as r:  # fmt: skip
            created = await r.json()
        assert created["status"] == "queued"
        mid = created["model_id"]
        seen = []
        for _ in range(4):
            async with session.get(f"{base}/soul/models/{mid}", headers=AUTH) as r:
                seen.append((await r.json())["status"])
        assert seen == ["queued", "training", "ready", "ready"]
        assert d.trainings[mid].name == "mia" and d.trainings[mid].state == "succeeded"

        proto = BY_NAME["higgsfield"]
        async with session.post(
            base + "/generate", headers=AUTH, json={**proto.submit_body(d, "me"), "model_id": mid}
        ) as r:
            assert r.status == 200
        assert d.submissions[-1]["json"]["model_id"] == mid

        async with session.delete(f"{base}/soul/models/{mid}", headers=AUTH) as r:
            assert r.status == 200
        for method in ("GET", "DELETE"):
            async with session.request(method, f"{base}/soul/models/{mid}", headers=AUTH) as r:
                assert r.status == 404 and (await r.json())["success"] is False

        d.script_next_training([Step.queued(), Step.fail(message="faces unclear")])
        async with session.post(base + "/soul/train", headers=AUTH,
                                json={"name": "x", "images": images}) as r:  # fmt: skip
            mid = (await r.json())["model_id"]
        for expected in ("queued", "failed"):
            async with session.get(f"{base}/soul/models/{mid}", headers=AUTH) as r:
                body = await r.json()
            assert body["status"] == expected
        assert body["error"] == "faces unclear"


@pytest.mark.parametrize("protocol", PROTOCOL_IDS)
async def test_base_urls_and_many_tasks(session, protocol):
    proto = {p.protocol: p for p in reversed(PROTOS)}[protocol]
    async with make_double(protocol, record=False) as d:
        assert d.base_url.startswith("http://127.0.0.1:")
        assert d.base_url.endswith("/api/v1") == (protocol == "higgsfield")
        d.default_timeline = [Step.succeed()]
        ids = await asyncio.gather(*(submit(session, d, proto, f"prompt {i}") for i in range(100)))
        states = await asyncio.gather(*(state_of(session, d, proto, t) for t in ids))
        assert set(states) == {"succeeded"} and len(d.tasks) == 100
        assert d.requests == [] and d.submissions == [] and d.request_count == 200
