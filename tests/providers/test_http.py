"""ProviderHttp over a real network: bodies in pieces, cut off, huge; and, for every
failure, whether the provider may have acted on the request (SPEC §4 "Never pay twice").
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from providers.base import Delivery, ErrorKind, ProviderError
from providers.http import MAX_JSON_BYTES, ProviderHttp

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[ProviderHttp]]]:
    """``await serve(handler)``: a ProviderHttp pointed at a server running ``handler``."""
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def start(handler: Handler) -> ProviderHttp:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return ProviderHttp(
            session, provider_id="t", base_url=f"http://{host}:{port}", api_key="k-secret"
        )

    try:
        yield start
    finally:
        await session.close()
        for runner in runners:
            await runner.cleanup()


def in_pieces(body: bytes, sizes: list[int], pause: float = 0.02) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        at = 0
        for size in [*sizes, len(body)]:
            if at >= len(body):
                break
            await resp.write(body[at : at + size])
            at += size
            await asyncio.sleep(pause)
        await resp.write_eof()
        return resp

    return handler


async def test_a_body_in_two_pieces_is_read_whole(serve) -> None:
    body = json.dumps({"id": "task-1", "pad": "x" * 500}).encode()
    http = await serve(in_pieces(body, [7]))
    assert (await http.request_json("GET", "/t"))["id"] == "task-1"


async def test_a_body_in_many_small_pieces_is_read_whole(serve) -> None:
    body = json.dumps({"data": ["y" * 50] * 40}).encode()
    http = await serve(in_pieces(body, [1, 2, 3, 300, 5, 80], pause=0.005))
    assert len((await http.request_json("GET", "/t"))["data"]) == 40


async def test_a_one_megabyte_answer_is_read(serve) -> None:
    """gptge sends inline base64 videos in its status answer."""
    payload = "QUFB" * (1024 * 1024 // 4)
    body = json.dumps({"data": {"binary_data_base64": [payload]}}).encode()
    http = await serve(in_pieces(body, [65536, 1, 200_000], pause=0.01))
    answer = await http.request_json("GET", "/t")
    assert answer["data"]["binary_data_base64"] == [payload]


async def test_an_oversized_answer_is_refused_without_reading_it_all(serve) -> None:
    body = b'{"x": "' + b"a" * (MAX_JSON_BYTES + 10) + b'"}'
    http = await serve(in_pieces(body, [1000]))
    with pytest.raises(ProviderError) as info:
        await http.request_json("POST", "/t", data="{}")
    assert info.value.code == "oversized"
    assert info.value.delivery is Delivery.AMBIGUOUS


async def test_a_2xx_cut_off_before_its_content_length_is_ambiguous(serve) -> None:
    async def truncated(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 400
        await resp.prepare(request)
        await resp.write(b'{"id": "task-1", "st')
        await asyncio.sleep(0.02)
        assert request.transport is not None
        request.transport.close()
        return resp

    http = await serve(truncated)
    with pytest.raises(ProviderError) as info:
        await http.request_json("POST", "/t", data="{}")
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.delivery is Delivery.AMBIGUOUS


async def test_a_connection_closed_after_the_request_is_ambiguous(serve) -> None:
    async def close(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.05)
        return web.Response()

    http = await serve(close)
    with pytest.raises(ProviderError) as info:
        await http.request_json("POST", "/t", data="{}")
    assert info.value.delivery is Delivery.AMBIGUOUS


async def test_a_refused_connection_was_never_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    async with aiohttp.ClientSession() as session:
        http = ProviderHttp(
            session, provider_id="t", base_url=f"http://127.0.0.1:{port}", api_key="k"
        )
        with pytest.raises(ProviderError) as info:
            await http.request_json("POST", "/t", data="{}")
    assert info.value.delivery is Delivery.NOT_SENT
    assert info.value.retryable


async def test_a_timeout_after_sending_is_ambiguous(serve) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response({})

    http = await serve(slow)
    http.timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(ProviderError) as info:
        await http.request_json("POST", "/t", data="{}")
    assert info.value.code == "timeout"
    assert info.value.delivery is Delivery.AMBIGUOUS


@pytest.mark.parametrize(
    ("status", "kind", "delivery"),
    [
        (400, ErrorKind.INVALID, Delivery.REFUSED),
        (409, ErrorKind.INVALID, Delivery.REFUSED),
        (410, ErrorKind.INVALID, Delivery.REFUSED),
        (422, ErrorKind.INVALID, Delivery.REFUSED),
        (429, ErrorKind.RATE_LIMITED, Delivery.REFUSED),
        (402, ErrorKind.CREDITS, Delivery.REFUSED),
        (500, ErrorKind.TRANSIENT, Delivery.AMBIGUOUS),
        (502, ErrorKind.TRANSIENT, Delivery.AMBIGUOUS),
        (504, ErrorKind.TRANSIENT, Delivery.AMBIGUOUS),
    ],
)
async def test_statuses_say_whether_the_provider_acted(
    serve, status: int, kind: ErrorKind, delivery: Delivery
) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "no", "code": "some_code"}}, status=status)

    http = await serve(answer)
    with pytest.raises(ProviderError) as info:
        await http.request_json("POST", "/t", data="{}")
    assert (info.value.kind, info.value.delivery, info.value.http_status) == (
        kind,
        delivery,
        status,
    )
    assert info.value.code == "some_code"


async def test_a_provider_module_can_reclassify_by_error_code(serve) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        body = {"code": 409, "error_code": "IDEMPOTENCY_KEY_PROCESSING", "message": "wait"}
        return web.json_response(body, status=409, headers={"Retry-After": "1"})

    http = await serve(busy)
    with pytest.raises(ProviderError) as info:
        await http.request_json(
            "POST",
            "/t",
            data="{}",
            error_kinds={"IDEMPOTENCY_KEY_PROCESSING": ErrorKind.RATE_LIMITED},
        )
    assert info.value.kind is ErrorKind.RATE_LIMITED
    assert info.value.delivery is Delivery.REFUSED
    assert info.value.retry_after == 1.0


async def test_an_unbounded_error_code_is_clipped(serve) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "m" * 5000, "code": "C" * 3000}}, status=400)

    http = await serve(answer)
    with pytest.raises(ProviderError) as info:
        await http.request_json("GET", "/t")
    assert len(info.value.code) <= 100 and len(info.value.message) <= 300


async def test_prepared_json_text_is_sent_byte_for_byte(serve) -> None:
    seen: list[bytes] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(await request.read())
        assert request.content_type == "application/json"
        return web.json_response({"ok": True})

    http = await serve(record)
    text = '{"b":1, "a":"é"}'
    await http.request_json("POST", "/t", data=text)
    await http.request_json("POST", "/t", data=text)
    assert seen == [text.encode(), text.encode()]
