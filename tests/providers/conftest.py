"""Shared helpers for the provider adapter tests.

A :class:`FakeServer` is a real aiohttp server on 127.0.0.1 that answers with canned
replies (usually a documented example from tests/fixtures/providers/) and records
every request, so each test drives an adapter's real ``submit``/``status`` through a
real :class:`~providers.http.ProviderHttp`: HTTP, JSON decoding, status-code mapping
and envelope checks are tested together.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from providers import provider_class
from providers.base import InputImage, Provider, ProviderError
from providers.http import ProviderHttp

API_KEY = "sk-test-SECRET-0123456789abcdef"
AUTH_HEADER = f"Bearer {API_KEY}"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers"
# A 1x1 PNG: enough for the adapters, which only pass images on.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cf000003010100c9fe92ef0000000049454e44ae426082"
)
IMAGE_URL = "https://cdn.discordapp.com/attachments/1/2/first.png"


def fixture(provider_id: str, name: str) -> Any:
    return json.loads((FIXTURES / provider_id / f"{name}.json").read_text())


def fixture_names(provider_id: str) -> list[str]:
    return sorted(f.stem for f in (FIXTURES / provider_id).glob("*.json"))


def image(url: str | None = IMAGE_URL) -> InputImage:
    return InputImage(url=url, data=PNG, content_type="image/png")


def assert_no_secret(exc: BaseException) -> None:
    texts = [str(exc), repr(exc)]
    if isinstance(exc, ProviderError):
        texts += [exc.message, str(exc.code)]
    for t in texts:
        assert API_KEY not in t


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # sent as JSON
    text: str | None = None  # sent verbatim instead of ``body``
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Seen:
    method: str
    path: str  # decoded
    raw_path: str  # as sent, percent-escapes kept
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # decoded JSON, or None


class FakeServer:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply] = {}
        self.default = Reply(500, {"error": {"message": "no reply scripted"}})
        self.seen: list[Seen] = []
        self.base_url = ""

    def reply(
        self,
        status: int = 200,
        body: Any = None,
        *,
        text: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer requests with this; for one route only when ``method``/``path`` given."""
        reply = Reply(status, body, text, headers or {}, content_type)
        if path is None:
            self.default = reply
        else:
            self.routes[(method or "*", path)] = reply

    @property
    def last(self) -> Seen:
        assert self.seen, "the adapter sent no request"
        return self.seen[-1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.seen.append(
            Seen(
                request.method,
                request.path,
                request.raw_path.split("?", 1)[0],
                dict(request.query),
                dict(request.headers),
                body,
            )
        )
        reply = (
            self.routes.get((request.method, request.path))
            or self.routes.get(("*", request.path))
            or self.default
        )
        text = reply.text if reply.text is not None else json.dumps(reply.body)
        return web.Response(
            status=reply.status,
            text=text,
            headers=reply.headers,
            content_type=reply.content_type,
        )


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _http(session: aiohttp.ClientSession, provider_id: str, base_url: str) -> ProviderHttp:
    return ProviderHttp(
        session,
        provider_id=provider_id,
        base_url=base_url,
        api_key=API_KEY,
        timeout=aiohttp.ClientTimeout(total=5, connect=2),
    )


@pytest.fixture
def make(server: FakeServer, session: aiohttp.ClientSession) -> Callable[[str], Provider]:
    """``make("hiapi")``: the real adapter, pointed at the fake server."""

    def build(provider_id: str) -> Provider:
        return provider_class(provider_id)(_http(session, provider_id, server.base_url))

    return build


@pytest.fixture
def make_unreachable(session: aiohttp.ClientSession) -> Callable[[str], Provider]:
    """The adapter pointed at a local port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"

    def build(provider_id: str) -> Provider:
        return provider_class(provider_id)(_http(session, provider_id, base_url))

    return build
