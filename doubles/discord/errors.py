"""Discord-shaped error responses, and the error raised for contract bugs in tests."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # discord.py's json_or_text() parses the body only when Content-Type is
    # exactly "application/json"; web.json_response() adds "; charset=utf-8".
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class DiscordHTTPError(Exception):
    """Raised by route handlers; the middleware turns it into Discord's JSON error."""

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}

    def to_response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message, **self.extra}
        if self.code is not None:
            body["code"] = self.code
        if self.errors is not None:
            body["errors"] = self.errors
        return json_response(body, status=self.status, headers=self.headers)


def field_error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def invalid_form_body(errors: dict[str, Any]) -> DiscordHTTPError:
    return DiscordHTTPError(400, 50035, "Invalid Form Body", errors=errors)


def unauthorized() -> DiscordHTTPError:
    return DiscordHTTPError(401, 0, "401: Unauthorized")


def not_found_route() -> DiscordHTTPError:
    return DiscordHTTPError(404, 0, "404: Not Found")


def method_not_allowed() -> DiscordHTTPError:
    return DiscordHTTPError(405, 0, "405: Method Not Allowed")


def unknown_channel() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10003, "Unknown Channel")


def unknown_guild() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10007, "Unknown Member")


def unknown_message() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10008, "Unknown Message")


def unknown_user() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10013, "Unknown User")


def unknown_webhook() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10015, "Unknown Webhook")


def unknown_application_command() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10063, "Unknown application command")


def unknown_interaction() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordHTTPError:
    return DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")


def invalid_webhook_token() -> DiscordHTTPError:
    return DiscordHTTPError(401, 50027, "Invalid Webhook Token")


def missing_permissions() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50013, "Missing Permissions")


def cannot_edit_others_message() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")


def empty_message() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50006, "Cannot send an empty message")


def wrong_channel_type() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")


def thread_already_exists() -> DiscordHTTPError:
    return DiscordHTTPError(400, 160004, "A thread has already been created for this message")


def entity_too_large() -> DiscordHTTPError:
    return DiscordHTTPError(413, 40005, "Request entity too large")


def server_error(status: int) -> DiscordHTTPError:
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    return DiscordHTTPError(status, 0, f"{status}: {reason.get(status, 'Server Error')}")


def rate_limited(retry_after: float, *, is_global: bool = False) -> DiscordHTTPError:
    # discord.py only waits and retries a 429 that carries a Via header and a
    # JSON body; anything else is treated as a Cloudflare ban and raised.
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": "double-bucket",
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return DiscordHTTPError(
        429,
        None,  # Discord's 429 body has no "code"
        "You are being rate limited.",
        headers=headers,
        extra={"retry_after": retry_after, "global": is_global},
    )


class CommandContractError(ValueError):
    """A test invoked a command or option the bot never registered.

    Raised by ``DiscordDouble.invoke``/``autocomplete``: real Discord could not
    have sent such an interaction, so it points at a bug in the bot's schema or
    in the test.
    """
