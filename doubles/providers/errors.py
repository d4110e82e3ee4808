"""The OpenAI-style gateway error body shared by foxapi, gptge and higgsfield_feed."""

from __future__ import annotations

from typing import Any

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


def openai_error(
    status: int,
    message: str,
    code: str | int | None,
    *,
    not_found_code: str = "not_found",
    not_found_type: str = "not_found_error",
    int_codes: bool = False,
) -> dict[str, Any]:
    """``{"error": {message, type, code}}``.

    ``int_codes`` gives foxapi's style (``code`` is the HTTP status unless a specific
    code is known); otherwise codes are snake_case words like ``rate_limit_exceeded``.
    """
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if status == 404:
        kind = not_found_type
    if code is None:
        if int_codes:
            code = status
        elif status == 404:
            code = not_found_code
        elif status == 429:
            code = "rate_limit_exceeded"
        elif status == 401:
            code = "invalid_api_key"
        else:
            code = kind
    return {"error": {"message": message, "type": kind, "code": code}}
