"""The kept first-frame images (reelbot/inputs.py)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from doubles.harness import input_png
from reelbot.jobs.inputs import InputStore

pytestmark = pytest.mark.timeout(30)


async def test_concurrent_saves_of_the_same_image_all_succeed_and_the_file_is_intact(
    tmp_path: Path,
) -> None:
    # Two /animate with the same image at once on a fresh data/ used to share one temp
    # file name: one thread's rename took the other's file away mid-write.
    data = input_png() + b"\0" * (2 * 1024 * 1024)  # big enough for writes to overlap
    for round_ in range(5):
        store = InputStore(tmp_path / f"inputs-{round_}")
        metas = await asyncio.gather(*(store.save(data, "image/png", url=None) for _ in range(16)))
        sha = hashlib.sha256(data).hexdigest()
        assert all(m["sha256"] == sha and m["size"] == len(data) for m in metas)
        files = list(store.directory.iterdir())
        assert [f.name for f in files] == [f"{sha}.png"], "no temp file may be left behind"
        assert files[0].read_bytes() == data
