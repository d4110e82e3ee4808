"""The provider doubles' hostile network: answers in pieces, slow answers, and submits
that create their task and then lose the answer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from doubles.providers import ProviderDouble, Step, make_double
from doubles.providers.wire import Wire

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {"model": "sora-2", "prompt": "a fox"}


@pytest.fixture
async def fox() -> AsyncIterator[ProviderDouble]:
    async with make_double("foxapi", api_key=KEY) as double:
        yield double


async def pieces(resp: aiohttp.ClientResponse) -> list[bytes]:
    """The body as the client's buffer saw it arrive."""
    got = []
    while chunk := await resp.content.readany():
        got.append(chunk)
    return got


async def test_answers_arrive_in_pieces_by_default(fox: ProviderDouble) -> None:
    url = f"{fox.base_url}/v1/videos/generations"
    async with aiohttp.ClientSession() as session, session.post(url, json=BODY, headers=AUTH) as r:
        got = await pieces(r)
    assert len(got) > 1, "the answer came in one piece"
    assert json.loads(b"".join(got))["status"] == "pending"


async def test_error_answers_arrive_in_pieces_too(fox: ProviderDouble) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{fox.base_url}/v1/tasks/x") as r:
        got = await pieces(r)
    assert r.status == 401 and len(got) > 1


async def test_whole_and_slow_wires(fox: ProviderDouble) -> None:
    url = f"{fox.base_url}/v1/videos/generations"
    async with aiohttp.ClientSession() as session:
        fox.wire = Wire.whole()
        async with session.post(url, json=BODY, headers=AUTH) as r:
            assert len(await pieces(r)) == 1
        fox.wire = Wire.slow(0.3)
        began = time.monotonic()
        async with session.post(url, json=BODY, headers=AUTH) as r:
            await r.json()
        assert time.monotonic() - began >= 0.25


@pytest.mark.parametrize("aftermath", ["bad_gateway", "close", "truncated"])
async def test_a_submit_can_create_its_task_and_lose_the_answer(
    fox: ProviderDouble, aftermath: str
) -> None:
    fox.after_create(aftermath)
    url = f"{fox.base_url}/v1/videos/generations"
    async with aiohttp.ClientSession() as session:
        if aftermath == "bad_gateway":
            async with session.post(url, json=BODY, headers=AUTH) as r:
                assert r.status == 502 and "<html>" in await r.text()
        else:
            with pytest.raises(aiohttp.ClientError):
                async with session.post(url, json=BODY, headers=AUTH) as r:
                    await r.read()
        assert len(fox.tasks) == 1 and fox.aftermaths_done == [aftermath]
        async with session.post(url, json=BODY, headers=AUTH) as r:  # the next is normal
            assert r.status == 200
    assert len(fox.tasks) == 2


async def test_unknown_aftermath_is_refused(fox: ProviderDouble) -> None:
    with pytest.raises(ValueError, match="aftermath"):
        fox.after_create("explode")


async def test_huge_base64_and_long_urls_can_be_scripted() -> None:
    async with make_double("gptge", api_key=KEY) as gptge, aiohttp.ClientSession() as session:
        gptge.script_next([Step.succeed(form="base64", large_bytes=1_000_000)])
        gptge.script_next([Step.succeed(url_length=2500)])
        ids = []
        for _ in range(2):
            async with session.post(
                f"{gptge.base_url}/task/jimeng/text2video", json={"prompt": "p"}, headers=AUTH
            ) as r:
                ids.append((await r.json())["data"]["task_id"])
        async with session.get(f"{gptge.base_url}/task/{ids[0]}", headers=AUTH) as r:
            raw = await r.read()
        assert len(raw) > 1_300_000
        async with session.get(f"{gptge.base_url}/task/{ids[1]}", headers=AUTH) as r:
            assert len((await r.json())["data"]["video_url"]) == 2500
