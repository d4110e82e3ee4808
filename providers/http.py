"""HTTP behaviour shared by every provider: one session, auth, timeouts, error mapping.

Provider modules call :meth:`ProviderHttp.request_json` and get either a decoded JSON
value or a :class:`~providers.base.ProviderError` whose ``kind`` says whether to retry.
Envelope checks (HTTP 200 bodies that carry an error code) stay in each provider
module, because every provider spells them differently.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from providers.errors import Delivery, ErrorKind, ProviderError

log = logging.getLogger(__name__)

# A status or submit answer is small; anything bigger is not what we asked for.
MAX_JSON_BYTES = 4 * 1024 * 1024
# No sock_read: the total bounds a slow answer as well, and a per-read timeout is a
# timer cancelled and re-armed for every piece of every answer (~5 % of a poll's CPU).
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
MAX_RETRY_AFTER = 600.0
MAX_CODE = 100  # provider error codes are untrusted and unbounded
MAX_CACHED_URLS = 50_000  # ProviderHttp's parsed URLs (one per task polled lately)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            from datetime import UTC, datetime

            when = parsedate_to_datetime(value)
            seconds = (when - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


# Anything that looks like a credential is cut out of provider text before we show it.
_SECRET = re.compile(
    r"(?i)\b(?:bearer|key|token|secret)\b\s*[:=]?\s*(?=[^\s,;\"']*\d)[^\s,;\"']{12,}"
    r"|\bsk-[A-Za-z0-9_\-]{6,}"
)


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


_RETRY_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*s(?:ec(?:ond)?s?)?\b", re.IGNORECASE)


def retry_after_from_text(text: str | None) -> float | None:
    """foxapi-style hints such as ``"retry after 60 seconds"``."""
    if not text:
        return None
    match = _RETRY_IN_TEXT.search(text)
    return min(float(match.group(1)), MAX_RETRY_AFTER) if match else None


def error_message_from_body(body: Any) -> tuple[str | None, str | None]:
    """Best-effort (code, message) from the error bodies providers send."""
    if not isinstance(body, dict):
        return None, None
    err = body.get("error")
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        return (str(code) if code is not None else None), _str_or_none(err.get("message"))
    if isinstance(err, str):
        return None, err
    code = body.get("error_code") or body.get("code")
    return (str(code) if code is not None else None), _str_or_none(body.get("message"))


def _str_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


class ProviderHttp:
    """An authenticated JSON client for one provider's base URL.

    The aiohttp session is owned by the bot (one for all providers); this object only
    adds the base URL, the auth header and the error mapping.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        provider_id: str,
        base_url: str,
        api_key: str,
        auth_scheme: str = "Bearer",
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.session = session
        self.provider_id = provider_id
        self.base_url = base_url.rstrip("/")
        self._auth_header = f"{auth_scheme} {api_key}"
        self._api_key = api_key
        self.timeout = timeout
        # Parsed URLs by path: a task is polled dozens of times, and parsing and quoting
        # its status URL again each time is a measurable part of a poll's CPU.
        self._urls: dict[str, URL] = {}

    def __repr__(self) -> str:  # never show the key
        return f"ProviderHttp({self.provider_id!r}, {self.base_url!r})"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _parsed_url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= MAX_CACHED_URLS:
                self._urls.clear()
            url = self._urls[path] = URL(self.url(path))
        return url

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        error_kinds: Mapping[str, ErrorKind] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body of a 2xx answer.

        ``data`` is JSON text sent as it is (a resend must be byte-identical);
        ``json_body`` is serialised here. Raises ProviderError: 401/403 AUTH, 402
        CREDITS, 404 NOT_FOUND, 429 RATE_LIMITED (with Retry-After), other 4xx
        INVALID, 5xx / timeouts / connection errors / unreadable bodies TRANSIENT;
        ``error_kinds`` lets a provider module reclassify by the body's error code.
        Every error says whether the provider may have acted on the request
        (``ProviderError.delivery``). Never retries by itself: whether a retry is safe
        is the caller's decision (a submit POST usually is not).
        """

        all_headers = {"Authorization": self._auth_header, "Accept": "application/json"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if headers:
            all_headers.update(headers)
        status: int | None = None
        try:
            async with self.session.request(
                method,
                self._parsed_url(path),
                json=json_body if data is None else None,
                data=data.encode() if data is not None else None,
                params=params,
                headers=all_headers,
                timeout=self.timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                raw = await read_body(resp, MAX_JSON_BYTES)
        except _Oversized as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT,
                "the provider sent an oversized answer",
                code="oversized",
                http_status=status,
                delivery=Delivery.AMBIGUOUS,
            ) from exc
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection was ever made, so the request cannot have reached anyone.
            raise ProviderError(
                ErrorKind.TRANSIENT,
                f"could not reach the provider ({type(exc).__name__})",
                code="connection_error",
                delivery=Delivery.NOT_SENT,
            ) from exc
        except TimeoutError as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT,
                "the provider did not answer in time",
                code="timeout",
                http_status=status,
                delivery=Delivery.AMBIGUOUS,
            ) from exc
        except aiohttp.ClientError as exc:
            # A reset, or an answer cut off: the request had left and may have been acted on.
            raise ProviderError(
                ErrorKind.TRANSIENT,
                f"the connection to the provider broke ({type(exc).__name__})",
                code="connection_error",
                http_status=status,
                delivery=Delivery.AMBIGUOUS,
            ) from exc

        body = _decode_json(raw)
        if self._api_key and self._api_key.encode() in raw and body is not _NOT_JSON:
            # Whatever the provider echoes of our key (an error envelope, a failure
            # message) must never reach logs, the store or Discord.
            body = _scrub(body, self._api_key)
        if 200 <= status < 300:
            if body is _NOT_JSON:
                raise ProviderError(
                    ErrorKind.TRANSIENT,
                    "the provider sent a malformed answer (not JSON)",
                    code="malformed",
                    http_status=status,
                    delivery=Delivery.AMBIGUOUS,
                )
            return body
        error = self._http_error(status, None if body is _NOT_JSON else body, retry_after)
        refined = (error_kinds or {}).get(error.code)
        raise error.with_kind(refined) if refined is not None else error

    def _http_error(self, status: int, body: Any, retry_after: float | None) -> ProviderError:

        code, message = error_message_from_body(body)
        if message:
            # A gateway that echoes the request (and so our key) must not leak it.
            message = redact(message.replace(self._api_key, "[redacted]"))[:300]
        if code:
            code = redact(code.replace(self._api_key, "[redacted]"))[:MAX_CODE]
        if retry_after is None and isinstance(body, dict):
            err = body.get("error")
            hint = err.get("fallback_suggestion") if isinstance(err, dict) else None
            retry_after = retry_after_from_text(hint if isinstance(hint, str) else None)
        # A complete 4xx answer means the provider looked at the request and made
        # nothing; any other status (a proxy's 502 included) may follow a task created.
        delivery = Delivery.REFUSED if 400 <= status < 500 else Delivery.AMBIGUOUS
        if status in (401, 403):
            kind, default = ErrorKind.AUTH, "the provider rejected the API key"
        elif status == 402:
            kind, default = ErrorKind.CREDITS, "the provider account is out of credits"
        elif status == 404:
            kind, default = ErrorKind.NOT_FOUND, "the provider does not know this task"
        elif status == 429:
            kind, default = ErrorKind.RATE_LIMITED, "the provider is rate limiting us"
        elif status == 408:
            kind, default = ErrorKind.TRANSIENT, "the provider timed out reading the request"
        elif 400 <= status < 500:
            kind, default = ErrorKind.INVALID, "the provider rejected the request"
        elif status >= 500:
            kind, default = ErrorKind.TRANSIENT, "the provider had a server error"
        else:
            kind, default = ErrorKind.TRANSIENT, "the provider sent an unexpected answer"
        return ProviderError(
            kind,
            message or default,
            code=code or f"http_{status}",
            retry_after=retry_after,
            http_status=status,
            delivery=delivery,
        )


class _Oversized(Exception):
    pass


async def read_body(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body, however many pieces it arrives in; _Oversized past ``cap`` bytes.

    ``StreamReader.read(n)`` returns only what is buffered so far, so one read of a
    body that arrives in two TCP segments yields half of it.
    """
    declared = resp.content_length
    if declared is not None:
        if declared > cap:
            raise _Oversized
        # Content-Length bounds what aiohttp reads (a body cut short raises
        # ClientPayloadError): one call, however many pieces it comes in.
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise _Oversized
        chunks.append(chunk)
    return b"".join(chunks)


_NOT_JSON = object()


def _scrub(value: Any, secret: str) -> Any:
    """``value`` (decoded JSON) with every occurrence of ``secret`` in its strings replaced."""
    if isinstance(value, str):
        return value.replace(secret, "[redacted]")
    if isinstance(value, list):
        return [_scrub(v, secret) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, secret): _scrub(v, secret) for k, v in value.items()}
    return value


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _NOT_JSON
