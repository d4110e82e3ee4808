"""higgsfield (higgsfieldapi.com + official platform shapes) through the real adapter."""

from __future__ import annotations

import pytest

from providers.base import ErrorKind, GenerationRequest, ProviderError, TrainingRequest
from providers.parsing import MODERATION_MESSAGE, NO_OUTPUT_MESSAGE
from tests.providers.conftest import IMAGE_URL, assert_no_secret, fixture, fixture_names, image

PID = "higgsfield"
GEN_ID = "b2f6c1e4-6a0d-4c7e-9f21-3d5a7c9e0b11"
REQ_ID = "d7e6c0f3-6699-4f6c-bb45-2ad7fd9158ff"

# fixture -> (state, error_code, error_message, output urls)
STATUS = {
    "status_completed": (
        "succeeded",
        None,
        None,
        [f"https://cdn.higgsfieldapi.com/generations/{GEN_ID}.mp4"],
    ),
    "status_processing": ("running", None, None, []),
    "status_failed": ("failed", "failed", "Generation failed", []),
    "official_completed_video": ("succeeded", None, None, ["https://video.url/example.mp4"]),
    "official_in_progress": ("running", None, None, []),
    "official_submit_queued": ("queued", None, None, []),
    "official_failed": ("failed", "failed", "Generation fail message", []),
    "official_nsfw": ("failed", "nsfw", MODERATION_MESSAGE, []),
}
# fixture -> (HTTP status it is served with, expected kind)
ERRORS = {"not_found": (404, ErrorKind.NOT_FOUND), "rate_limited": (429, ErrorKind.RATE_LIMITED)}
SUBMITS = {"submit_t2v": GEN_ID, "submit_i2v": GEN_ID, "official_submit_queued": REQ_ID}


def test_every_fixture_is_covered():
    assert set(fixture_names(PID)) == set(STATUS) | set(ERRORS) | set(SUBMITS)


@pytest.mark.parametrize("name", sorted(STATUS))
async def test_status_fixtures(make, server, name):
    state, code, message, urls = STATUS[name]
    body = fixture(PID, name)
    server.reply(200, body)
    status = await make(PID).status(GEN_ID)
    assert server.last.method == "GET"
    assert server.last.path == f"/status/{GEN_ID}"
    assert status.state == state
    assert status.raw_state == body["status"]
    assert status.error_code == code
    assert status.error_message == message
    assert [o.url for o in status.outputs] == urls
    assert all(o.kind == "video" for o in status.outputs)
    assert status.progress == (100 if state == "succeeded" else None)
    assert status.credits is None


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("http_status", [None, 200])
async def test_error_fixtures(make, server, name, http_status):
    """Served with their HTTP status, and also inside an HTTP 200 (``success: false``)."""
    documented, kind = ERRORS[name]
    server.reply(http_status or documented, fixture(PID, name))
    with pytest.raises(ProviderError) as info:
        await make(PID).status(GEN_ID)
    assert info.value.kind is kind
    assert info.value.message == fixture(PID, name)["error"]
    assert_no_secret(info.value)


@pytest.mark.parametrize("name", sorted(SUBMITS))
async def test_submit_fixtures(make, server, name):
    server.reply(200, fixture(PID, name))
    assert await make(PID).submit(GenerationRequest("x"), idempotency_key="k") == SUBMITS[name]


async def test_submit_text_to_video_body(make, server):
    server.reply(200, fixture(PID, "submit_t2v"))
    request = GenerationRequest(
        prompt="A fashion influencer walking",
        duration=8,
        resolution="1080p",
        aspect_ratio="9:16",
        seed=42,
        character_id="soul-123",
    )
    await make(PID).submit(request, idempotency_key="reelbot-1")
    seen = server.last
    assert (seen.method, seen.path) == ("POST", "/generate")
    assert seen.body == {
        "type": "text-to-video",
        "prompt": "A fashion influencer walking",
        "duration": 8,
        "resolution": "1080p",
        "aspect_ratio": "9:16",
        "seed": 42,
        "model_id": "soul-123",
    }
    assert "Idempotency-Key" not in seen.headers


async def test_submit_image_to_video_body(make, server):
    server.reply(200, fixture(PID, "submit_i2v"))
    await make(PID).submit(GenerationRequest("dolly", image=image()), idempotency_key="k")
    assert server.last.body == {
        "type": "image-to-video",
        "prompt": "dolly",
        "image_url": IMAGE_URL,
        "camera_fixed": False,
    }


