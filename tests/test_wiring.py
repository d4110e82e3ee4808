"""reelbot/wiring.py: every service built once, on the entry's resources, and linked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import discord

from reelbot.config import load_config
from reelbot.ops.resources import open_resources
from reelbot.ops.roles import ALL_IN_ONE
from reelbot.spending import _no_roles
from reelbot.store.models import TaskRow
from reelbot.wiring import wire


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": "not-a-real-token",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'reelbot.db'}",
        "DATA_DIR": str(tmp_path),
        "FOXAPI_API_KEY": "key",
        "HIAPI_API_KEY": "key",
        **extra,
    }


async def test_every_link_is_made(tmp_path: Path) -> None:
    config = load_config(
        _env(tmp_path, PUBLIC_BASE_URL="http://127.0.0.1:9", ALLOW_LOCAL_URLS="true")
    )
    async with open_resources(config) as resources:
        client = discord.Client(intents=discord.Intents.none())
        services = wire(config, ALL_IN_ONE, resources, client)
        # Built on the entry's resources, not on new ones.
        assert services.store is resources.store
        assert all(p.http.session is resources.session for p in services.providers.values())
        assert services.delivery.session is resources.download_session
        assert services.delivery.client is client and services.characters.client is client
        # The links wire() makes after construction: none left at its default.
        assert services.poller.failover is not None
        assert services.delivery.can_vary == services.generations.can_vary
        assert services.delivery.eta is services.generations.eta
        assert services.generations.spending.roles_of is not _no_roles
        assert services.delivery.shorten is not None and services.callbacks is not None
        assert services.health is None  # HEALTH_PORT unset
        assert set(services.poller.kinds) == {"video", "training"}


async def test_only_videos_have_an_eta(tmp_path: Path) -> None:
    config = load_config(_env(tmp_path))
    async with open_resources(config) as resources:
        services = wire(
            config, ALL_IN_ONE, resources, discord.Client(intents=discord.Intents.none())
        )
        book = services.delivery.eta_book
        book.seed("foxapi", [(None, 60.0)] * 50)
        video = _task(kind="video")
        assert services.delivery.eta(video) is not None
        assert services.delivery.eta(_task(kind="training")) is None
        assert services.delivery.eta(_task(kind="video", provider="hiapi")) is None  # no history


def _task(**kw: object) -> TaskRow:
    fields: dict[str, object] = {f.name: None for f in dataclasses.fields(TaskRow)}
    fields |= {
        "id": 1,
        "kind": "video",
        "provider": "foxapi",
        "request": {"prompt": "a cat on a skateboard"},
        "state": "running",
        "outputs": [],
        "created_at": 0.0,
        "updated_at": 0.0,
        "attempts": 0,
        "error_streak": 0,
        "not_found_streak": 0,
        **kw,
    }
    return TaskRow(**fields)  # type: ignore[arg-type]
