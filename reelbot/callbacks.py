"""The callback endpoint (SPEC §6): providers say "task done", the poll decides.

One small aiohttp server on WEBHOOK_HOST:WEBHOOK_PORT, reached by providers at
PUBLIC_BASE_URL (the operator's reverse proxy). One route per provider,
``/callbacks/<provider>/<token>``, where the token is random per task and stored with
it. A callback is only a hint: it makes that task due now and wakes the worker (on
PostgreSQL the store's NOTIFY wakes every process); the poll's answer decides what
is delivered. Nothing in a callback body is trusted, stored or downloaded, so a forged
or replayed callback can at most cause one early status poll.

- MiniMax (gptge) first sends ``{"challenge": …}`` and wants it echoed within 3 s.
- hiapi callbacks are signed when a webhook signing key is set; with
  HIAPI_WEBHOOK_SECRET configured, an unsigned, badly signed or stale one is refused.
- Unknown paths, unknown tokens and a token of another provider get 404.

The same server answers ``GET /r/<token>`` (SPEC §3): a provider link too long for
a Discord message is posted as that short link, a 302 to the provider's URL until
the provider's link expires (:class:`ShortLinks`).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from providers import hiapi_webhook
from reelbot.store.base import Store

log = logging.getLogger(__name__)

CALLBACK_PROVIDERS = ("hiapi", "foxapi", "gptge")
MAX_BODY_BYTES = 256 * 1024  # a task object with a few output URLs is a few KB
MAX_CHALLENGE_CHARS = 512
MAX_TOKEN_CHARS = 128
SHORT_TOKEN_BYTES = 18  # 144 random bits
# A provider link with no stated expiry: the short link lasts this long.
SHORT_LINK_DEFAULT_TTL = 7 * 24 * 3600.0


class ShortLinks:
    """Turns a long provider link into ``PUBLIC_BASE_URL/r/<token>`` (stored)."""

    def __init__(self, store: Store, base_url: str) -> None:
        self.store = store
        self.base_url = base_url.rstrip("/")

    async def shorten(self, task_id: int, url: str, expires_at: float | None) -> str:
        now = time.time()
        until = expires_at if expires_at is not None else now + SHORT_LINK_DEFAULT_TTL
        if until <= now:
            return url  # already expired: a short link would only hide that
        token = await self.store.short_link(
            task_id, url, token=secrets.token_urlsafe(SHORT_TOKEN_BYTES), expires_at=until, now=now
        )
        return f"{self.base_url}/r/{token}"


def token_hint(token: str) -> str:
    """A token as it may appear in logs: never whole."""
    return f"{token[:4]}…" if len(token) > 4 else "…"


class CallbackServer:
    def __init__(
        self,
        *,
        store: Store,
        wake: Callable[[], None],
        host: str,
        port: int,
        providers: tuple[str, ...] = CALLBACK_PROVIDERS,
        hiapi_secret: str = "",
    ) -> None:
        self.store = store
        self.wake = wake
        self.host = host
        self.port = port
        self.providers = tuple(p for p in providers if p in CALLBACK_PROVIDERS)
        self.hiapi_secret = hiapi_secret
        self.received = 0  # callbacks that made a task due (tests, health)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for pid in self.providers:
            app.router.add_post(f"/callbacks/{pid}/{{token}}", self._handler(pid))
        app.router.add_get("/r/{token}", self._redirect)
        return app

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise web.HTTPNotFound()
        url = await self.store.resolve_short_link(token, now=time.time())
        if url is None:
            raise web.HTTPNotFound(text="This link is unknown or has expired.")
        raise web.HTTPFound(
            url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )

    async def start(self) -> None:
        # access_log=None: the access log would write every token in full.
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.bound_port = self._runner.addresses[0][1]
        log.info(
            "callback endpoint on http://%s:%d/callbacks/<provider>/<token> (%s)",
            self.host,
            self.bound_port,
            ", ".join(self.providers) or "no provider with callbacks configured",
        )

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _handler(self, provider: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(provider, request)

        return handle

    async def handle(self, provider: str, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise web.HTTPNotFound()
        try:
            body = await request.read()  # whole, capped by client_max_size (413 beyond)
        except web.HTTPRequestEntityTooLarge:
            log.warning("%s callback %s: body too large, refused", provider, token_hint(token))
            raise
        if provider == "hiapi" and self.hiapi_secret:
            refusal = self._check_hiapi(request, body)
            if refusal is not None:
                log.warning(
                    "%s callback %s refused: %s", provider, token_hint(token), refusal.reason
                )
                raise refusal
        challenge = _challenge(body)
        hint = await self.store.callback_hint(provider, token, now=time.time())
        if hint is None:
            log.warning("%s callback with an unknown token %s", provider, token_hint(token))
            raise web.HTTPNotFound()
        if challenge is not None:
            # MiniMax's handshake, echoed. Like any callback it also made the task due
            # (one early poll, harmless); it wakes nobody.
            return web.json_response({"challenge": challenge})
        if hint.in_flight:
            self.received += 1
            log.info("task %s: %s called back; polling it now", hint.task_id, provider)
            self.wake()
        else:
            log.info("task %s: %s called back for a finished task; ignored", hint.task_id, provider)
        # 2xx either way: the provider stops retrying; nothing was taken from the body.
        return web.json_response({"ok": True})

    def _check_hiapi(self, request: web.Request, body: bytes) -> web.HTTPException | None:
        headers = request.headers
        if (
            hiapi_webhook.SIGNATURE_HEADER not in headers
            or hiapi_webhook.TIMESTAMP_HEADER not in headers
        ):
            return web.HTTPUnauthorized(reason="unsigned")
        if not hiapi_webhook.verify(body, headers, self.hiapi_secret):
            return web.HTTPForbidden(reason="bad or stale signature")
        return None


def _challenge(body: bytes) -> str | int | None:
    """The ``challenge`` of MiniMax's verification request, when that is what ``body`` is."""
    if b"challenge" not in body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("challenge") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return value if len(str(value)) <= MAX_CHALLENGE_CHARS else None
