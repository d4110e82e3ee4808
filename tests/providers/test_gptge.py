"""gptge (api.gpt.ge: MiniMax/Hailuo, Kling, Jimeng; status shapes sniffed per family)."""

from __future__ import annotations

import base64
import calendar
import time

import pytest

from providers.base import ErrorKind, GenerationRequest, Output, ProviderError
from providers.parsing import MODERATION_MESSAGE
from tests.providers.conftest import IMAGE_URL, PNG, fixture, fixture_names, image

PID = "gptge"
DOUBAO_URL = fixture(PID, "doubao_succeeded")["content"]["video_url"]
DOUBAO_EXPIRES = float(calendar.timegm(time.strptime("20250701T170758Z", "%Y%m%dT%H%M%SZ")) + 86400)
JIMENG_URL = "https://v9-artist.vlabvod.com/out/14117763723766220057.mp4"
KLING_URL = "https://cdn.klingai.com/bs2/upload-kling-api/example.mp4"
PNG_B64 = fixture(PID, "success_base64")["data"]["binary_data_base64"][0]

# fixture -> (state, raw_state, error_code, error_message, outputs)
STATUS = {
    "doubao_succeeded": (
        "succeeded",
        "succeeded",
        None,
        None,
        (Output(kind="video", url=DOUBAO_URL, expires_at=DOUBAO_EXPIRES),),
    ),
    "jimeng_done": ("succeeded", "done", None, None, (Output(kind="video", url=JIMENG_URL),)),
    "kling_succeed": ("succeeded", "succeed", None, None, (Output(kind="video", url=KLING_URL),)),
    "success_video_url": (
        "succeeded",
        "Success",
        None,
        None,
        (Output(kind="video", url=JIMENG_URL),),
    ),
    "success_base64": (
        "succeeded",
        "Success",
        None,
        None,
        (Output(kind="image", data_base64=PNG_B64, content_type="image/png"),),
    ),
    "success_file_id": (
        "succeeded",
        "Success",
        None,
        None,
        (Output(kind="video", file_id="314053136425242", content_type="video/mp4"),),
    ),
    "processing": ("running", "Processing", None, None, ()),
    "minimax_processing": ("running", "Processing", None, None, ()),
    "minimax_failed": ("failed", "Fail", "1026", MODERATION_MESSAGE, ()),
    "failed": ("failed", "Failed", "50500", MODERATION_MESSAGE, ()),
}
# fixture -> (documented HTTP status, kind, code)
ERRORS = {
    "not_found": (404, ErrorKind.NOT_FOUND, "task_not_exist"),
    "rate_limited": (429, ErrorKind.RATE_LIMITED, "rate_limit_exceeded"),
}
SUBMITS = {"submit_minimax", "submit_jimeng", "files_retrieve"}


def test_every_fixture_is_covered():
    assert set(fixture_names(PID)) == set(STATUS) | set(ERRORS) | SUBMITS


@pytest.mark.parametrize("name", sorted(STATUS))
async def test_status_fixtures(make, server, name):
    state, raw, code, message, outputs = STATUS[name]
    server.reply(200, fixture(PID, name))
    status = await make(PID).status("314052875571396")
    assert (server.last.method, server.last.path) == ("GET", "/task/314052875571396")
    assert (status.state, status.raw_state) == (state, raw)
    assert (status.error_code, status.error_message) == (code, message)
    assert status.outputs == outputs
    assert status.progress == (100 if state == "succeeded" else None)


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("served_as", ["documented", "http_200"])
async def test_error_fixtures(make, server, name, served_as):
    http_status, kind, code = ERRORS[name]
    body = fixture(PID, name)
    server.reply(200 if served_as == "http_200" else http_status, body)
    with pytest.raises(ProviderError) as info:
        await make(PID).status("t1")
    assert (info.value.kind, info.value.code, info.value.message) == (
        kind,
        code,
        body["error"]["message"],
    )


async def test_resolve_file_id(make, server):
    server.reply(200, fixture(PID, "files_retrieve"))
    output = Output(kind="video", file_id="313992866418884", content_type="video/mp4")
    resolved = await make(PID).resolve_output(output)
    assert (server.last.method, server.last.path) == ("GET", "/task/minimax/v1/files/retrieve")
    assert server.last.query == {"file_id": "313992866418884"}
    assert resolved == Output(
        kind="video",
        url=fixture(PID, "files_retrieve")["file"]["download_url"],
        content_type="video/mp4",
    )


async def test_resolve_leaves_url_outputs_alone(make, server):
    output = Output(kind="video", url="https://x/v.mp4")
    assert await make(PID).resolve_output(output) is output
    assert server.seen == []


