"""Local provider doubles: aiohttp servers on 127.0.0.1 speaking each provider's protocol.

>>> d = make_double("hiapi", api_key="test-key")
>>> async with d:  # or: await d.start(); ...; await d.close()
...     d.script_next([Step.queued(), Step.running(50), Step.succeed()])
...     # point the bot at d.base_url

See ``base.ProviderDouble`` for scripting, fault injection and inspection, and
``timeline.Step`` for the timeline language.
"""

from __future__ import annotations

from typing import Any

from doubles.providers.base import ProviderDouble, Reject, Task
from doubles.providers.foxapi import FoxapiDouble
from doubles.providers.gptge import GptgeDouble
from doubles.providers.hiapi import HiapiDouble
from doubles.providers.higgsfield import HiggsfieldDouble
from doubles.providers.higgsfield_feed import HiggsfieldFeedDouble
from doubles.providers.soul import Training
from doubles.providers.timeline import Kind, Step, timed_timeline

DOUBLES: dict[str, type[ProviderDouble]] = {
    "higgsfield": HiggsfieldDouble,
    "higgsfield_feed": HiggsfieldFeedDouble,
    "hiapi": HiapiDouble,
    "foxapi": FoxapiDouble,
    "gptge": GptgeDouble,
}
PROTOCOL_IDS: tuple[str, ...] = tuple(DOUBLES)


def make_double(protocol_id: str, api_key: str = "test-key", **kwargs: Any) -> ProviderDouble:
    """A not-yet-started double for ``protocol_id`` (kwargs: host, port, seed, record)."""
    try:
        cls = DOUBLES[protocol_id]
    except KeyError:
        raise KeyError(f"unknown protocol {protocol_id!r}; one of {PROTOCOL_IDS}") from None
    return cls(api_key, **kwargs)


__all__ = [
    "DOUBLES",
    "PROTOCOL_IDS",
    "FoxapiDouble",
    "GptgeDouble",
    "HiapiDouble",
    "HiggsfieldDouble",
    "HiggsfieldFeedDouble",
    "Kind",
    "ProviderDouble",
    "Reject",
    "Step",
    "Task",
    "Training",
    "make_double",
    "timed_timeline",
]
