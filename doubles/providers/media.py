"""The media a double serves as task outputs: the sample files and generated big streams."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

MEDIA_DIR = Path(__file__).resolve().parent.parent / "media"
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}

# Generated streams are written in slices of one shared pattern, so a 200 MiB answer
# never holds more than this many bytes in the double.
CHUNK = 256 * 1024


@cache
def media_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, content type). The files are a few KiB: keep them in memory."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in MEDIA_DIR.iterdir():
        ctype = CONTENT_TYPES.get(path.suffix.lower())
        if ctype and path.is_file():
            files[path.name] = (path.read_bytes(), ctype)
    return files


@cache
def _pattern() -> bytes:
    # Start with the real sample so sniffers see an MP4 "ftyp" box, then filler.
    head = media_files()["sample.mp4"][0]
    filler = bytes(range(256)) * (CHUNK // 256)
    return (head + filler)[:CHUNK]


async def serve_file(request: web.Request) -> web.Response:
    entry = media_files().get(request.match_info["name"])
    if entry is None:
        # Plain CDN-style 404: media is not behind the provider's JSON API.
        return web.Response(status=404, text="Not Found")
    body, ctype = entry
    return web.Response(body=body, content_type=ctype)


async def serve_large(request: web.Request) -> web.StreamResponse:
    """GET /media/large/{size}.mp4 — ``size`` bytes generated on the fly.

    Chunked (no Content-Length) by default, so a client's size cap must count bytes
    as they arrive; ``?length=1`` declares the length up front instead.
    """
    try:
        size = int(request.match_info["size"])
    except ValueError:
        return web.Response(status=404, text="Not Found")
    resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    if request.query.get("length") == "1":
        resp.content_length = size
    else:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    if request.method != "HEAD":
        view = memoryview(_pattern())
        remaining = size
        while remaining > 0:
            n = min(remaining, CHUNK)
            await resp.write(view[:n])
            remaining -= n
    await resp.write_eof()
    return resp