@pytest.mark.parametrize(
    ("base_resp", "kind"),
    [
        ({"status_code": 1004, "status_msg": "no"}, ErrorKind.AUTH),
        ({"status_code": 2013, "status_msg": "bad"}, ErrorKind.INVALID),
    ],
)
async def test_resolve_errors(make, server, base_resp, kind):
    server.reply(200, {"file": None, "base_resp": base_resp})
    with pytest.raises(ProviderError) as info:
        await make(PID).resolve_output(Output(kind="video", file_id="1"))
    assert info.value.kind is kind


# --- envelope codes on status -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1002, ErrorKind.RATE_LIMITED),
        (1004, ErrorKind.AUTH),
        (1008, ErrorKind.CREDITS),
        (1001, ErrorKind.TRANSIENT),
    ],
)
async def test_minimax_codes_raise(make, server, code, kind):
    body = dict(
        fixture(PID, "minimax_processing"), base_resp={"status_code": code, "status_msg": "x"}
    )
    server.reply(200, body)
    with pytest.raises(ProviderError) as info:
        await make(PID).status("t1")
    assert (info.value.kind, info.value.code, info.value.http_status) == (kind, str(code), 200)


async def test_minimax_other_code_fails_the_task(make, server):
    body = dict(
        fixture(PID, "minimax_processing"),
        status="Fail",
        base_resp={"status_code": 2013, "status_msg": "invalid params"},
    )
    server.reply(200, body)
    status = await make(PID).status("t1")
    assert (status.state, status.error_code, status.error_message) == (
        "failed",
        "2013",
        "invalid params",
    )


@pytest.mark.parametrize(("code", "state"), [(50412, "failed"), (50413, "failed")])
async def test_jimeng_moderation_codes(make, server, code, state):
    server.reply(200, dict(fixture(PID, "failed"), code=code))
    status = await make(PID).status("t1")
    assert (status.state, status.error_code, status.error_message) == (
        state,
        str(code),
        MODERATION_MESSAGE,
    )


async def test_jimeng_rate_code_raises(make, server):
    server.reply(200, dict(fixture(PID, "processing"), code=50429, message="QPS limit"))
    with pytest.raises(ProviderError) as info:
        await make(PID).status("t1")
    assert info.value.kind is ErrorKind.RATE_LIMITED


@pytest.mark.parametrize(
    ("body", "state", "raw", "code"),
    [
        ({"code": 0, "data": {"status": "Rendering"}}, "running", "Rendering", None),
        ({"code": 10000, "data": {"status": "in_queue"}}, "queued", "in_queue", None),
        ({"code": 10000, "data": {"status": "expired"}}, "failed", "expired", "expired"),
        (
            {"code": 0, "data": {"status": "Success", "video_url": ""}},
            "failed",
            "Success",
            "no_output",
        ),
        (
            {
                "code": 0,
                "message": "SUCCEED",
                "data": {"task_status": "failed", "task_status_msg": "Kling refused"},
            },
            "failed",
            "failed",
            "failed",
        ),
        ({"code": 0, "data": {"task_status": "submitted"}}, "queued", "submitted", None),
        (
            {
                "request_id": "r",
                "output": {"task_status": "SUCCEEDED", "video_url": "https://dashscope/x.mp4"},
            },
            "succeeded",
            "SUCCEEDED",
            None,
        ),
        ({"request_id": "r", "output": {"task_status": "RUNNING"}}, "running", "RUNNING", None),
        ({"id": "cgt-1", "status": "queued", "content": {}}, "queued", "queued", None),
        (
            {
                "task_id": "1",
                "status": "Preparing",
                "file_id": "",
                "base_resp": {"status_code": 0, "status_msg": "success"},
            },
            "running",
            "Preparing",
            None,
        ),
        (
            {
                "code": 0,
                "data": {"status": "Success", "resp_data": '{"video_url": "https://x/resp.mp4"}'},
            },
            "succeeded",
            "Success",
            None,
        ),
    ],
)
async def test_sniffed_shapes(make, server, body, state, raw, code):
    server.reply(200, body)
    status = await make(PID).status("t1")
    assert (status.state, status.raw_state, status.error_code) == (state, raw, code)
    if raw == "failed":
        assert status.error_message == "Kling refused"


async def test_no_recognisable_shape_is_malformed(make, server):
    server.reply(200, {"hello": "world"})
    with pytest.raises(ProviderError) as info:
        await make(PID).status("t1")
    assert info.value.code == "malformed"


# --- submit -----------------------------------------------------------------------------------
async def test_submit_minimax(make, server):
    server.reply(200, fixture(PID, "submit_minimax"))
    request = GenerationRequest("a cat", image=image(), duration=6, resolution="720p")
    assert await make(PID).submit(request, idempotency_key="k") == "106916112212032"
    seen = server.last
    assert (seen.method, seen.path) == ("POST", "/task/minimax/v1/video_generation")
    assert seen.body == {
        "model": "MiniMax-Hailuo-2.3",
        "prompt": "a cat",
        "duration": 6,
        "resolution": "720P",
        "first_frame_image": IMAGE_URL,
    }


