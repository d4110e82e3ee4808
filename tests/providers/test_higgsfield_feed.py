"""higgsfield_feed (Higgsfield via aggregator; yutoai and Unifically shapes)."""

from __future__ import annotations

import copy

import pytest

from providers.base import ErrorKind, GenerationRequest, Motion, ProviderError
from providers.higgsfield_feed import DEFAULT_MOTION
from providers.parsing import MODERATION_MESSAGE
from tests.providers.conftest import IMAGE_URL, fixture, fixture_names, image

PID = "higgsfield_feed"
TASK = "aca6c73e-aa4c-47bb-aa62-a100a0f7dd22"
VIDEO = (
    "https://d8j0ntlcm91z4.cloudfront.net/user_2xIzuhTaLzSSkbGluAOou1fpp32/"
    "5c0ac5f8-b3ff-4161-a77b-c248f02bfeca.mp4"
)
UNIFICALLY_VIDEO = (
    "https://cdn.higgsfield.ai/user_30zROwRpMuD54ShPBakpXT41R5f/"
    "a7e78a11-794c-4d73-b224-89c8d746ed07.mp4"
)
FACE_PUNCH = "cd5bfd11-5a1a-46e0-9294-b22b0b733b1e"

# fixture -> (state, raw_state, error_code, error_message, output urls)
STATUS = {
    "queued": ("queued", "queued", None, None, []),
    "running": ("running", "in_progress", None, None, []),
    "success": ("succeeded", "completed", None, None, [VIDEO]),
    "failure": ("failed", "failed", "failed", "Generation failed", []),
    "unifically_completed": ("succeeded", "completed", None, None, [UNIFICALLY_VIDEO]),
}
ERRORS = {"not_found": (404, ErrorKind.NOT_FOUND), "rate_limited": (429, ErrorKind.RATE_LIMITED)}
SUBMITS = {"submit": TASK, "submit_unifically": "cc038613-e320-4b5e-86e9-cc285580a01e"}


def feed(*statuses: str) -> dict:
    body = copy.deepcopy(fixture(PID, "running"))
    job = body["jobs"][0]
    body["jobs"] = [dict(job, id=f"job-{i}", status=s) for i, s in enumerate(statuses)]
    return body


def test_every_fixture_is_covered():
    assert set(fixture_names(PID)) == set(STATUS) | set(ERRORS) | set(SUBMITS)


@pytest.mark.parametrize("name", sorted(STATUS))
async def test_status_fixtures(make, server, name):
    state, raw, code, message, urls = STATUS[name]
    server.reply(200, fixture(PID, name))
    status = await make(PID).status(TASK)
    seen = server.last
    assert (seen.method, seen.path, seen.body) == (
        "POST",
        f"/higgsfield/feed/{TASK}",
        {"task_id": TASK},
    )
    assert (status.state, status.raw_state) == (state, raw)
    assert (status.error_code, status.error_message) == (code, message)
    assert [o.url for o in status.outputs] == urls  # the _min preview is not an output
    assert all(o.kind == "video" and o.expires_at is None for o in status.outputs)
    assert status.progress == (100 if state == "succeeded" else None)


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("http_status", [None, 200])
async def test_error_fixtures(make, server, name, http_status):
    documented, kind = ERRORS[name]
    body = fixture(PID, name)
    server.reply(http_status or documented, body)
    with pytest.raises(ProviderError) as info:
        await make(PID).status(TASK)
    assert info.value.kind is kind
    assert info.value.code == body["error"]["code"]
    assert info.value.message == body["error"]["message"]


@pytest.mark.parametrize(
    ("statuses", "state", "raw", "code"),
    [
        ((), "queued", None, None),
        (("warming",), "running", "warming", None),
        (("nsfw",), "failed", "nsfw", "nsfw"),
        (("canceled",), "failed", "canceled", "cancelled"),
        (("completed", "in_progress"), "running", "in_progress", None),
        (("completed", "queued"), "running", "completed", None),
        (("queued", "queued"), "queued", "queued", None),
        (("completed", "failed"), "failed", "failed", "failed"),
    ],
)
async def test_job_aggregation(make, server, statuses, state, raw, code):
    server.reply(200, feed(*statuses))
    status = await make(PID).status(TASK)
    assert (status.state, status.raw_state, status.error_code) == (state, raw, code)
    if code == "nsfw":
        assert status.error_message == MODERATION_MESSAGE


async def test_completed_without_url_is_no_output(make, server):
    server.reply(200, feed("completed"))
    status = await make(PID).status(TASK)
    assert (status.state, status.error_code) == ("failed", "no_output")


async def test_result_url_is_the_fallback(make, server):
    body = fixture(PID, "success")
    body["jobs"][0]["results"] = None
    server.reply(200, body)
    status = await make(PID).status(TASK)
    assert [o.url for o in status.outputs] == [VIDEO]


async def test_unifically_get_feed_after_405(make, server):
    server.reply(
        405,
        text="Method Not Allowed",
        content_type="text/plain",
        method="POST",
        path=f"/higgsfield/feed/{TASK}",
    )
    server.reply(
        200, fixture(PID, "unifically_completed"), method="GET", path=f"/higgsfield/feed/{TASK}"
    )
    provider = make(PID)
    assert (await provider.status(TASK)).state == "succeeded"
    assert [s.method for s in server.seen] == ["POST", "GET"]
    await provider.status(TASK)  # remembered: straight to GET
    assert [s.method for s in server.seen] == ["POST", "GET", "GET"]


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"status": "pending"}, "queued"),
        ({"status": "processing"}, "running"),
        ({"status": "failed", "error": {"message": "bad image"}}, "failed"),
    ],
)
async def test_unifically_states(make, server, data, state):
    server.reply(200, {"code": 200, "data": data})
    status = await make(PID).status(TASK)
    assert status.state == state
    if state == "failed":
        assert status.error_message == "bad image"


