"""Starting ``python bot.py`` the way a new operator would: what the console shows."""

from __future__ import annotations

import os
import signal
import socket
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
        "import asyncio, logging\n"
        "from reelbot.config import load_config\n"
        "from reelbot.ops.logs import setup_logging\n"
        "from reelbot.ops.resources import open_resources\n"
        "from reelbot.app import Reelbot\n"
        "async def main():\n"
        "    config = load_config()\n"
        "    async with open_resources(config) as resources:\n"
        "        Reelbot(config, resources)\n"
        "    logging.getLogger('discord.client').warning('another discord warning')\n"
        "setup_logging('DEBUG')\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "voice will NOT be supported" not in proc.stderr
    assert "another discord warning" in proc.stderr  # other warnings still show


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", ["closed_port", "unresolvable_host"])
def test_discord_unreachable_at_start_is_one_line_retried_and_sigterm_exits_0(
    tmp_path: Path, where: str
) -> None:
    base = (
        f"http://127.0.0.1:{_closed_port()}/api/v10"
        if where == "closed_port"
        else "http://discord.reelbot-test.invalid/api/v10"
    )
    proc = subprocess.Popen(
        [sys.executable, "bot.py"],
        cwd=ROOT,
        env=_env(tmp_path, DISCORD_API_BASE=base),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while sum("cannot reach Discord" in line for line in lines) < 2:  # it retried
            line = proc.stdout.readline()
            assert line, f"bot.py exited ({proc.wait()}):\n{''.join(lines)}"
            lines.append(line)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "voice will NOT" not in output, output
    tries = [line for line in output.splitlines() if "cannot reach Discord" in line]
    host = "127.0.0.1" if where == "closed_port" else "discord.reelbot-test.invalid"
    assert all(host in line and "retrying in" in line for line in tries), tries
    # one line per attempt, nothing else between them but the INFO lines of start/stop
    noise = [
        line
        for line in output.splitlines()
        if line.strip() and "cannot reach Discord" not in line and " INFO " not in line
    ]
    assert noise == [], output
