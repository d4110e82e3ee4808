"""Event-driven waiting on the double's state.

Every mutation calls :meth:`ChangeNotifier.notify`; waiters re-check their
predicate then, so tests never poll with sleeps. Futures are used rather than
``asyncio.Condition`` because mutations happen in plain (sync) methods, which
cannot acquire a condition's lock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def describe_predicate(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


class ChangeNotifier:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self.version = 0

    def notify(self) -> None:
        self.version += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(
        self,
        predicate: Callable[[], T],
        *,
        timeout: float,  # noqa: ASYNC109 - the deadline spans many waits
        description: str | None = None,
        context: Callable[[], str] | None = None,
    ) -> T:
        """Return the first truthy ``predicate()`` result, re-checked on every change.

        Only the double's own mutations wake waiters, so the predicate should
        read the double's state (messages, interactions, request log, ...).

        On timeout, raise ``TimeoutError`` naming the condition and, via
        ``context``, a summary of the state, so a failing test says why.
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = description or describe_predicate(predicate)
                details = f"\n{context()}" if context else ""
                raise TimeoutError(f"condition not met within {timeout:.1f}s: {what}{details}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                result = predicate()
                if result:
                    # True now but no change of ours woke us: the predicate
                    # reads state we do not own (e.g. the bot's cache).
                    log.warning(
                        "wait_for: %s became true without a double state change; "
                        "await bot-side state with bot.wait_for instead",
                        description or describe_predicate(predicate),
                    )
                    return result
                continue  # report the timeout on the next pass
            finally:
                self._waiters.discard(waiter)