async def test_unifically_error_code(make, server):
    server.reply(200, {"code": 429, "data": {"error": {"message": "busy"}}})
    with pytest.raises(ProviderError) as info:
        await make(PID).status(TASK)
    assert (info.value.kind, info.value.message) == (ErrorKind.RATE_LIMITED, "busy")


# --- submit ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SUBMITS))
async def test_submit_fixtures(make, server, name):
    server.reply(200, fixture(PID, name))
    task_id = await make(PID).submit(GenerationRequest("x", image=image()), idempotency_key="k")
    assert task_id == SUBMITS[name]


@pytest.mark.parametrize(
    ("aspect_ratio", "size"), [("16:9", (1312, 736)), ("9:16", (736, 1312)), ("1:1", (1024, 1024))]
)
async def test_submit_body(make, server, aspect_ratio, size):
    server.reply(200, fixture(PID, "submit"))
    request = GenerationRequest(
        prompt="The white cat throws a punch",
        model="standard",
        image=image(),
        seed=374487,
        aspect_ratio=aspect_ratio,
        motion=FACE_PUNCH,
    )
    await make(PID).submit(request, idempotency_key="k")
    assert (server.last.method, server.last.path) == ("POST", "/higgsfield/generate")
    assert server.last.body == {
        "model": "standard",
        "motion_id": FACE_PUNCH,
        "prompt": "The white cat throws a punch",
        "enhance_prompt": True,
        "image": [IMAGE_URL],
        "seed": 374487,
        "width": size[0],
        "height": size[1],
    }


async def test_submit_defaults(make, server):
    server.reply(200, fixture(PID, "submit"))
    await make(PID).submit(GenerationRequest("x", image=image()), idempotency_key="k")
    assert server.last.body["model"] == "turbo"
    assert server.last.body["motion_id"] == DEFAULT_MOTION.id == FACE_PUNCH
    assert "width" not in server.last.body and "seed" not in server.last.body
    assert len(server.seen) == 1  # no motion lookup needed


MOTIONS = [
    {"id": "5e9d2b7c-1a4f-4c3e-8b6d-7f0a2c9e4d13", "name": "Dolly Out", "priority": 80},
    {"id": "0f3a5c2e-7b1d-4e8a-9c6f-2d4b8e1a3c57", "name": "Dolly In Fast", "priority": 90},
    {"name": "no id"},
    "junk",
]


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("dolly out", "5e9d2b7c-1a4f-4c3e-8b6d-7f0a2c9e4d13"),  # exact name wins
        ("Dolly", "5e9d2b7c-1a4f-4c3e-8b6d-7f0a2c9e4d13"),  # else the first match
    ],
)
async def test_submit_motion_by_name(make, server, wanted, expected):
    server.reply(200, MOTIONS, method="GET", path="/higgsfield/tpl/motions")
    server.reply(200, fixture(PID, "submit"), method="POST", path="/higgsfield/generate")
    await make(PID).submit(
        GenerationRequest("x", image=image(), motion=wanted), idempotency_key="k"
    )
    lookup, generate = server.seen
    assert lookup.query == {"size": "30", "search": wanted}
    assert generate.body["motion_id"] == expected


async def test_submit_unknown_motion(make, server):
    server.reply(200, [], method="GET", path="/higgsfield/tpl/motions")
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(
            GenerationRequest("x", image=image(), motion="Moonwalk"), idempotency_key="k"
        )
    assert (info.value.kind, info.value.code) == (ErrorKind.INVALID, "unknown_motion")
    assert [s.method for s in server.seen] == ["GET"]  # nothing submitted


async def test_motions(make, server):
    server.reply(200, {"data": MOTIONS})
    motions = await make(PID).motions("dolly")
    assert motions == [
        Motion("5e9d2b7c-1a4f-4c3e-8b6d-7f0a2c9e4d13", "Dolly Out"),
        Motion("0f3a5c2e-7b1d-4e8a-9c6f-2d4b8e1a3c57", "Dolly In Fast"),
    ]
    assert server.last.query == {"size": "30", "search": "dolly"}


@pytest.mark.parametrize(
    ("request_kwargs", "code"),
    [
        ({}, "image_required"),
        ({"image": image(), "seed": 0}, "invalid_seed"),
        ({"image": image(), "model": "ultra"}, "invalid_model"),
        ({"image": image(), "aspect_ratio": "4:3"}, "invalid_aspect_ratio"),
    ],
)
async def test_submit_refused_locally(make, server, request_kwargs, code):
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("x", **request_kwargs), idempotency_key="k")
    assert (info.value.kind, info.value.code, info.value.http_status) == (
        ErrorKind.INVALID,
        code,
        None,
    )
    assert server.seen == []


async def test_submit_without_id_is_malformed(make, server):
    server.reply(200, {"code": 200, "data": {"error": {}}})
    with pytest.raises(ProviderError) as info:
        await make(PID).submit(GenerationRequest("x", image=image()), idempotency_key="k")
    assert info.value.code == "malformed"


def test_models_and_capabilities(make):
    provider = make(PID)
    assert provider.models() == ["turbo", "standard", "lite"]
    assert provider.default_model() == "turbo"
    caps = provider.capabilities
    assert (caps.text_to_video, caps.image_to_video) == (False, True)
    assert caps.options == {"aspect_ratio", "seed", "motion"}
