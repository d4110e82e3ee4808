"""Small helpers the protocol modules share: defensive reading of untrusted JSON,
envelope-error mapping and the common failed/moderated/no-output statuses.

Every provider answer is untrusted (SPEC §4): fields may be missing, of the wrong
type, or an error may hide inside an HTTP 200. These helpers never raise anything
but :class:`~providers.base.ProviderError`.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from providers.base import Delivery, ErrorKind, ProviderError, TaskStatus
from providers.http import MAX_CODE, redact, retry_after_from_text

MODERATION_MESSAGE = "blocked by the provider's content filter"
NO_OUTPUT_MESSAGE = "the provider reported success but returned no output"
MAX_MESSAGE = 300


# --- reading values ------------------------------------------------------------------------
def malformed(what: str, *, http_status: int | None = 200) -> ProviderError:
    """A 2xx answer we cannot use: after a submit, the task may exist all the same."""
    return ProviderError(
        ErrorKind.TRANSIENT,
        f"the provider sent a malformed answer ({what})",
        code="malformed",
        http_status=http_status,
        delivery=Delivery.AMBIGUOUS,
    )


def expect_dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise malformed(f"{what} is not a JSON object")
    return body


def get_dict(obj: Any, key: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def get_list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def text(value: Any) -> str | None:
    """A non-empty, stripped string, or None."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def id_str(value: Any) -> str | None:
    """A provider id: non-empty string, or an integer normalised to its decimal string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return text(value)


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def progress(value: Any) -> int | None:
    n = number(value)
    if n is None or n != n:  # NaN
        return None
    return max(0, min(100, round(n)))


def word(value: Any) -> str | None:
    """A state word, lower-cased for matching (the original is kept as raw_state)."""
    t = text(value)
    return t.lower() if t else None


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def path(template: str, **ids: str) -> str:
    """Fill ids into a path template, escaped so an id can never change the path."""
    return template.format(**{k: quote(v, safe="") for k, v in ids.items()})


def safe_message(value: Any, default: str) -> str:
    """Provider text fit to show users: stripped, credential-free, bounded."""
    if isinstance(value, dict):
        value = value.get("message") or value.get("msg")
    message = text(value) if isinstance(value, str) else None
    if not message:
        return default
    message = redact(" ".join(message.split()))
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


# --- errors --------------------------------------------------------------------------------
def kind_for_http_status(status: int) -> ErrorKind:
    """The same mapping ProviderHttp applies to real HTTP statuses, for envelope codes."""
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 402:
        return ErrorKind.CREDITS
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if 400 <= status < 500 and status != 408:
        return ErrorKind.INVALID
    return ErrorKind.TRANSIENT


def envelope_error(
    kind: ErrorKind, message: str, code: str | None, *, retry_after: float | None = None
) -> ProviderError:
    """An error the provider reported inside a 2xx answer: it read the call and refused
    it in its documented words, so nothing was made (SPEC §4: refused, not ambiguous)."""
    return ProviderError(
        kind,
        message,
        code=code[:MAX_CODE] if code else code,
        retry_after=retry_after,
        http_status=200,
        delivery=Delivery.REFUSED,
    )


_GATEWAY_KINDS: tuple[tuple[tuple[str, ...], ErrorKind], ...] = (
    (("auth", "api_key", "api key", "invalid_key", "unauthori", "permission"), ErrorKind.AUTH),
    (("quota", "insufficient", "balance", "credit", "billing"), ErrorKind.CREDITS),
    (("rate_limit", "rate limit", "too many", "throttl"), ErrorKind.RATE_LIMITED),
    (("not_found", "not found", "not_exist", "not exist", "expired"), ErrorKind.NOT_FOUND),
    (("server_error", "service_unavailable", "unavailable", "timeout", "upstream"),
     ErrorKind.TRANSIENT),
    (("invalid", "unsupported", "validation", "required", "must be"), ErrorKind.INVALID),
)  # fmt: skip


def _match_words(words: tuple[Any, ...]) -> ErrorKind | None:
    texts = [w for w in (word(v) for v in words if not isinstance(v, bool)) if w]
    for needles, kind in _GATEWAY_KINDS:
        if any(n in t for t in texts for n in needles):
            return kind
    return None


def kind_from_words(*words: Any, default: ErrorKind, message: Any = None) -> ErrorKind:
    """Guess an ErrorKind from an error's type/code words, then HTTP-like integer
    codes among them, then its message; ``default`` when nothing matches."""
    kind = _match_words(words)
    if kind is not None:
        return kind
    for value in words:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
            return kind_for_http_status(value)
    return _match_words((message,)) or default


def gateway_error(body: dict[str, Any], *, default: ErrorKind = ErrorKind.INVALID) -> None:
    """Raise for an OpenAI-style ``{"error": {message, type, code}}`` sent with a 2xx.

    Only a body that is nothing but an error counts: task objects also carry an
    ``error`` member (null, ``{}`` or the task's failure) next to their status.
    """
    err = body.get("error")
    if not isinstance(err, dict) or not err:
        return
    if any(k in body for k in ("status", "id", "jobs", "task_id", "output", "results")):
        return
    if isinstance(body.get("data"), dict):
        return
    code = err.get("code")
    kind = kind_from_words(err.get("type"), code, default=default, message=err.get("message"))
    raise envelope_error(
        kind,
        safe_message(err.get("message"), "the provider refused the request"),
        id_str(code) or text(err.get("type")),
        retry_after=retry_after_from_text(text(err.get("fallback_suggestion"))),
    )


# --- common statuses ------------------------------------------------------------------------
def failed(
    code: str | None,
    message: Any,
    raw_state: str | None,
    *,
    default: str = "generation failed",
    credits: float | None = None,
) -> TaskStatus:
    return TaskStatus(
        state="failed",
        error_code=code or "failed",
        error_message=safe_message(message, default),
        raw_state=raw_state,
        credits=credits,
    )


def moderated(code: str, raw_state: str | None) -> TaskStatus:
    return TaskStatus(
        state="failed", error_code=code, error_message=MODERATION_MESSAGE, raw_state=raw_state
    )


def no_output(raw_state: str | None, credits: float | None = None) -> TaskStatus:
    return TaskStatus(
        state="failed",
        error_code="no_output",
        error_message=NO_OUTPUT_MESSAGE,
        raw_state=raw_state,
        credits=credits,
    )


# --- outputs -------------------------------------------------------------------------------
def url_expiry(url: str) -> float | None:
    """Expiry a signed URL carries in its query (TOS / S3 / ``x-expires`` styles), if any."""
    try:
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query)}
    except ValueError:
        return None
    for date_key, ttl_key in (("x-tos-date", "x-tos-expires"), ("x-amz-date", "x-amz-expires")):
        if date_key in query and ttl_key in query:
            try:
                signed = calendar.timegm(time.strptime(query[date_key], "%Y%m%dT%H%M%SZ"))
                return float(signed + int(query[ttl_key]))
            except (ValueError, OverflowError):
                return None
    for key in ("x-expires", "expires"):
        value = query.get(key)
        if value and value.isdigit() and len(value) >= 9:  # unix seconds, not a duration
            return float(value)
    return None


_MAGIC: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"\x89PNG", "image", "image/png"),
    (0, b"\xff\xd8\xff", "image", "image/jpeg"),
    (0, b"GIF8", "image", "image/gif"),
    (8, b"WEBP", "image", "image/webp"),
    (4, b"ftyp", "video", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video", "video/webm"),
)


def sniff_base64(data: str, default_kind: str = "image") -> tuple[str, str | None]:
    """(kind, content type) of an inline base64 payload, from its first bytes."""
    try:
        head = base64.b64decode(data[:24] + "=" * (-len(data[:24]) % 4), validate=False)
    except (binascii.Error, ValueError):
        return default_kind, None
    for offset, magic, kind, content_type in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind, content_type
    return default_kind, None
