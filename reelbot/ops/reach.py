"""Start-up reachability: wait for Discord's REST API before the first log-in."""

from __future__ import annotations

import asyncio
import logging
import os

import aiohttp
import yarl

log = logging.getLogger(__name__)

REACH_TIMEOUT = aiohttp.ClientTimeout(total=15)
REACH_FIRST_DELAY = 1.0
REACH_MAX_DELAY = 60.0


def _unreachable_reason(exc: BaseException) -> str:
    """What went wrong reaching a host, in a few words (no traceback)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return (os.strerror(error.errno) if error.errno else str(error)).lower()
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def wait_until_reachable(api_base: str, stopping: asyncio.Event) -> bool:
    """Wait until Discord's REST API answers at all (any HTTP status), retrying with
    exponential backoff and one log line per failed attempt. False when ``stopping``
    is set first.

    discord.py retries the gateway by itself once logged in, but a failed first login
    (DNS or network down at start) ends ``start()`` with a long traceback.
    """
    url = f"{api_base.rstrip('/')}/gateway"
    where = yarl.URL(api_base)
    host = f"{where.host}:{where.port}" if where.port else str(where.host)
    delay = REACH_FIRST_DELAY
    # A session of its own, closed before the bot's resources are opened: nothing of
    # the bot exists yet while Discord cannot be reached.
    async with aiohttp.ClientSession(timeout=REACH_TIMEOUT) as session:
        while not stopping.is_set():
            try:
                async with session.get(url, allow_redirects=False):
                    return True
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.error(
                    "cannot reach Discord at %s (%s); retrying in %g s",
                    host,
                    _unreachable_reason(exc),
                    delay,
                )
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, REACH_MAX_DELAY)
    return False
