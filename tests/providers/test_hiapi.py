"""hiapi (unified async task API with the {code, message, data} envelope)."""

from __future__ import annotations

import hashlib

import pytest

from providers.base import ErrorKind, GenerationRequest, Output, ProviderError
from providers.hiapi import HiapiProvider, parse_task
from providers.http import ProviderHttp
from tests.providers.conftest import API_KEY, IMAGE_URL, fixture, fixture_names, image

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


# error_code -> kind, as the SDK classifies it (errors.py ERROR_CODE_TO_CLASS and the
# class docstrings): the body's error_code decides before the HTTP status does.
BUSINESS_CODES = {
    "INVALID_REQUEST": ErrorKind.INVALID,
    "MODEL_UNAVAILABLE": ErrorKind.TRANSIENT,
    "TASK_FAILED": ErrorKind.INVALID,
    "TASK_TIMEOUT": ErrorKind.TRANSIENT,
    "STORAGE_UNAVAILABLE": ErrorKind.TRANSIENT,
    "IDEMPOTENCY_KEY_PROCESSING": ErrorKind.RATE_LIMITED,
}


# The SDK retries 429 and 503 by status before it reads the code ("rejected before
# processing, so retrying is safe"): those stay retryable whatever the code says.
SDK_RETRIED = {429: ErrorKind.RATE_LIMITED, 503: ErrorKind.TRANSIENT}


@pytest.mark.parametrize("error_code", sorted(BUSINESS_CODES))
@pytest.mark.parametrize("http_status", [400, 409, 422, 500, 429, 503, 200])
async def test_business_error_codes_before_http_status(make, server, error_code, http_status):
    """HTTP 400 + MODEL_UNAVAILABLE is a retry-later, not "invalid" (and so on); 200 is
    the same error inside the envelope, whose code then says 400."""
    code = 400 if http_status == 200 else http_status
    expected = SDK_RETRIED.get(http_status) or BUSINESS_CODES[error_code]
    body = {"code": code, "message": "nope", "data": None, "error_code": error_code}
    server.reply(http_status, body, headers={"Retry-After": "2"})
    for call in ("submit", "status"):
        provider = make(PID)
        with pytest.raises(ProviderError) as info:
            if call == "submit":
                await provider.submit(GenerationRequest("a cat walks"), idempotency_key="k")
            else:
                await provider.status(TASK)
        error = info.value
        assert (error.kind, error.code, error.message) == (expected, error_code, "nope"), call
        assert error.http_status == http_status
        if http_status != 200:
            assert error.retry_after == 2.0


@pytest.mark.parametrize("http_status", [422, 200, 409])
async def test_idempotency_key_mismatch_is_unconfirmed(make, server, http_status):
    """The key was used before with another body: HiAPI holds a task for it that we
    cannot see, so the submit is unconfirmed (the provider may be making and billing
    it), never retried (the same key + body would mismatch again) and not "invalid"."""
    code = 422 if http_status == 200 else http_status
    server.reply(
        http_status,
        {"code": code, "message": "key reused", "data": None,
         "error_code": "IDEMPOTENCY_KEY_MISMATCH"},
    )  # fmt: skip
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a cat walks"), idempotency_key="k")
    error = info.value
    assert error.code == "submit_unconfirmed" and not error.retryable
    assert "may already be" in error.message and "IDEMPOTENCY_KEY_MISMATCH" in error.message
    assert error.http_status == http_status


async def test_unknown_error_code_falls_back_to_http_status(make, server):
    server.reply(503, {"code": 503, "message": "busy", "data": None, "error_code": "NEW_ONE"})
    with pytest.raises(ProviderError) as info:
        await make(PID).status(TASK)
    assert (info.value.kind, info.value.code) == (ErrorKind.TRANSIENT, "NEW_ONE")


@pytest.mark.parametrize("http_status", [400, 200])
@pytest.mark.parametrize("junk", ["E" * 5000, "bad code\n<@everyone>", ""])
async def test_error_code_from_the_body_is_bounded(make, server, http_status, junk):
    body = {"code": 400, "message": "nope", "data": None, "error_code": junk}
    server.reply(http_status, body)
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a cat walks"), idempotency_key="k")
    assert info.value.kind is ErrorKind.INVALID
    assert info.value.code in ("400", "http_400")


def test_task_error_code_is_bounded():
    for junk in ("E" * 5000, "two words", 17):
        data = {"taskId": TASK, "status": "fail", "error": {"code": junk, "message": "m"}}
        assert parse_task(data).error_code == "TASK_FAILED"
    data = {"taskId": TASK, "status": "fail", "error": {"code": "TASK_TIMEOUT"}}
    assert parse_task(data).error_code == "TASK_TIMEOUT"


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_base_url_with_or_without_v1(session, server, suffix):
    """The SDK's own default form ends in /v1; both forms reach /v1/tasks."""
    http = ProviderHttp(
        session, provider_id=PID, base_url=server.base_url + suffix, api_key=API_KEY
    )
    provider = HiapiProvider(http)
    server.reply(200, fixture(PID, "submit"), method="POST", path="/v1/tasks")
    server.reply(200, fixture(PID, "queued"), method="GET", path=f"/v1/tasks/{TASK}")
    assert await provider.submit(GenerationRequest("a cat walks"), idempotency_key="k") == TASK
    assert (await provider.status(TASK)).state == "queued"
    assert [s.path for s in server.seen] == ["/v1/tasks", f"/v1/tasks/{TASK}"]


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
