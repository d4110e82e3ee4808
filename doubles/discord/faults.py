"""Fault injection: make the next matching request(s) fail like Discord would."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import (
    DiscordHTTPError,
    missing_permissions,
    rate_limited,
    server_error,
    unauthorized,
    unknown_channel,
)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int
    retry_after: float
    is_global: bool
    code: int | None
    message: str | None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0 and self.method in (method, "*") and bool(self.pattern.search(path))
        )

    def error(self) -> DiscordHTTPError:
        if self.code is not None or self.message is not None:
            return DiscordHTTPError(self.status, self.code or 0, self.message or "Injected error")
        if self.status == 429:
            return rate_limited(self.retry_after, is_global=self.is_global)
        if self.status == 403:
            return missing_permissions()
        if self.status == 404:
            return unknown_channel()
        if self.status == 401:
            return unauthorized()
        if self.status >= 500:
            return server_error(self.status)
        return DiscordHTTPError(self.status, 0, f"{self.status}: Injected error")


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        *,
        method: str,
        path_regex: str,
        status: int,
        times: int,
        retry_after: float,
        is_global: bool,
        code: int | None,
        message: str | None,
    ) -> Fault:
        fault = Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            times,
            retry_after,
            is_global,
            code,
            message,
        )
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> DiscordHTTPError | None:
        """The error for this request if a fault matches (consuming one use), else None."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                return fault.error()
        return None

    def clear(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.remaining > 0]
