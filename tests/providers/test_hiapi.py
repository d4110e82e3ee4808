"""hiapi (unified async task API with the {code, message, data} envelope)."""

from __future__ import annotations

import hashlib

import pytest

from providers.base import ErrorKind, GenerationRequest, Output, ProviderError
from providers.hiapi import parse_task
from tests.providers.conftest import IMAGE_URL, fixture, fixture_names, image

PID = "hiapi"
TASK = "tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR"
CDN = f"https://cdn.hiapi.ai/tasks/{TASK}"
OUTPUTS = (
    Output(kind="video", url=f"{CDN}/video.mp4", expires_at=1777886899.0),
    Output(kind="first_frame", url=f"{CDN}/first_frame.jpg", expires_at=1777886899.0),
)

# fixture -> (state, raw_state, progress, error_code, error_message, outputs)
STATUS = {
    "queued": ("queued", "queued", None, None, None, ()),
    "running": ("running", "handling", None, None, None, ()),
    "archiving": ("running", "archiving", 95, None, None, ()),
    "success": ("succeeded", "success", 100, None, None, OUTPUTS),
    "failure": ("failed", "fail", None, "TASK_FAILED", "task failed", ()),
}
# fixture -> (documented HTTP status, kind, code); each is also tried inside an HTTP 200
ERRORS = {
    "not_found": (404, ErrorKind.NOT_FOUND, "404"),
    "rate_limited": (429, ErrorKind.RATE_LIMITED, "429"),
    "service_unavailable": (503, ErrorKind.TRANSIENT, "503"),
    "submit_invalid": (400, ErrorKind.INVALID, "INVALID_REQUEST"),
}


def test_every_fixture_is_covered():
    assert set(fixture_names(PID)) == set(STATUS) | set(ERRORS) | {"submit", "callback"}


@pytest.mark.parametrize("name", sorted(STATUS))
async def test_status_fixtures(make, server, name):
    state, raw, progress, code, message, outputs = STATUS[name]
    server.reply(200, fixture(PID, name))
    status = await make(PID).status(TASK)
    assert (server.last.method, server.last.path) == ("GET", f"/v1/tasks/{TASK}")
    assert (status.state, status.raw_state, status.progress) == (state, raw, progress)
    assert (status.error_code, status.error_message) == (code, message)
    assert status.outputs == outputs


def test_callback_body_parses_like_data():
    status = parse_task(fixture(PID, "callback"))
    assert status.state == "succeeded"
    assert status.outputs == OUTPUTS


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("served_as", ["documented", "http_200"])
async def test_error_fixtures_on_status(make, server, name, served_as):
    http_status, kind, code = ERRORS[name]
    body = fixture(PID, name)
    server.reply(200 if served_as == "http_200" else http_status, body)
    with pytest.raises(ProviderError) as info:
        await make(PID).status(TASK)
    assert (info.value.kind, info.value.code, info.value.message) == (kind, code, body["message"])


@pytest.mark.parametrize("served_as", [400, 200])
async def test_submit_invalid(make, server, served_as):
    server.reply(served_as, fixture(PID, "submit_invalid"))
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a cat walks"), idempotency_key="k")
    assert (info.value.kind, info.value.code) == (ErrorKind.INVALID, "INVALID_REQUEST")
    assert info.value.http_status == served_as


@pytest.mark.parametrize(
    ("error_code", "kind"),
    [
        ("MODEL_UNAVAILABLE", ErrorKind.TRANSIENT),
        ("IDEMPOTENCY_KEY_PROCESSING", ErrorKind.RATE_LIMITED),
        ("IDEMPOTENCY_KEY_MISMATCH", ErrorKind.INVALID),
    ],
)
async def test_business_error_codes(make, server, error_code, kind):
    server.reply(200, {"code": 409, "message": "nope", "data": None, "error_code": error_code})
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a cat walks"), idempotency_key="k")
    assert (info.value.kind, info.value.code) == (kind, error_code)


async def test_submit_seedance_image_to_video(make, server):
    server.reply(200, fixture(PID, "submit"))
    request = GenerationRequest(
        prompt="a cat walks", image=image(), duration=5, aspect_ratio="9:16", resolution="480p"
    )
    task_id = await make(PID).submit(request, idempotency_key="reelbot-42")
    assert task_id == TASK
    seen = server.last
    assert (seen.method, seen.path) == ("POST", "/v1/tasks")
    assert seen.headers["Idempotency-Key"] == "reelbot-42"
    assert seen.body == {
        "model": "seedance-2-0",
        "input": {
            "prompt": "a cat walks",
            "aspect_ratio": "9:16",
            "duration": 5,
            "resolution": "480p",
            "first_frame_url": IMAGE_URL,
        },
    }


async def test_submit_happyhorse_with_seed(make, server):
    server.reply(200, fixture(PID, "submit"))
    request = GenerationRequest("a horse", model="happyhorse-1-0", seed=7, resolution="1080p")
    await make(PID).submit(request, idempotency_key="k")
    assert server.last.body == {
        "model": "happyhorse-1-0",
        "input": {"prompt": "a horse", "resolution": "1080p", "seed": 7},
    }


async def test_long_idempotency_key_is_hashed(make, server):
    server.reply(200, fixture(PID, "submit"))
    key = "k" * 300
    await make(PID).submit(GenerationRequest("a cat walks"), idempotency_key=key)
    assert server.last.headers["Idempotency-Key"] == hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"model": "happyhorse-1-0", "image": image()}, "image_not_supported"),
        ({"seed": 3}, "invalid_option"),  # seedance-2-0 takes no seed
        ({"model": "happyhorse-1-0", "resolution": "480p"}, "invalid_option"),
        ({"duration": 2}, "invalid_option"),
        ({"model": "sora-9"}, "invalid_model"),
    ],
)
async def test_submit_refused_locally(make, server, request_kwargs, code):
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(
            GenerationRequest("a cat walks", **request_kwargs), idempotency_key="k"
        )
    assert (info.value.kind, info.value.code) == (ErrorKind.INVALID, code)
    assert server.seen == []


@pytest.mark.parametrize(
    ("data", "state", "code"),
    [
        ({"taskId": TASK, "status": "rendering"}, "running", None),
        ({"taskId": TASK, "status": "success", "output": []}, "failed", "no_output"),
        ({"taskId": TASK, "status": "fail"}, "failed", "TASK_FAILED"),
    ],
)
async def test_status_edge_cases(make, server, data, state, code):
    server.reply(200, {"code": 200, "message": "success", "data": data})
    status = await make(PID).status(TASK)
    assert (status.state, status.error_code, status.raw_state) == (state, code, data["status"])


@pytest.mark.parametrize("body", [{"code": 200, "data": None}, {"data": {"status": "queued"}}])
async def test_envelope_without_task_is_malformed(make, server, body):
    server.reply(200, body)
    with pytest.raises(ProviderError) as info:
        await make(PID).status(TASK)
    assert (info.value.kind, info.value.code) == (ErrorKind.TRANSIENT, "malformed")


def test_models_and_capabilities(make):
    provider = make(PID)
    assert provider.models() == ["seedance-2-0", "happyhorse-1-0"]
    assert provider.capabilities.idempotent_submit is True
