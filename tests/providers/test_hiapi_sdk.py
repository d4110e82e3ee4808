"""hiapi checked against HiAPI's official Python SDK (PyPI ``hiapi``, a test-only oracle).

The SDK is blocking (urllib), so each call runs in a thread while the double (or the
fake server) answers on the test's event loop. Three things are checked:

* our hiapi double speaks the protocol the way the SDK's client expects it (create,
  retrieve, wait, idempotent replay, key mismatch, key still processing, errors);
* our adapter classifies every error answer the way the SDK does (error_code first,
  then HTTP status) and accepts the base URL in both of the SDK's forms;
* callback signatures made by the double are accepted by ``client.webhooks.verify``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import hiapi
import pytest
from hiapi.errors import ERROR_CODE_TO_CLASS

from doubles.providers import HiapiDouble, Step, make_double
from doubles.providers.hiapi import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback
from providers import hiapi_webhook
from providers.base import ErrorKind, GenerationRequest, ProviderError
from providers.hiapi import parse_task
from tests.helpers import eventually
from tests.providers.conftest import API_KEY

T = TypeVar("T")
KEY = "test-key"
BODY_INPUT = {"prompt": "a red fox runs", "duration": 5}


@pytest.fixture
async def double() -> AsyncIterator[HiapiDouble]:
    d = make_double("hiapi", api_key=KEY, seed=1)
    assert isinstance(d, HiapiDouble)
    async with d:
        yield d


def sdk(d: HiapiDouble, *, base_url: str | None = None, max_retries: int = 0) -> hiapi.HiAPI:
    return hiapi.HiAPI(
        api_key=KEY,
        base_url=base_url or d.base_url,
        timeout=5,
        max_retries=max_retries,
        webhook_secret="whsec-0123456789abcdef",
    )


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


# --- the SDK's client against our double ------------------------------------------------
@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_sdk_create_retrieve_wait(double, suffix):
    double.script_next([Step.queued(), Step.running(), Step.succeed(("video", "first_frame"))])
    client = sdk(double, base_url=double.root_url + suffix)
    created = await call(client.tasks.create, model="seedance-2-0", input=BODY_INPUT)
    assert created.task_id in double.tasks and created.idempotent_replay is False
    first = await call(client.tasks.retrieve, created.task_id)
    assert (first.status, first.model, first.completed_at, first.output) == (
        "queued",
        "seedance-2-0",
        None,
        [],
    )
    done = await call(client.tasks.wait, created.task_id, poll_interval=0.01, timeout=5)
    assert done.succeeded and done.completed_at
    assert [o.type for o in done.output] == ["video", "first_frame"]
    assert all(o.url.startswith(double.root_url) and o.expire_at for o in done.output)


async def test_sdk_wait_raises_task_failed_with_the_task_error(double):
    double.script_next([Step.running(), Step.fail("TASK_TIMEOUT", "upstream timed out")])
    client = sdk(double)
    created = await call(client.tasks.create, model="happyhorse-1-0", input={"prompt": "x"})
    with pytest.raises(hiapi.TaskFailed) as info:
        await call(client.tasks.wait, created.task_id, poll_interval=0.01, timeout=5)
    assert (info.value.code, info.value.message) == ("TASK_TIMEOUT", "upstream timed out")


async def test_sdk_replay_same_key_same_body_is_the_same_task(double):
    client = sdk(double)
    kwargs: dict[str, Any] = {
        "model": "seedance-2-0",
        "input": BODY_INPUT,
        "idempotency_key": "reelbot-7",
    }
    first = await call(client.tasks.create, **kwargs)
    again = await call(client.tasks.create, **kwargs)
    assert (again.task_id, again.idempotent_replay) == (first.task_id, True)
    assert first.idempotent_replay is False
    assert list(double.tasks) == [first.task_id]  # billed once


async def test_sdk_mismatch_same_key_other_body(double):
    client = sdk(double)
    await call(client.tasks.create, model="seedance-2-0", input=BODY_INPUT, idempotency_key="k1")
    with pytest.raises(hiapi.IdempotencyKeyMismatchError) as info:
        await call(
            client.tasks.create,
            model="seedance-2-0",
            input={**BODY_INPUT, "duration": 6},
            idempotency_key="k1",
        )
    assert (info.value.status, info.value.error_code) == (422, "IDEMPOTENCY_KEY_MISMATCH")
    assert len(double.tasks) == 1


async def test_key_compared_over_the_raw_body(double, session):
    """The server hashes the raw body (SDK tasks.create): same JSON, other bytes → 422."""
    url = double.base_url + "/v1/tasks"
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "raw",
               "Content-Type": "application/json"}  # fmt: skip
    first = b'{"model": "seedance-2-0", "input": {"prompt": "a fox"}}'
    reordered = b'{"input": {"prompt": "a fox"}, "model": "seedance-2-0"}'
    async with session.post(url, data=first, headers=headers) as r:
        assert r.status == 200
    async with session.post(url, data=first, headers=headers) as r:
        assert r.status == 200 and r.headers["Idempotent-Replay"] == "true"
    async with session.post(url, data=reordered, headers=headers) as r:
        assert r.status == 422
        assert (await r.json())["error_code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert len(double.tasks) == 1


async def test_sdk_processing_then_replay(double):
    """While the first create with a key is held in flight, the same key answers 409;
    the SDK surfaces it without retries and retries it (Retry-After) into the replay."""
    double.hold_creates()
    double.processing_retry_after = 0.2
    kwargs: dict[str, Any] = {
        "model": "seedance-2-0",
        "input": BODY_INPUT,
        "idempotency_key": "slow",
    }
    first = asyncio.create_task(call(sdk(double).tasks.create, **kwargs))
    await eventually(lambda: "slow" in double.idempotency, description="the held create")
    with pytest.raises(hiapi.IdempotencyKeyProcessingError) as info:
        await call(sdk(double).tasks.create, **kwargs)
    assert (info.value.status, info.value.error_code) == (409, "IDEMPOTENCY_KEY_PROCESSING")
    assert info.value.message  # the SDK read the body's message
    retried = asyncio.create_task(call(sdk(double, max_retries=3).tasks.create, **kwargs))
    await eventually(lambda: double.rejections.count(PROCESSING) >= 2, description="a retry")
    assert double.tasks == {}  # nothing created while held
    double.release_creates()
    created, replayed = await first, await retried
    assert (created.idempotent_replay, replayed.idempotent_replay) == (False, True)
    assert replayed.task_id == created.task_id and list(double.tasks) == [created.task_id]


PROCESSING = ("/v1/tasks", 409, "a request with this idempotency key is still processing")


@pytest.mark.parametrize(
    ("prepare", "error", "status", "error_code"),
    [
        (lambda d: None, hiapi.InvalidRequestError, 400, "INVALID_REQUEST"),
        (lambda d: d.fail_next_submit(503), hiapi.ServiceUnavailableError, 503, None),
        (lambda d: d.fail_next_submit(429), hiapi.APIError, 429, None),
    ],
)
async def test_sdk_reads_the_doubles_error_bodies(double, prepare, error, status, error_code):
    prepare(double)
    model = "sora-9" if status == 400 else "seedance-2-0"
    with pytest.raises(error) as info:
        await call(sdk(double).tasks.create, model=model, input=BODY_INPUT)
    assert (info.value.status, info.value.error_code) == (status, error_code)
    assert info.value.message == double.message_for(status) or status == 400


async def test_sdk_not_found_and_bad_key(double):
    with pytest.raises(hiapi.NotFoundError) as info:
        await call(sdk(double).tasks.retrieve, "tk-hiapi-nope")
    assert info.value.message == "task not found"
    bad = hiapi.HiAPI(api_key="sk-wrong", base_url=double.base_url, max_retries=0)
    with pytest.raises(hiapi.AuthenticationError):
        await call(bad.tasks.retrieve, "tk-hiapi-nope")


# --- our adapter classifies error answers as the SDK does --------------------------------
# The SDK's exception class -> the kind our adapter must give the same answer.
SDK_KINDS: dict[type[hiapi.APIError], ErrorKind] = {
    hiapi.InvalidRequestError: ErrorKind.INVALID,
    hiapi.ModelUnavailableError: ErrorKind.TRANSIENT,
    hiapi.TaskFailedError: ErrorKind.INVALID,
    hiapi.TaskTimeoutError: ErrorKind.TRANSIENT,
    hiapi.StorageUnavailableError: ErrorKind.TRANSIENT,
    hiapi.IdempotencyKeyProcessingError: ErrorKind.RATE_LIMITED,
    hiapi.AuthenticationError: ErrorKind.AUTH,
    hiapi.NotFoundError: ErrorKind.NOT_FOUND,
    hiapi.ServiceUnavailableError: ErrorKind.TRANSIENT,
}
CODES = [None, "SOMETHING_NEW", *sorted(ERROR_CODE_TO_CLASS)]


@pytest.mark.parametrize("error_code", CODES)
@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 429, 500, 503])
async def test_adapter_classifies_like_the_sdk(make, server, status, error_code):
    body: dict[str, Any] = {"code": status, "message": "from the server", "data": None}
    if error_code is not None:
        body["error_code"] = error_code
    server.reply(status, body)
    client = hiapi.HiAPI(api_key=API_KEY, base_url=server.base_url, max_retries=0, timeout=5)
    with pytest.raises(hiapi.APIError) as sdk_error:
        await call(client.tasks.create, model="seedance-2-0", input={"prompt": "a fox"},
                   idempotency_key="k")  # fmt: skip
    with pytest.raises(ProviderError) as ours:
        await make("hiapi").submit(GenerationRequest("a fox"), idempotency_key="k")
    error, cls = ours.value, type(sdk_error.value)
    retried_by_sdk = status in (429, 503)  # by status, before the SDK reads the code
    assert error.http_status == status and "from the server" in error.message
    if cls is hiapi.IdempotencyKeyMismatchError and not retried_by_sdk:
        assert (error.code, error.retryable) == ("submit_unconfirmed", False)
    elif cls in SDK_KINDS and not retried_by_sdk:
        assert error.kind is SDK_KINDS[cls], cls
    elif status != 409:  # a plain 409 is ProviderHttp's call (the SDK has no class)
        # the SDK has no class for it (plain APIError) or retries it by status
        assert error.retryable is (status >= 500 or status == 429), cls
    if sdk_error.value.error_code:
        assert error.code in (sdk_error.value.error_code, "submit_unconfirmed")
    else:
        assert error.code == str(status)  # the envelope's code, as ProviderHttp reads it


# --- callback signatures: the double's signer, our verifier, the SDK's verify ------------
SECRET = "whsec-0123456789abcdef"
NOW = 1_777_282_100


def test_signature_known_answer():
    """Computed by hand from the documented formula, independently of both helpers."""
    body, stamp = b'{"taskId":"tk-hiapi-x","status":"success"}', "1777282100"
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert sign_callback(SECRET, body, int(stamp))[SIGNATURE_HEADER] == expected.hexdigest()
    assert hiapi_webhook.signature(SECRET, stamp, body) == expected.hexdigest()


async def test_sdk_verifies_the_doubles_signed_callback(double):
    double.script_next([Step.succeed(("video", "first_frame"))])
    created = await call(sdk(double).tasks.create, model="seedance-2-0", input=BODY_INPUT)
    await call(sdk(double).tasks.retrieve, created.task_id)  # now terminal
    body, headers = double.callback(created.task_id, SECRET, timestamp=NOW)
    task = sdk(double).webhooks.verify(body, headers, now=NOW)
    assert (task.task_id, task.status, len(task.output)) == (created.task_id, "success", 2)
    lowered = {k.lower(): v for k, v in headers.items()}  # as some frameworks hand them
    assert sdk(double).webhooks.verify(body, lowered, now=NOW).task_id == created.task_id
    assert hiapi_webhook.verify(body, headers, SECRET, now=NOW)
    assert hiapi_webhook.verify(body, lowered, SECRET, now=NOW)
    assert parse_task(json.loads(body)).state == "succeeded"  # the adapter reads it too


def _mutations() -> dict[str, tuple[bytes, dict[str, str], str, int]]:
    body = b'{"taskId":"tk-hiapi-01HZTQ8BX2N3GM3YFK4Z9D7VQR","status":"fail"}'
    good = sign_callback(SECRET, body, NOW)
    sig = good[SIGNATURE_HEADER]
    return {
        "genuine": (body, good, SECRET, NOW),
        "genuine_at_the_tolerance": (body, good, SECRET, NOW + 300),
        "stale": (body, good, SECRET, NOW + 301),
        "from_the_future": (body, good, SECRET, NOW - 301),
        "tampered_body": (body.replace(b"fail", b"success"), good, SECRET, NOW),
        "reencoded_body": (json.dumps(json.loads(body)).encode(), good, SECRET, NOW),
        "wrong_secret": (body, good, "another-secret-123", NOW),
        "no_signature": (body, {TIMESTAMP_HEADER: str(NOW)}, SECRET, NOW),
        "no_timestamp": (body, {SIGNATURE_HEADER: sig}, SECRET, NOW),
        "timestamp_changed": (body, {**good, TIMESTAMP_HEADER: str(NOW + 1)}, SECRET, NOW),
        "uppercase_hex": (body, {**good, SIGNATURE_HEADER: sig.upper()}, SECRET, NOW),
        "timestamp_not_a_number": (body, {**good, TIMESTAMP_HEADER: "soon"}, SECRET, NOW),
        "huge_timestamp": (body, {**good, TIMESTAMP_HEADER: "9" * 5000}, SECRET, NOW),
        "signature_with_spaces": (body, {**good, SIGNATURE_HEADER: f" {sig} "}, SECRET, NOW),
        "huge_signature": (body, {**good, SIGNATURE_HEADER: sig * 1000}, SECRET, NOW),
    }


@pytest.mark.parametrize("case", sorted(_mutations()))
def test_our_verifier_agrees_with_the_sdk(case):
    body, headers, secret, now = _mutations()[case]
    client = hiapi.HiAPI(api_key="sk-unused", webhook_secret=secret)
    try:
        client.webhooks.verify(body, headers, now=now)
        sdk_accepts = True
    except hiapi.WebhookVerificationError:
        sdk_accepts = False
    assert hiapi_webhook.verify(body, headers, secret, now=now) is sdk_accepts
    assert sdk_accepts is case.startswith("genuine")