async def test_submit_image_without_url_sends_data_url(make, server):
    server.reply(200, fixture(PID, "submit_i2v"))
    await make(PID).submit(GenerationRequest("x", image=image(url=None)), idempotency_key="k")
    assert server.last.body["image_url"].startswith("data:image/png;base64,iVBOR")


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        ({"success": False, "error": "Insufficient credits"}, ErrorKind.CREDITS, "credits"),
        ({"success": False, "error": "Invalid API key"}, ErrorKind.AUTH, "auth"),
        ({"success": False, "error": "prompt is required"}, ErrorKind.INVALID, "invalid"),
        ({"success": True, "type": "text-to-video"}, ErrorKind.TRANSIENT, "malformed"),
    ],
)
async def test_submit_refusals(make, server, answer, kind, code):
    server.reply(200, answer)
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("x"), idempotency_key="k")
    assert (info.value.kind, info.value.code, info.value.http_status) == (kind, code, 200)


@pytest.mark.parametrize(
    ("body", "state", "code"),
    [
        ({"status": "warming_up"}, "running", None),
        ({"status": "pending"}, "queued", None),
        ({"status": "canceled"}, "failed", "cancelled"),
        ({"status": "completed", "type": "text-to-video"}, "failed", "no_output"),
        ({"success": False, "error": "something odd"}, "failed", "provider_error"),
    ],
)
async def test_status_edge_cases(make, server, body, state, code):
    server.reply(200, body)
    status = await make(PID).status("g1")
    assert (status.state, status.error_code) == (state, code)
    assert status.raw_state == body.get("status")
    if code == "no_output":
        assert status.error_message == NO_OUTPUT_MESSAGE


async def test_official_images_output(make, server):
    server.reply(200, {"status": "completed", "images": [{"url": "https://x/1.png"}, {}]})
    status = await make(PID).status("g1")
    assert [(o.kind, o.url) for o in status.outputs] == [("image", "https://x/1.png")]


async def test_status_id_is_escaped_into_the_path(make, server):
    server.reply(200, {"status": "queued"})
    await make(PID).status("../../admin?x=1")
    assert server.last.raw_path.startswith("/status/..%2F..%2Fadmin%3Fx")  # one segment
    assert server.last.query == {}


# --- characters (Soul ID) -----------------------------------------------------------------
async def test_train_character(make, server):
    server.reply(200, {"model_id": "soul-1", "status": "queued"})
    urls = [f"https://cdn.example/{i}.png" for i in range(20)]
    model_id = await make(PID).train_character(TrainingRequest(name="ava", image_urls=urls))
    assert model_id == "soul-1"
    assert (server.last.method, server.last.path) == ("POST", "/soul/train")
    assert server.last.body == {"name": "ava", "images": urls}


async def test_train_character_refused(make, server):
    server.reply(200, {"success": False, "error": "images must contain 20-50 image URLs"})
    with pytest.raises(ProviderError) as info:
        await make(PID).train_character(TrainingRequest(name="ava", image_urls=["u"]))
    assert info.value.kind is ErrorKind.INVALID


@pytest.mark.parametrize(
    ("word", "state", "code", "message"),
    [
        ("queued", "queued", None, None),
        ("training", "running", None, None),
        ("ready", "succeeded", None, None),
        ("failed", "failed", "training_failed", "too few faces"),
        ("mystery", "running", None, None),
    ],
)
async def test_character_status(make, server, word, state, code, message):
    server.reply(200, {"model_id": "soul-1", "status": word, "error": message})
    status = await make(PID).character_status("soul-1")
    assert server.last.path == "/soul/models/soul-1"
    assert (status.state, status.error_code, status.error_message) == (state, code, message)
    assert status.outputs == ()
    assert status.raw_state == word


@pytest.mark.parametrize(
    ("reply", "deleted"),
    [
        ({"status": 200, "body": {"success": True}}, True),
        ({"status": 204, "text": "", "content_type": "text/plain"}, True),
        ({"status": 404, "body": {"success": False, "error": "Model not found"}}, False),
        ({"status": 405, "text": "Method Not Allowed", "content_type": "text/plain"}, False),
    ],
)
async def test_delete_character(make, server, reply, deleted):
    server.reply(**reply)
    assert await make(PID).delete_character("soul-1") is deleted
    assert (server.last.method, server.last.path) == ("DELETE", "/soul/models/soul-1")


async def test_cancel_is_not_offered(make, server):
    assert await make(PID).cancel("g1") is False
    assert server.seen == []
    assert make(PID).models() == []
