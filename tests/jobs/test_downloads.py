"""Output downloads: only public https (unless ALLOW_LOCAL_URLS), size-capped while
streaming, media content types only, redirects re-checked hop by hop."""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path

import aiohttp
import aiohttp.abc
import pytest
from aiohttp import web

from doubles.harness import sample_video
from reelbot.jobs import downloads
from reelbot.jobs.downloads import (
    DownloadError,
    check_url_allowed,
    decode_inline,
    download_to_temp,
    sniff_content_type,
)

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024

REFUSED = {
    "plain_http": "http://93.184.215.14/video.mp4",
    "loopback_v4": "https://127.0.0.1/video.mp4",
    "loopback_v4_other": "https://127.8.9.10/video.mp4",
    "localhost_name": "https://localhost/video.mp4",
    "private_10": "https://10.1.2.3/video.mp4",
    "private_172_16": "https://172.16.5.4/video.mp4",
    "private_192_168": "https://192.168.1.20/video.mp4",
    "link_local_metadata": "https://169.254.169.254/latest/meta-data/",
    "carrier_grade_nat": "https://100.64.0.1/video.mp4",
    "unspecified_v4": "https://0.0.0.0/video.mp4",
    "decimal_loopback": "https://2130706433/video.mp4",
    "loopback_v6": "https://[::1]/video.mp4",
    "link_local_v6": "https://[fe80::1]/video.mp4",
    "unique_local_v6": "https://[fd12:3456::1]/video.mp4",
    "v4_mapped_loopback_v6": "https://[::ffff:127.0.0.1]/video.mp4",
    "unspecified_v6": "https://[::]/video.mp4",
    "file_scheme": "file:///etc/passwd",
    "ftp_scheme": "ftp://93.184.215.14/video.mp4",
    "javascript_scheme": "javascript:alert(1)",
    "no_host": "https:///video.mp4",
}


@pytest.mark.parametrize("name", REFUSED)
async def test_url_policy_refuses(name: str) -> None:
    with pytest.raises(DownloadError) as info:
        await check_url_allowed(REFUSED[name], allow_local=False)
    assert info.value.permanent


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/video.mp4",
        "https://[2606:4700:4700::1111]/video.mp4",
        "https://93.184.215.14:8443/path/video.mp4?sig=abc",
    ],
)
async def test_url_policy_allows_public_https(url: str) -> None:
    await check_url_allowed(url, allow_local=False)


@pytest.mark.parametrize(
    "answers, allowed",
    [
        (["93.184.215.14"], True),
        (["93.184.215.14", "10.0.0.7"], False),  # any private answer is enough to refuse
        (["::1"], False),
        (["fe80::1%1"], False),
    ],
)
async def test_hostnames_are_judged_by_what_they_resolve_to(
    monkeypatch, answers: list[str], allowed: bool
) -> None:
    async def fake_getaddrinfo(host, port, **kwargs):
        family = lambda a: socket.AF_INET6 if ":" in a else socket.AF_INET  # noqa: E731
        return [(family(a), socket.SOCK_STREAM, 6, "", (a.split("%")[0], port)) for a in answers]

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    if allowed:
        await check_url_allowed("https://cdn.example.com/v.mp4", allow_local=False)
    else:
        with pytest.raises(DownloadError):
            await check_url_allowed("https://cdn.example.com/v.mp4", allow_local=False)


async def test_unresolvable_host_is_a_transient_error(monkeypatch) -> None:
    async def fail(*args, **kwargs):
        raise socket.gaierror("temporary failure in name resolution")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fail)
    with pytest.raises(DownloadError) as info:
        await check_url_allowed("https://cdn.example.com/v.mp4", allow_local=False)
    assert not info.value.permanent


async def test_allow_local_lifts_only_the_address_and_scheme_rules() -> None:
    await check_url_allowed("http://127.0.0.1:8080/v.mp4", allow_local=True)
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/v.mp4"):
        with pytest.raises(DownloadError):
            await check_url_allowed(url, allow_local=True)


