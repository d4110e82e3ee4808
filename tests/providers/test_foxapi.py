"""foxapi (unified task API: progress, credits, three result shapes)."""

from __future__ import annotations

import pytest

from providers.base import ErrorKind, GenerationRequest, Output, ProviderError, TrainingRequest
from providers.foxapi import URL_TTL_SECONDS, parse_task
from tests.providers.conftest import IMAGE_URL, fixture, fixture_names, image

PID = "foxapi"
TASK = "task-unified-1757165031-uyujaw3d"
CREATED = 1757165031
EXPIRES = float(CREATED + URL_TTL_SECONDS)

# fixture -> (state, raw_state, progress, credits, error_code, error_message, output urls)
STATUS = {
    "pending": ("queued", "pending", 0, 5.0, None, None, []),
    "processing": ("running", "processing", 65, 5.0, None, None, []),
    "completed": (
        "succeeded",
        "completed",
        100,
        5.0,
        None,
        None,
        [f"https://cdn.foxapi.cc/output/{TASK}.mp4"],
    ),
    "completed_string_results": (
        "succeeded",
        "completed",
        100,
        None,
        None,
        None,
        [f"https://cdn.example.com/videos/{TASK}.mp4"],
    ),
    "completed_output_object": (
        "succeeded",
        "completed",
        100,
        None,
        None,
        None,
        ["https://cdn.foxapi.cc/output/example.mp4"],
    ),
    "failed": (
        "failed",
        "failed",
        None,
        5.0,
        "generation_failed",
        "Video generation failed due to content policy violation",
        [],
    ),
}
# fixture -> (documented HTTP status, kind, code, retry_after)
ERRORS = {
    "not_found": (404, ErrorKind.NOT_FOUND, "404", None),
    "rate_limited": (429, ErrorKind.RATE_LIMITED, "429", 60.0),  # from fallback_suggestion
    "insufficient_quota": (402, ErrorKind.CREDITS, "402", None),
    "unsupported_options": (422, ErrorKind.INVALID, "unsupported_advanced_options", None),
}


def test_every_fixture_is_covered():
    assert set(fixture_names(PID)) == set(STATUS) | set(ERRORS) | {"submit"}


@pytest.mark.parametrize("name", sorted(STATUS))
async def test_status_fixtures(make, server, name):
    state, raw, progress, credits, code, message, urls = STATUS[name]
    server.reply(200, fixture(PID, name))
    status = await make(PID).status(TASK)
    assert (server.last.method, server.last.path) == ("GET", f"/v1/tasks/{TASK}")
    assert (status.state, status.raw_state, status.progress) == (state, raw, progress)
    assert (status.credits, status.error_code, status.error_message) == (credits, code, message)
    assert status.outputs == tuple(Output(kind="video", url=u, expires_at=EXPIRES) for u in urls)


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("served_as", ["documented", "http_200"])
@pytest.mark.parametrize("call", ["status", "submit"])
async def test_error_fixtures(make, server, name, served_as, call):
    http_status, kind, code, retry_after = ERRORS[name]
    body = fixture(PID, name)
    server.reply(200 if served_as == "http_200" else http_status, body)
    provider = make(PID)
    with pytest.raises(ProviderError) as info:
        if call == "status":
            await provider.status(TASK)
        else:
            await provider.submit(GenerationRequest("a cat"), idempotency_key="k")
    err = info.value
    assert (err.kind, err.code, err.message) == (kind, code, body["error"]["message"])
    assert err.retry_after == retry_after


async def test_cancelled_is_failed(make, server):
    body = dict(fixture(PID, "processing"), status="cancelled", error=None)
    server.reply(200, body)
    status = await make(PID).status(TASK)
    assert (status.state, status.error_code, status.raw_state) == (
        "failed",
        "cancelled",
        "cancelled",
    )
    assert status.error_message == "the task was cancelled"


@pytest.mark.parametrize(
    ("changes", "state", "progress", "code"),
    [
        ({"status": "upscaling", "progress": 150}, "running", 100, None),
        ({"status": "processing", "progress": "42"}, "running", 42, None),
        ({"status": "completed", "results": []}, "failed", None, "no_output"),
        ({"status": "completed", "results": [{"text": "hi"}]}, "failed", None, "no_output"),
    ],
)
async def test_status_edge_cases(make, server, changes, state, progress, code):
    server.reply(200, dict(fixture(PID, "processing"), **changes))
    status = await make(PID).status(TASK)
    assert (status.state, status.progress, status.error_code) == (state, progress, code)
    assert status.raw_state == changes["status"]
    assert status.credits == 5.0


