"""Starting ``python bot.py`` the way a new operator would: what the console shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(
        DISCORD_TOKEN="not-a-real-token",
        DATABASE_URL=f"sqlite:///{tmp_path / 'reelbot.db'}",
        DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def test_no_voice_warnings_at_start(tmp_path: Path) -> None:
    # A bot without voice: discord.py's "PyNaCl/davey is not installed, voice will NOT be
    # supported" lines are noise on every start. Built the way bot.py builds it, in a
    # fresh process (discord.py warns once per process).
    code = (
        "from reelbot.config import load_config\n"
        "from reelbot.logs import setup_logging\n"
        "from reelbot.app import Reelbot\n"
        "import logging\n"
        "config = load_config()\n"
        "setup_logging('DEBUG')\n"
        "Reelbot(config)\n"
        "logging.getLogger('discord.client').warning('another discord warning')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path),
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "voice will NOT be supported" not in proc.stderr
    assert "another discord warning" in proc.stderr  # other warnings still show
