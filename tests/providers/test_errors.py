"""Transport and HTTP failures, the same for every provider (status and submit paths)."""

from __future__ import annotations

from typing import Any

import pytest

from providers import PROVIDER_IDS
from providers.base import ErrorKind, GenerationRequest, ProviderError
from tests.providers.conftest import API_KEY, AUTH_HEADER, assert_no_secret, image

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

# (case id, reply kwargs, expected kind, expected code, expected retry_after)
CASES: list[tuple[str, dict[str, Any], ErrorKind, str | None, float | None]] = [
    ("malformed", {"text": "this is not json"}, ErrorKind.TRANSIENT, "malformed", None),
    ("truncated", {"text": '{"status": "compl'}, ErrorKind.TRANSIENT, "malformed", None),
    ("wrong_shape", {"text": "[1, 2, 3]"}, ErrorKind.TRANSIENT, "malformed", None),
    (
        "html_502",
        {"status": 502, "text": HTML_502, "content_type": "text/html"},
        ErrorKind.TRANSIENT,
        "http_502",
        None,
    ),
    (
        "401",
        {"status": 401, "body": {"error": {"message": "Invalid API key"}}},
        ErrorKind.AUTH,
        None,
        None,
    ),
    (
        "402",
        {"status": 402, "body": {"error": {"message": "Insufficient balance"}}},
        ErrorKind.CREDITS,
        None,
        None,
    ),
    (
        "404",
        {"status": 404, "body": {"error": {"message": "not found"}}},
        ErrorKind.NOT_FOUND,
        None,
        None,
    ),
    (
        "429",
        {
            "status": 429,
            "body": {"error": {"message": "slow down"}},
            "headers": {"Retry-After": "7"},
        },
        ErrorKind.RATE_LIMITED,
        None,
        7.0,
    ),
    (
        "503",
        {"status": 503, "text": "Service Unavailable", "content_type": "text/plain"},
        ErrorKind.TRANSIENT,
        "http_503",
        None,
    ),
]

# A request every provider accepts without refusing it locally.
REQUESTS = {
    "higgsfield": GenerationRequest(prompt="a cat"),
    "higgsfield_feed": GenerationRequest(
        prompt="a cat", image=image(), motion="cd5bfd11-5a1a-46e0-9294-b22b0b733b1e"
    ),
    "hiapi": GenerationRequest(prompt="a cat walks"),
    "foxapi": GenerationRequest(prompt="a cat"),
    "gptge": GenerationRequest(prompt="a cat"),
}


@pytest.mark.parametrize("provider_id", PROVIDER_IDS)
@pytest.mark.parametrize(
    ("case", "reply", "kind", "code", "retry_after"), CASES, ids=[c[0] for c in CASES]
)
async def test_status_errors(make, server, provider_id, case, reply, kind, code, retry_after):
    server.reply(**reply)
    provider = make(provider_id)
    with pytest.raises(ProviderError) as info:
        await provider.status("task-123")
    err = info.value
    assert err.kind is kind
    if code is not None:
        assert err.code == code
    assert err.retry_after == retry_after
    assert server.last.headers["Authorization"] == AUTH_HEADER
    assert_no_secret(err)


@pytest.mark.parametrize("provider_id", PROVIDER_IDS)
@pytest.mark.parametrize(
    ("case", "reply", "kind", "code", "retry_after"), CASES, ids=[c[0] for c in CASES]
)
async def test_submit_errors(make, server, provider_id, case, reply, kind, code, retry_after):
    server.reply(**reply)
    with pytest.raises(ProviderError) as info:
        await make(provider_id).submit(REQUESTS[provider_id], idempotency_key="reelbot-1")
    err = info.value
    assert err.kind is kind
    assert err.retry_after == retry_after
    assert err.http_status is not None  # the provider answered: it saw the request
    assert server.last.method == "POST"
    assert server.last.headers["Authorization"] == AUTH_HEADER
    assert_no_secret(err)


@pytest.mark.parametrize("provider_id", PROVIDER_IDS)
async def test_connection_refused(make_unreachable, provider_id):
    provider = make_unreachable(provider_id)
    with pytest.raises(ProviderError) as info:
        await provider.status("task-123")
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.code == "connection_error"
    assert_no_secret(info.value)
    with pytest.raises(ProviderError) as info:
        await provider.submit(REQUESTS[provider_id], idempotency_key="reelbot-1")
    assert info.value.kind is ErrorKind.TRANSIENT
    assert info.value.http_status is None  # unknown whether the provider got it
    assert_no_secret(info.value)


@pytest.mark.parametrize("provider_id", PROVIDER_IDS)
def test_registry_and_capabilities(provider_id):
    from providers import provider_class
    from providers.base import ALL_OPTIONS

    cls = provider_class(provider_id)
    assert cls.id == provider_id
    assert cls.capabilities.options <= ALL_OPTIONS
    assert cls.capabilities.cancel is False  # no documented cancel for these endpoints
    assert ("character" in cls.capabilities.options) == cls.capabilities.characters
    assert (cls.default_base_url is None) == (provider_id == "higgsfield_feed")


# Provider error text that echoes the key (some gateways do) is redacted before it is shown.
ECHOES = {
    "higgsfield": ("submit", {"success": False, "error": f"Invalid API key {API_KEY}"}),
    "higgsfield_feed": (
        "status",
        {"error": {"message": f"bad token Bearer {API_KEY}", "type": "authentication_error"}},
    ),
    "hiapi": ("status", {"code": 401, "message": f"unauthorized: {API_KEY}", "data": None}),
    "foxapi": (
        "submit",
        {"error": {"message": f"key {API_KEY} has no quota", "type": "insufficient_quota"}},
    ),
    "gptge": (
        "submit",
        {"task_id": "", "base_resp": {"status_code": 1004, "status_msg": f"bad key {API_KEY}"}},
    ),
}


@pytest.mark.parametrize("provider_id", PROVIDER_IDS)
async def test_echoed_key_is_redacted(make, server, provider_id):
    call, body = ECHOES[provider_id]
    server.reply(200, body)
    provider = make(provider_id)
    with pytest.raises(ProviderError) as info:
        if call == "status":
            await provider.status("task-123")
        else:
            await provider.submit(REQUESTS[provider_id], idempotency_key="reelbot-1")
    assert info.value.kind in (ErrorKind.AUTH, ErrorKind.CREDITS)
    assert "[redacted]" in info.value.message
    assert_no_secret(info.value)