def test_mixed_results_and_expiry_without_created():
    body = dict(fixture(PID, "completed"), created=None)
    body["results"] = [
        {"url": "https://x/v.mp4", "seed": 3},
        {"url": "https://x/f.jpg", "content_type": "image/jpeg"},
        42,
    ]
    status = parse_task(body, now=1000.0)
    assert [(o.kind, o.url, o.expires_at) for o in status.outputs] == [
        ("video", "https://x/v.mp4", 1000.0 + URL_TTL_SECONDS),
        ("image", "https://x/f.jpg", 1000.0 + URL_TTL_SECONDS),
    ]


# --- submit -----------------------------------------------------------------------------------
async def test_submit_fixture_and_body(make, server):
    server.reply(200, fixture(PID, "submit"))
    request = GenerationRequest(
        prompt="a cat",
        model="sora-2",
        image=image(),
        duration=8,
        aspect_ratio="9:16",
        resolution="720p",
        seed=11,
        character_id="char_abc",
    )
    assert await make(PID).submit(request, idempotency_key="k") == TASK
    seen = server.last
    assert (seen.method, seen.path) == ("POST", "/v1/videos/generations")
    assert seen.body == {
        "model": "sora-2",
        "prompt": "a cat",
        "image_urls": [IMAGE_URL],
        "duration": 8,
        "aspect_ratio": "9:16",
        "resolution": "720p",
        "seed": 11,
        "character_ids": ["char_abc"],
    }


@pytest.mark.parametrize(
    ("model", "with_image", "sent_model", "image_field"),
    [
        (None, False, "happyhorse-1.0-text-to-video", None),
        (None, True, "happyhorse-1.0-image-to-video", "image_url"),
        ("happyhorse-1.0-image-to-video", False, "happyhorse-1.0-text-to-video", None),
        ("wan-2.7-text-to-video", True, "wan-2.7-image-to-video", "image_urls"),
        ("veo3.1-fast", True, "veo3.1-fast", "image_url"),
        ("vidu-q3-pro", False, "vidu-q3-pro", None),
    ],
)
async def test_submit_model_and_image_field(
    make, server, model, with_image, sent_model, image_field
):
    server.reply(200, fixture(PID, "submit"))
    request = GenerationRequest("a cat", model=model, image=image() if with_image else None)
    await make(PID).submit(request, idempotency_key="k")
    body = server.last.body
    assert body["model"] == sent_model
    fields = {"image_url", "image_urls"} & set(body)
    assert fields == ({image_field} if image_field else set())
    if image_field == "image_url":
        assert body["image_url"] == IMAGE_URL


async def test_submit_i2v_only_model_without_image(make, server):
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(
            GenerationRequest("x", model="kling-o3-image-to-video"), idempotency_key="k"
        )
    assert (info.value.kind, info.value.code) == (ErrorKind.INVALID, "image_required")
    assert server.seen == []


async def test_submit_without_id_is_malformed(make, server):
    server.reply(200, {"status": "pending"})
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("x"), idempotency_key="k")
    assert info.value.code == "malformed"


# --- characters (sora-2-character) -------------------------------------------------------------
async def test_train_character_needs_a_clip(make, server):
    photos = [f"https://cdn.example/{i}.png" for i in range(20)]
    with pytest.raises(ProviderError) as info:
        await make(PID).train_character(TrainingRequest(name="Alice", image_urls=photos))
    assert (info.value.kind, info.value.code) == (ErrorKind.INVALID, "video_required")
    assert server.seen == []


async def test_train_character_from_clip(make, server):
    server.reply(200, dict(fixture(PID, "submit"), model="sora-2-character"))
    clip = "https://cdn.example/clip.mp4?sig=1"
    task_id = await make(PID).train_character(TrainingRequest(name="Alice", image_urls=[clip]))
    assert task_id == TASK
    assert server.last.body == {"model": "sora-2-character", "video_url": clip, "name": "Alice"}


async def test_character_status(make, server):
    body = dict(fixture(PID, "completed"), model="sora-2-character")
    body["results"] = [{"character_id": "char_uyujaw3d", "name": "Alice"}]
    server.reply(200, body)
    status = await make(PID).character_status(TASK)
    assert status.state == "succeeded"
    assert status.error_code is None
    assert status.outputs == (Output(kind="character", url=None, file_id="char_uyujaw3d"),)


def test_models(make):
    models = make(PID).models()
    assert models[0] == "happyhorse-1.0-text-to-video"
    assert "sora-2" in models and "sora-2-character" not in models