# --- downloading from a local server (allow_local=True) ---------------------------------------
class Origin:
    """Routes that behave like good and bad CDNs."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.hang = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        video = sample_video()
        if name == "video.mp4":
            return web.Response(body=video, content_type="video/mp4")
        if name == "no-type":
            resp = web.Response(body=video)
            resp.headers.pop("Content-Type", None)
            return resp
        if name == "page.html":
            return web.Response(text="<html>login</html>", content_type="text/html")
        if name == "error.json":
            return web.json_response({"error": "expired"})
        if name in ("gone", "forbidden", "expired"):
            return web.Response(status={"gone": 404, "forbidden": 403, "expired": 410}[name])
        if name == "busy":
            return web.Response(status=503)
        if name.startswith("redirect-to-"):
            raise web.HTTPFound(f"/{name.removeprefix('redirect-to-')}")
        if name == "loop":
            raise web.HTTPFound("/loop")
        if name in ("chunked-big", "declared-big"):
            resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            if name == "declared-big":
                resp.content_length = 3 * MiB
            else:
                resp.enable_chunked_encoding()
            await resp.prepare(request)
            for _ in range(3 * 4):
                await resp.write(b"\0" * (MiB // 4))
            await resp.write_eof()
            return resp
        if name == "stall":
            resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(video[:100])
            await self.hang.wait()
            return resp
        return web.Response(status=404)


@pytest.fixture
async def origin():
    o = Origin()
    runner = web.AppRunner(o.app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    o.base = f"http://{host}:{port}"
    try:
        yield o
    finally:
        o.hang.set()
        await runner.cleanup()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def fetch(session, origin, name: str, tmp_path: Path, max_bytes: int = MiB):
    return await download_to_temp(
        session,
        f"{origin.base}/{name}",
        max_bytes=max_bytes,
        allow_local=True,
        directory=tmp_path,
    )


async def test_a_video_is_streamed_to_a_temp_file(session, origin, tmp_path: Path) -> None:
    got = await fetch(session, origin, "video.mp4", tmp_path)
    assert got.path.read_bytes() == sample_video() and got.content_type == "video/mp4"
    assert got.path.suffix == ".mp4" and got.path.parent == tmp_path
    got.remove()
    assert not list(tmp_path.iterdir())


async def test_missing_content_type_is_treated_as_binary(session, origin, tmp_path) -> None:
    got = await fetch(session, origin, "no-type", tmp_path)
    assert got.size == len(sample_video())


@pytest.mark.parametrize("name", ["page.html", "error.json"])
async def test_wrong_content_type_is_refused(session, origin, tmp_path, name: str) -> None:
    with pytest.raises(DownloadError, match="not a media file") as info:
        await fetch(session, origin, name, tmp_path)
    assert info.value.permanent
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["chunked-big", "declared-big"])
async def test_size_cap_is_enforced_while_streaming(session, origin, tmp_path, name) -> None:
    with pytest.raises(DownloadError) as info:
        await fetch(session, origin, name, tmp_path, max_bytes=MiB)
    assert info.value.permanent and info.value.too_large
    assert not list(tmp_path.iterdir()), "the partial file must be removed"


@pytest.mark.parametrize(
    "name, permanent",
    [
        ("gone", True),
        ("forbidden", True),
        ("expired", True),
        ("busy", False),
    ],
)
async def test_http_errors(session, origin, tmp_path, name: str, permanent: bool) -> None:
    with pytest.raises(DownloadError) as info:
        await fetch(session, origin, name, tmp_path)
    assert info.value.permanent is permanent


async def test_a_stalled_download_times_out_as_transient(
    session, origin, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(downloads, "DOWNLOAD_TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    with pytest.raises(DownloadError) as info:
        await fetch(session, origin, "stall", tmp_path)
    assert not info.value.permanent
    assert not list(tmp_path.iterdir())


async def test_redirects_are_followed_and_each_hop_is_checked(
    session, origin, tmp_path, monkeypatch
) -> None:
    checked: list[str] = []
    real = downloads.check_url_allowed

    async def spy(url: str, *, allow_local: bool) -> None:
        checked.append(url)
        await real(url, allow_local=allow_local)

    monkeypatch.setattr(downloads, "check_url_allowed", spy)
    got = await fetch(session, origin, "redirect-to-video.mp4", tmp_path)
    assert got.path.read_bytes() == sample_video()
    assert checked == [f"{origin.base}/redirect-to-video.mp4", f"{origin.base}/video.mp4"]


async def test_a_redirect_to_a_refused_address_is_not_followed(
    session, origin, tmp_path, monkeypatch
) -> None:
    real = downloads.check_url_allowed

    async def policy(url: str, *, allow_local: bool) -> None:
        if url.endswith("/video.mp4"):  # pretend the target is a private address
            raise DownloadError("refusing an output URL on a private address", permanent=True)
        await real(url, allow_local=allow_local)

    monkeypatch.setattr(downloads, "check_url_allowed", policy)
    with pytest.raises(DownloadError, match="private"):
        await fetch(session, origin, "redirect-to-video.mp4", tmp_path)
    assert "video.mp4" not in origin.hits


async def test_redirect_loops_end(session, origin, tmp_path) -> None:
    with pytest.raises(DownloadError, match="redirect") as info:
        await fetch(session, origin, "loop", tmp_path)
    assert info.value.permanent
    assert origin.hits["loop"] <= 6


async def test_download_refused_by_policy_never_connects(session, origin, tmp_path) -> None:
    with pytest.raises(DownloadError, match="plain-http"):
        await download_to_temp(
            session,
            f"{origin.base}/video.mp4",
            max_bytes=MiB,
            allow_local=False,
            directory=tmp_path,
        )
    assert origin.hits == {}


# --- inline (base64) outputs ---------------------------------------------------------------------
def test_inline_output_is_decoded_and_sniffed(tmp_path: Path) -> None:
    got = decode_inline(
        base64.b64encode(sample_video()).decode(), max_bytes=MiB, directory=tmp_path
    )
    assert got.content_type == "video/mp4" and got.path.read_bytes() == sample_video()


@pytest.mark.parametrize(
    "data, match",
    [
        ("not base64 at all!!", "base64"),
        (base64.b64encode(b"\0" * (2 * MiB)).decode(), "too large"),
    ],
)
def test_bad_inline_outputs_are_refused(tmp_path: Path, data: str, match: str) -> None:
    with pytest.raises(DownloadError, match=match) as info:
        decode_inline(data, max_bytes=MiB, directory=tmp_path)
    assert info.value.permanent
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"RIFF\0\0\0\0WEBP", "image/webp"),
        (b"GIF89a", "image/gif"),
        (b"\0\0\0\x18ftypmp42", "video/mp4"),
        (b"\x1a\x45\xdf\xa3", "video/webm"),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_sniff_content_type(head: bytes, expected: str | None) -> None:
    assert sniff_content_type(head + b"\0" * 16) == expected


# --- DNS rebinding: the address checked is the address connected to ---------------------------
class RebindingDns:
    """A fake DNS for one name: a public address on the first question, then 127.0.0.1
    (what an attacker's short-TTL name server does between our check and the connect)."""

    def __init__(self) -> None:
        self.questions = 0

    async def getaddrinfo(self, host, port, *args, **kwargs):
        self.questions += 1
        address = "93.184.215.14" if self.questions == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


@pytest.fixture
async def loopback_listener():
    """A TCP port on 127.0.0.1 that counts the connections made to it."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        await server.wait_closed()


async def test_a_name_rebound_to_loopback_after_the_check_is_never_connected_to(
    monkeypatch, loopback_listener, tmp_path: Path
) -> None:
    port, accepted = loopback_listener
    dns = RebindingDns()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", dns.getaddrinfo)
    async with downloads.download_session(allow_local=False) as session:
        with pytest.raises(DownloadError, match="private") as info:
            await download_to_temp(
                session,
                f"https://cdn.rebind.test:{port}/video.mp4",
                max_bytes=MiB,
                allow_local=False,
                directory=tmp_path,
            )
    assert info.value.permanent
    assert dns.questions >= 2, "the connect asked again (and was answered 127.0.0.1)"
    assert accepted == [], "nothing may connect to the rebound loopback address"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("answers", [["10.0.0.7"], ["93.184.215.14", "127.0.0.1"], ["::1"]])
async def test_the_download_resolver_refuses_any_private_answer(answers: list[str]) -> None:
    class Fixed(aiohttp.abc.AbstractResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            return [
                {
                    "hostname": host,
                    "host": a,
                    "port": port,
                    "family": family,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
                for a in answers
            ]

        async def close(self) -> None:
            pass

    resolver = downloads.PublicOnlyResolver(Fixed())
    with pytest.raises(OSError, match="private"):
        await resolver.resolve("cdn.example.com", 443)


async def test_the_download_resolver_passes_public_answers() -> None:
    class Public(aiohttp.abc.AbstractResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            return [
                {
                    "hostname": host,
                    "host": "93.184.215.14",
                    "port": port,
                    "family": family,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]

        async def close(self) -> None:
            pass

    answers = await downloads.PublicOnlyResolver(Public()).resolve("cdn.example.com", 443)
    assert [a["host"] for a in answers] == ["93.184.215.14"]


async def test_the_bot_downloads_through_the_guarded_session(world_factory) -> None:
    world = await world_factory(env={"ALLOW_LOCAL_URLS": "false"})
    assert world.bot is not None
    connector = world.bot.delivery.session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    assert isinstance(connector._resolver, downloads.PublicOnlyResolver)
