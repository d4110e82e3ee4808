"""The callback endpoint on its own (reelbot/callbacks.py), with a stand-in store."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from doubles.providers.hiapi import sign_callback
from providers import hiapi_webhook
from reelbot.callbacks import MAX_BODY_BYTES, CallbackServer, token_hint
from reelbot.config import ConfigError, load_config
from reelbot.generations.kind import callback_url
from reelbot.jobs.scheduling import callback_safety_net
from reelbot.store.models import CallbackHint

TOKEN = "tok-0123456789abcdefghijklmnopqrstuv"
SECRET = "whsec-unit-0123456789abcdef"


class FakeStore:
    def __init__(self, tasks: dict[tuple[str, str], CallbackHint]) -> None:
        self.tasks = tasks
        self.hints: list[tuple[str, str]] = []

    async def callback_hint(self, provider: str, token: str, *, now: float) -> CallbackHint | None:
        self.hints.append((provider, token))
        return self.tasks.get((provider, token))


class Server:
    def __init__(self, store: FakeStore, **kwargs: Any) -> None:
        self.woken = 0
        self.server = CallbackServer(
            store=store,  # type: ignore[arg-type]
            wake=self._wake,
            host="127.0.0.1",
            port=0,
            **kwargs,
        )

    def _wake(self) -> None:
        self.woken += 1

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None):
        url = f"http://127.0.0.1:{self.server.bound_port}{path}"
        async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
            return r.status, await r.text()


@pytest.fixture
async def endpoint():
    store = FakeStore(
        {
            ("hiapi", TOKEN): CallbackHint(1, True),
            ("gptge", TOKEN): CallbackHint(2, True),
            ("foxapi", "done"): CallbackHint(3, False),
        }
    )
    srv = Server(store, hiapi_secret=SECRET)
    await srv.server.start()
    try:
        yield srv, store
    finally:
        await srv.server.close()


async def test_a_good_callback_hints_and_wakes(endpoint) -> None:
    srv, store = endpoint
    body = b'{"taskId":"tk","status":"success"}'
    status, _ = await srv.post(
        f"/callbacks/hiapi/{TOKEN}", body, sign_callback(SECRET, body, int(time.time()))
    )
    assert status == 200 and store.hints == [("hiapi", TOKEN)] and srv.woken == 1


async def test_a_finished_task_is_acknowledged_without_waking(endpoint) -> None:
    srv, _ = endpoint
    status, _ = await srv.post("/callbacks/foxapi/done", b"{}")
    assert status == 200 and srv.woken == 0


async def test_minimax_challenge_is_echoed(endpoint) -> None:
    srv, _ = endpoint
    status, text = await srv.post(f"/callbacks/gptge/{TOKEN}", b'{"challenge":"abc-123"}')
    assert status == 200 and json.loads(text) == {"challenge": "abc-123"}
    assert srv.woken == 0


async def test_bad_signatures_never_reach_the_store(endpoint) -> None:
    srv, store = endpoint
    body = b'{"taskId":"tk"}'
    stale = sign_callback(SECRET, body, int(time.time()) - hiapi_webhook.TOLERANCE_SECONDS - 5)
    assert (await srv.post(f"/callbacks/hiapi/{TOKEN}", body))[0] == 401
    assert (await srv.post(f"/callbacks/hiapi/{TOKEN}", body, stale))[0] == 403
    assert store.hints == [] and srv.woken == 0


async def test_unknown_tokens_and_oversized_bodies_are_refused(endpoint, caplog) -> None:
    srv, _ = endpoint
    caplog.set_level(logging.INFO)
    secret_token = "Zq8" + "x" * 40
    assert (await srv.post(f"/callbacks/foxapi/{secret_token}", b"{}"))[0] == 404
    assert (await srv.post(f"/callbacks/higgsfield/{TOKEN}", b"{}"))[0] == 404
    assert (await srv.post(f"/callbacks/foxapi/{'t' * 200}", b"{}"))[0] == 404
    big = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    assert (await srv.post("/callbacks/foxapi/done", big))[0] == 413
    assert srv.woken == 0
    assert secret_token not in caplog.text and token_hint(secret_token) in caplog.text


def test_callback_urls_and_the_safety_net() -> None:
    assert (
        callback_url("https://bot.example/", "hiapi", "t")
        == "https://bot.example/callbacks/hiapi/t"
    )
    assert callback_safety_net(5.0, ceiling=60.0, timeout=3600.0) == 300.0
    assert callback_safety_net(5.0, ceiling=60.0, timeout=400.0) == 100.0  # a quarter
    assert callback_safety_net(900.0, ceiling=60.0, timeout=3600.0) == 900.0  # never denser


def test_config() -> None:
    base = {"DISCORD_TOKEN": "t"}
    config = load_config(base)
    assert not config.callbacks_enabled and config.webhook_port == 8088
    on = load_config(
        base | {"PUBLIC_BASE_URL": "https://bot.example/", "HIAPI_WEBHOOK_SECRET": SECRET}
    )
    assert on.public_base_url == "https://bot.example" and SECRET not in repr(on)
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_config(base | {"PUBLIC_BASE_URL": "http://bot.example"})
    assert load_config(
        base | {"PUBLIC_BASE_URL": "http://127.0.0.1:9", "ALLOW_LOCAL_URLS": "true"}
    ).callbacks_enabled
    with pytest.raises(ConfigError, match="HIAPI_WEBHOOK_SECRET"):
        load_config(base | {"HIAPI_WEBHOOK_SECRET": "short"})
