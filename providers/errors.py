"""What can go wrong in a provider call, and what it tells the bot (SPEC §4).

Its own module, below both the HTTP layer and the provider interface, so that neither
has to import the other to raise or read an error.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.StrEnum):
    """How the bot should react to a provider error (see shared/providers/README.md)."""

    AUTH = "auth"  # bad key: fail, tell the operator to check <ID>_API_KEY
    CREDITS = "credits"  # out of balance: fail
    RATE_LIMITED = "rate_limited"  # retry after Retry-After
    TRANSIENT = "transient"  # 5xx, timeouts, HTML pages, resets: retry with backoff
    INVALID = "invalid"  # the request itself is wrong: fail, show message
    NOT_FOUND = "not_found"  # the provider lost (or never had) the task
    MODERATION = "moderation"  # blocked by the provider's content filter


RETRYABLE_KINDS = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT})


class Delivery(enum.StrEnum):
    """What a failed call tells us about whether the provider acted on it (SPEC §4,
    "Never pay twice"). Decided where the facts are: the HTTP layer for transport
    outcomes, the provider module for answers it could read."""

    NOT_SENT = "not_sent"  # nothing left this process (a refused connection, a local check)
    REFUSED = "refused"  # a complete 4xx answer, or a documented error code: nothing was made
    AMBIGUOUS = "ambiguous"  # it may have left and been acted on: timeout, reset, 5xx, bad 2xx


class ProviderError(Exception):
    """A provider call did not give a usable answer.

    ``code`` is the provider's own error code when it sent one (e.g. ``TASK_FAILED``,
    ``1026``, ``http_503``); ``message`` is safe to show users (never holds secrets).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
        delivery: Delivery = Delivery.NOT_SENT,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code or kind.value
        self.retry_after = retry_after
        self.http_status = http_status
        # Raised without a word from the network (a local validation): nothing was sent.
        self.delivery = delivery

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def ambiguous(self) -> bool:
        """The provider may have acted on the request: resend only with idempotency."""
        return self.delivery is Delivery.AMBIGUOUS

    def with_kind(self, kind: ErrorKind) -> ProviderError:
        """The same error, reclassified by a provider module that knows its codes better."""
        refined = ProviderError(
            kind,
            self.message,
            code=self.code,
            retry_after=self.retry_after,
            http_status=self.http_status,
            delivery=self.delivery,
        )
        refined.__cause__ = self.__cause__
        return refined

    def __repr__(self) -> str:
        return f"ProviderError({self.kind.value}, code={self.code!r}, {self.message!r})"
