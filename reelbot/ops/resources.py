"""What the entry point opens, and closes once the bot has stopped: the HTTP sessions
and the store (discord.py's ``examples/advanced_startup.py``: ``main()`` owns them with
``async with`` and hands them to the bot, which never closes them itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from reelbot.config import Config
from reelbot.jobs.downloads import download_session
from reelbot.store import Store, open_store


@dataclass(frozen=True, slots=True)
class Resources:
    session: aiohttp.ClientSession  # the provider APIs
    # Outputs come from wherever a provider points: a session of their own, whose
    # connector only connects to addresses it checked (no DNS rebinding to internal hosts).
    download_session: aiohttp.ClientSession
    store: Store


@asynccontextmanager
async def open_resources(config: Config) -> AsyncIterator[Resources]:
    """Open the sessions and the store; on exit close them, the store first.

    Whoever enters this must stop the bot (its poller) before leaving: the store
    closes here, so writes still in flight would fail.
    """
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        downloads = await stack.enter_async_context(
            download_session(allow_local=config.allow_local_urls)
        )
        store = open_store(config.database_url)
        # Before open(): a store that fails half-way (a migration) still lets go of
        # what it did open; close() on a store never opened does nothing.
        stack.push_async_callback(store.close)
        await store.open()
        yield Resources(session=session, download_session=downloads, store=store)
