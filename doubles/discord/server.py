"""The aiohttp application: routing, bot-token auth, fault injection, request log.

Every request under /api/v10 passes one middleware that (in order) answers
unknown routes like Discord (logged at WARNING so test output shows what the
bot called), checks the bot token where Discord requires it, applies injected
faults, turns ``DiscordHTTPError`` into Discord's JSON error, and records
``(method, path, status)``; a 400/50035 a route raised (a body Discord would
refuse) is also recorded with its errors, as a ``FormRefusal``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from aiohttp import web

from .errors import DiscordHTTPError, method_not_allowed, not_found_route, unauthorized
from .faults import FaultInjector
from .limits import LIMIT_CODES, codes, flatten

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
# Interaction callbacks and application webhooks authenticate with their token.
TOKEN_AUTH_PREFIXES = ("/interactions/", "/webhooks/")
NO_AUTH_PATHS = {"/gateway"}
MAX_BODY = 512 * 1024 * 1024  # parse big uploads ourselves so 413 comes with Discord's body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LoggedRequest(NamedTuple):
    method: str
    path: str  # relative to /api/v10 for API routes; CDN and /gateway paths as-is
    status: int


class FormRefusal(NamedTuple):
    """A request the double answered 400/50035 itself (not an injected fault)."""

    method: str
    path: str
    errors: dict[str, Any]

    @property
    def codes(self) -> set[str]:
        return codes(self.errors)

    @property
    def for_limit(self) -> bool:
        return bool(self.codes & LIMIT_CODES)

    def describe(self) -> str:
        fields = "; ".join(f"{p}: {c} ({m})" for p, c, m in flatten(self.errors))
        return f"{self.method} {self.path} -> 400/50035 {fields}"


def api_path(path: str) -> str:
    return path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else path


class Middleware:
    def __init__(
        self,
        token: str,
        faults: FaultInjector,
        record: Callable[[str, str, int], None],
        refused: Callable[[FormRefusal], None] | None = None,
    ) -> None:
        self._token = token
        self._faults = faults
        self._record = record
        self._refused = refused

    def _needs_bot_token(self, path: str) -> bool:
        return not (path.startswith(TOKEN_AUTH_PREFIXES) or path in NO_AUTH_PATHS)

    async def _guarded(
        self, request: web.Request, handler: Handler, path: str
    ) -> web.StreamResponse:
        route_error = request.match_info.http_exception
        if route_error is not None:
            error = method_not_allowed() if route_error.status == 405 else not_found_route()
            log.warning(
                "Discord double: no such route %s %s -> %s (add it to doubles/discord if the "
                "bot needs it)",
                request.method,
                path,
                error.status,
            )
            raise error
        if (
            self._needs_bot_token(path)
            and request.headers.get("Authorization") != f"Bot {self._token}"
        ):
            raise unauthorized()
        fault = self._faults.take(request.method, path)
        if fault is not None:
            log.info("Discord double: injected %s for %s %s", fault.status, request.method, path)
            raise fault
        try:
            return await handler(request)
        except DiscordHTTPError as error:
            if error.code == 50035 and self._refused is not None:
                self._refused(FormRefusal(request.method, path, error.errors or {}))
            raise

    @web.middleware
    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            # CDN and gateway: no auth, no faults (the gateway logs its own upgrade).
            if request.match_info.http_exception is not None:
                log.warning("Discord double: no such route %s %s", request.method, request.path)
                response = not_found_route().to_response()
            else:
                response = await handler(request)
            if not isinstance(response, web.WebSocketResponse):
                self._record(request.method, request.path, response.status)
            return response
        path = api_path(request.path)
        try:
            response = await self._guarded(request, handler, path)
        except DiscordHTTPError as error:
            response = error.to_response()
        self._record(request.method, path, response.status)
        return response


def build_app(middleware: Middleware) -> web.Application:
    return web.Application(middlewares=[middleware.handle], client_max_size=MAX_BODY)