async def test_submit_minimax_defaults_and_480p(make, server):
    server.reply(200, fixture(PID, "submit_minimax"))
    await make(PID).submit(
        GenerationRequest("a cat", model="T2V-01", resolution="480p"), idempotency_key="k"
    )
    assert server.last.body == {
        "model": "T2V-01",
        "prompt": "a cat",
        "duration": 6,
        "resolution": "512P",
    }


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1002, ErrorKind.RATE_LIMITED),
        (1004, ErrorKind.AUTH),
        (1008, ErrorKind.CREDITS),
        (1026, ErrorKind.MODERATION),
        (2013, ErrorKind.INVALID),
    ],
)
async def test_submit_minimax_base_resp(make, server, code, kind):
    server.reply(200, {"task_id": "", "base_resp": {"status_code": code, "status_msg": "m"}})
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a cat"), idempotency_key="k")
    assert (info.value.kind, info.value.code, info.value.http_status) == (kind, str(code), 200)


async def test_submit_jimeng(make, server):
    server.reply(200, fixture(PID, "submit_jimeng"))
    request = GenerationRequest(
        "a cat", model="jimeng", seed=5, aspect_ratio="9:16", image=image(url=None)
    )
    assert await make(PID).submit(request, idempotency_key="k") == "14117763723766220057"
    assert server.last.path == "/task/jimeng/image2video"
    assert server.last.body == {
        "prompt": "a cat",
        "seed": 5,
        "aspect_ratio": "9:16",
        "binary_data_base64": [base64.b64encode(PNG).decode()],
    }


async def test_submit_jimeng_moderation(make, server):
    server.reply(200, {"code": 50412, "data": None, "message": "Input text risk"})
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a cat", model="jimeng"), idempotency_key="k")
    assert (info.value.kind, info.value.code) == (ErrorKind.MODERATION, "50412")
    assert info.value.message == MODERATION_MESSAGE


@pytest.mark.parametrize("with_image", [False, True])
async def test_submit_kling(make, server, with_image):
    answer = {
        "code": 0,
        "message": "SUCCEED",
        "request_id": "r",
        "data": {"task_id": "CjNQtmctxFMAAAAAAGZ1Vw", "task_status": "submitted"},
    }
    server.reply(200, answer)
    request = GenerationRequest(
        "a cat",
        model="kling-v2-5-turbo",
        duration=10,
        aspect_ratio="1:1",
        negative_prompt="blur",
        image=image() if with_image else None,
    )
    assert await make(PID).submit(request, idempotency_key="k") == "CjNQtmctxFMAAAAAAGZ1Vw"
    action = "image2video" if with_image else "text2video"
    assert server.last.path == f"/kling/v1/videos/{action}"
    expected = {
        "model_name": "kling-v2-5-turbo",
        "prompt": "a cat",
        "negative_prompt": "blur",
        "aspect_ratio": "1:1",
        "duration": "10",
    }
    if with_image:
        expected["image"] = IMAGE_URL
    assert server.last.body == expected


async def test_submit_kling_rate_code(make, server):
    server.reply(200, {"code": 1302, "message": "too fast", "data": None})
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("a", model="kling-v1"), idempotency_key="k")
    assert info.value.kind is ErrorKind.RATE_LIMITED


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({"seed": 1}, "unsupported_option"),  # MiniMax takes no seed
        ({"model": "kling-v1", "resolution": "720p"}, "unsupported_option"),
        ({"model": "jimeng", "duration": 5}, "unsupported_option"),
        ({"duration": 5}, "invalid_option"),  # MiniMax: 6 or 10
        ({"duration": 10, "resolution": "1080p"}, "invalid_option"),
        ({"model": "kling-v1", "duration": 7}, "invalid_option"),
        ({"model": "I2V-01"}, "image_required"),
        ({"model": "T2V-01", "image": image()}, "image_not_supported"),
        ({"model": "jimeng", "prompt": "x" * 151}, "prompt_too_long"),
        ({"model": "doubao-seedance-1-0-pro-250528"}, "invalid_model"),
    ],
)
async def test_submit_refused_locally(make, server, request_kwargs, code):
    kwargs = {"prompt": "a cat", **request_kwargs}
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest(**kwargs), idempotency_key="k")
    assert (info.value.kind, info.value.code, info.value.http_status) == (
        ErrorKind.INVALID,
        code,
        None,
    )
    assert server.seen == []


def test_models(make):
    models = make(PID).models()
    assert models[0] == "MiniMax-Hailuo-2.3"
    assert {"kling-v2-5-turbo", "jimeng", "I2V-01-live"} <= set(models)
