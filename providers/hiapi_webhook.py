"""Checking HiAPI callback signatures (docs.hiapi.ai/async-api; SDK ``webhooks.py``).

With a "Webhook signing key" set in the HiAPI console, each callback carries
``X-HiAPI-Timestamp`` (unix seconds) and ``X-HiAPI-Signature`` =
``hex(HMAC_SHA256(secret, timestamp + "." + rawBody))``. The body is the task object
(the ``data`` of ``GET /v1/tasks/{id}``, see :func:`providers.hiapi.parse_task`).

The bot's callback endpoint (reelbot/callbacks.py) makes this check first when
HIAPI_WEBHOOK_SECRET is set. It is checked against the SDK's ``client.webhooks.verify``
(same answers on the same inputs) and against the hiapi double's own signer, which is written
separately on purpose (doubles/providers/hiapi.py ``sign_callback``): a double that
imported this module would agree with any mistake made here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-HiAPI-Timestamp"
SIGNATURE_HEADER = "X-HiAPI-Signature"
TOLERANCE_SECONDS = 300  # the SDK's default: older or newer callbacks are replays
_TIMESTAMP = re.compile(r"-?[0-9]{1,15}")  # header values are untrusted and unbounded
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature HiAPI sends for ``body`` signed at ``timestamp``."""
    signed = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """True when ``body`` (the raw bytes received, never re-encoded JSON) was signed
    by HiAPI with ``secret`` within ``tolerance`` seconds of ``now``."""
    if not secret:
        return False
    timestamp = _header(headers, TIMESTAMP_HEADER) or ""
    sent = _header(headers, SIGNATURE_HEADER) or ""
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(sent):
        return False
    current = time.time() if now is None else now
    if tolerance and abs(int(current) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), sent)
