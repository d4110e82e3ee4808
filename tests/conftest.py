"""Shared fixtures: a whole offline world (Discord double, provider doubles, real bot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from doubles.harness import World, build_world


@pytest.fixture
async def world(tmp_path: Path):
    w = await build_world(tmp_path)
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
async def world_factory(tmp_path: Path):
    """For tests that need custom settings: ``await world_factory(env={...})``."""
    made: list[World] = []

    async def make(**kwargs) -> World:
        w = await build_world(tmp_path / f"w{len(made)}", **kwargs)
        made.append(w)
        return w

    try:
        yield make
    finally:
        for w in made:
            await w.close()
