"""Signed attachment URLs and the CDN route that serves attachment bytes.

Real attachment URLs carry ``?ex=<expiry>&is=<issued>&hm=<signature>`` and
stop working after about a day. Here every payload signs URLs afresh, and
:meth:`Cdn.expire_all` invalidates every URL handed out so far, so a test can
check that the bot re-fetches a message (fresh URL) instead of reusing a
stored one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time

from aiohttp import web

from .model import Attachment, State

log = logging.getLogger(__name__)

URL_TTL_SECONDS = 24 * 3600


class Cdn:
    def __init__(self, state: State) -> None:
        self._state = state
        self._secret = secrets.token_bytes(16)
        self._generation = 0  # bumped by expire_all(): old signatures stop matching
        self.base_url = ""  # set once the server knows its port

    def _sign(self, path: str, ex: str, issued: str) -> str:
        text = f"{path}|{ex}|{issued}|{self._generation}".encode()
        return hmac.new(self._secret, text, hashlib.sha256).hexdigest()

    def url(self, attachment: Attachment) -> str:
        issued = int(time.time())
        ex, is_ = f"{issued + URL_TTL_SECONDS:x}", f"{issued:x}"
        path = attachment.cdn_path
        return f"{self.base_url}{path}?ex={ex}&is={is_}&hm={self._sign(path, ex, is_)}"

    def expire_all(self) -> None:
        self._generation += 1

    def is_valid(self, path: str, query: dict[str, str]) -> bool:
        ex, issued, signature = query.get("ex"), query.get("is"), query.get("hm")
        if not (ex and issued and signature):
            return False
        try:
            expired = int(ex, 16) < time.time()
        except ValueError:
            return False
        return not expired and hmac.compare_digest(signature, self._sign(path, ex, issued))

    async def handle(self, request: web.Request) -> web.Response:
        """GET /attachments/{scope}/{id}/{filename} (also /ephemeral-attachments/...)."""
        attachment = self._state.attachments.get(int(request.match_info["attachment_id"]))
        path = request.path
        if attachment is None or attachment.cdn_path != path:
            return web.Response(status=404, text="Not Found")
        if not self.is_valid(path, dict(request.query)):
            # What the real CDN answers for an expired or unsigned link.
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(
            body=attachment.data,
            content_type=attachment.content_type or "application/octet-stream",
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(
            r"/attachments/{scope_id:\d+}/{attachment_id:\d+}/{filename}", self.handle
        )
        app.router.add_get(
            r"/ephemeral-attachments/{scope_id:\d+}/{attachment_id:\d+}/{filename}", self.handle
        )
