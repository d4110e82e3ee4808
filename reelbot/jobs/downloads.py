"""Fetching provider outputs safely: public https only, streamed to disk, size-capped."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import yarl

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=600, connect=15, sock_read=60)

# What we accept as a delivered output; anything else (an HTML error page with a
# 200, say) is refused rather than posted as "out.mp4".
ALLOWED_TYPES = ("video/", "image/", "audio/", "application/octet-stream", "binary/octet-stream")

EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "audio/mpeg": ".mp3",
}


class DownloadError(Exception):
    """An output could not be fetched. ``permanent`` means retrying will not help."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        too_large: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.too_large = too_large  # over MAX_DOWNLOAD_MB: the URL itself may still be shared


@dataclass(slots=True)
class DownloadedFile:
    path: Path
    size: int
    content_type: str

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class RefusedAddress(OSError):
    """A host name resolved to an address outputs may not come from."""


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """The resolver of the download session: every answer is checked where it is used.

    ``check_url_allowed`` judges a name by one DNS answer, the connection would make its
    own lookup: a short-TTL name can answer a public address first and 127.0.0.1 next
    (DNS rebinding). Here the connector connects only to addresses this resolver
    returned, and it returns only public ones: the check and the connect use the same
    answer. (IP literals never reach a resolver; ``check_url_allowed`` judges those.)
    """

    def __init__(self, inner: aiohttp.abc.AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            address = ipaddress.ip_address(str(answer["host"]).split("%")[0])
            if not address.is_global:
                raise RefusedAddress(f"{host} resolved to a private address")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def download_session(*, allow_local: bool) -> aiohttp.ClientSession:
    """The HTTP session for output downloads: with ``allow_local`` off, it connects to
    public addresses only (see PublicOnlyResolver). Provider API calls keep their own
    session: an operator may run an aggregator on a private network."""
    if allow_local:
        return aiohttp.ClientSession()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PublicOnlyResolver()))


async def check_url_allowed(url: str, *, allow_local: bool) -> None:
    """Refuse non-https URLs and hosts that resolve to loopback/private/link-local space.

    ``allow_local`` (ALLOW_LOCAL_URLS) lifts both rules, for tests against doubles.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DownloadError("the output URL is not an http(s) URL", permanent=True)
    if allow_local:
        return
    if parts.scheme != "https":
        raise DownloadError("refusing a plain-http output URL", permanent=True)
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise DownloadError(f"cannot resolve the output host ({exc})", permanent=False) from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not address.is_global:
            raise DownloadError("refusing an output URL on a private address", permanent=True)


async def download_to_temp(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    allow_local: bool,
    directory: Path | None = None,
) -> DownloadedFile:
    """Stream ``url`` into a temporary file, never holding more than one chunk in memory.

    Redirects (CDNs use them) are followed by hand, so every hop passes the URL policy.
    """
    for _ in range(MAX_REDIRECTS + 1):
        await check_url_allowed(url, allow_local=allow_local)
        try:
            return await _download(session, url, max_bytes, directory)
        except _Redirect as hop:
            url = hop.location
    raise DownloadError("the output URL redirected too many times", permanent=True)


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        self.location = location


async def _download(
    session: aiohttp.ClientSession, url: str, max_bytes: int, directory: Path | None
) -> DownloadedFile:
    try:
        async with session.get(url, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False) as resp:
            location = resp.headers.get("Location")
            if resp.status in REDIRECT_STATUSES and location:
                raise _Redirect(str(resp.url.join(yarl.URL(location))))
            if resp.status != 200:
                permanent = resp.status in (401, 403, 404, 410)
                raise DownloadError(
                    f"the output URL answered HTTP {resp.status}"
                    + (" (it may have expired)" if permanent else ""),
                    permanent=permanent,
                    status=resp.status,
                )
            content_type = (resp.content_type or "application/octet-stream").lower()
            if not content_type.startswith(ALLOWED_TYPES):
                raise DownloadError(
                    f"the output is not a media file ({content_type})", permanent=True
                )
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise DownloadError(
                    f"the output is too large ({resp.content_length} bytes)",
                    permanent=True,
                    too_large=True,
                )
            return await _stream(resp, content_type, max_bytes, directory)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, RefusedAddress):
            raise DownloadError(
                "refusing an output URL on a private address", permanent=True
            ) from exc
        raise DownloadError(
            f"downloading the output failed ({type(exc).__name__})", permanent=False
        ) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DownloadError(
            f"downloading the output failed ({type(exc).__name__})", permanent=False
        ) from exc


async def _stream(
    resp: aiohttp.ClientResponse, content_type: str, max_bytes: int, directory: Path | None
) -> DownloadedFile:
    suffix = EXTENSIONS.get(content_type, ".bin")
    fd, name = tempfile.mkstemp(prefix="reelbot-", suffix=suffix, dir=directory)
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadError(
                        f"the output is larger than the {max_bytes // (1024 * 1024)} MiB cap",
                        permanent=True,
                        too_large=True,
                    )
                # Disk writes of 256 KiB are fast enough not to stall the loop noticeably.
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return DownloadedFile(path=path, size=size, content_type=content_type)


def decode_inline(
    data_base64: str, *, max_bytes: int, directory: Path | None = None
) -> DownloadedFile:
    """An inline base64 output (gptge ``binary_data_base64``) written to a temp file."""
    if len(data_base64) * 3 // 4 > max_bytes:
        raise DownloadError("the inline output is too large", permanent=True)
    try:
        data = base64.b64decode(data_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DownloadError("the inline output is not valid base64", permanent=True) from exc
    content_type = sniff_content_type(data) or "application/octet-stream"
    fd, name = tempfile.mkstemp(
        prefix="reelbot-", suffix=EXTENSIONS.get(content_type, ".bin"), dir=directory
    )
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return DownloadedFile(path=Path(name), size=len(data), content_type=content_type)


def sniff_content_type(data: bytes) -> str | None:
    """Media type from magic bytes (input images and inline outputs)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None
