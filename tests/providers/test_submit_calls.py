"""Every adapter's submit in two halves: ``prepare_submit`` builds the request without
sending anything, ``send_submit`` sends a prepared one (again, unchanged); and what a
submit answer says about whether the provider may have made the task."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers import PROVIDER_IDS
from providers.base import Delivery, ErrorKind, GenerationRequest, ProviderError, SubmitCall
from tests.providers.conftest import image

# (provider, model): each gptge family answers a create in its own shape.
CASES = [(pid, None) for pid in PROVIDER_IDS if pid != "gptge"] + [
    ("gptge", "MiniMax-Hailuo-02"),
    ("gptge", "kling-v1"),
    ("gptge", "jimeng"),
]
CREATED: dict[str, Any] = {
    "higgsfield": {"success": True, "generation_id": "g-1", "type": "text-to-video"},
    "higgsfield_feed": {"id": "g-1"},
    "hiapi": {"code": 200, "message": "success", "data": {"taskId": "g-1"}},
    "foxapi": {"id": "g-1", "status": "pending"},
    "MiniMax-Hailuo-02": {"task_id": "g-1", "base_resp": {"status_code": 0, "status_msg": "ok"}},
    "kling-v1": {"code": 0, "message": "SUCCEED", "data": {"task_id": "g-1"}},
    "jimeng": {"code": 10000, "message": "Success", "data": {"task_id": "g-1"}},
}
REFUSED_IN_A_200: dict[str, Any] = {
    "higgsfield": {"success": False, "error": "insufficient credits"},
    "higgsfield_feed": {"code": 402, "message": "insufficient balance", "data": None},
    "hiapi": {"code": 402, "message": "insufficient balance", "data": None},
    "foxapi": {"error": {"message": "no balance", "type": "insufficient_quota"}},
    "MiniMax-Hailuo-02": {"task_id": "", "base_resp": {"status_code": 1008, "status_msg": "bal"}},
    "kling-v1": {"code": 1102, "message": "balance not enough", "data": None},
    "jimeng": {"code": 50412, "message": "input text risk", "data": None},
}


def request(pid: str, model: str | None) -> GenerationRequest:
    img = image() if pid == "higgsfield_feed" else None
    return GenerationRequest("a heron at dawn", model=model, image=img)


async def prepared(make, server, pid: str, model: str | None) -> SubmitCall:
    provider = make(pid)
    if pid == "higgsfield_feed":  # resolving the default motion is a read, not a submit
        server.reply(200, [{"id": "cd5bfd11-5a1a-46e0-9294-b22b0b733b1e", "name": "Face Punch"}])
    call = await provider.prepare_submit(request(pid, model))
    assert all(seen.method == "GET" for seen in server.seen), "prepare_submit sent a submit"
    return call


@pytest.mark.parametrize(("pid", "model"), CASES)
async def test_a_prepared_submit_is_sent_unchanged_every_time(make, server, pid, model) -> None:
    call = await prepared(make, server, pid, model)
    server.reply(200, CREATED[model or pid])
    provider = make(pid)
    assert await provider.send_submit(call, idempotency_key="reelbot-1-abc") == "g-1"
    assert await provider.send_submit(call, idempotency_key="reelbot-1-abc") == "g-1"
    first, second = server.seen[-2:]
    assert first.path == second.path == call.path
    assert first.body == second.body == json.loads(call.body)
    if pid == "hiapi":
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]


@pytest.mark.parametrize(("pid", "model"), CASES)
async def test_an_unusable_2xx_submit_answer_is_ambiguous(make, server, pid, model) -> None:
    call = await prepared(make, server, pid, model)
    server.reply(200, {"unexpected": "shape"})
    with pytest.raises(ProviderError) as info:
        await make(pid).send_submit(call, idempotency_key="k")
    assert info.value.delivery is Delivery.AMBIGUOUS


@pytest.mark.parametrize(("pid", "model"), CASES)
async def test_a_documented_refusal_in_a_200_is_refused(make, server, pid, model) -> None:
    call = await prepared(make, server, pid, model)
    server.reply(200, REFUSED_IN_A_200[model or pid])
    with pytest.raises(ProviderError) as info:
        await make(pid).send_submit(call, idempotency_key="k")
    assert info.value.delivery is Delivery.REFUSED
    assert info.value.kind is not ErrorKind.TRANSIENT or info.value.retryable


# What each adapter refuses itself (higgsfield checks nothing before sending).
CANNOT_HONOUR = {
    "higgsfield_feed": GenerationRequest("text only, but this API only animates images"),
    "hiapi": GenerationRequest("x", model="no-such-model"),
    "foxapi": GenerationRequest("x", model="kling-o3-image-to-video"),  # needs an image
    "gptge": GenerationRequest("x", model="MiniMax-Hailuo-02", duration=999),
}


@pytest.mark.parametrize("pid", CANNOT_HONOUR)
async def test_a_request_the_provider_cannot_honour_is_never_sent(make, server, pid) -> None:
    with pytest.raises(ProviderError) as info:
        await make(pid).prepare_submit(CANNOT_HONOUR[pid])
    assert info.value.delivery is Delivery.NOT_SENT and not info.value.retryable
    assert not [s for s in server.seen if s.method == "POST"]
