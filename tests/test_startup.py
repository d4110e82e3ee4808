"""Starting ``python bot.py`` the way a new operator would: what the console shows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bot as bot_main
from reelbot.app import Reelbot
from reelbot.config import Config
from reelbot.ops import resources as resources_module
from reelbot.ops.discordpy import use_api_base
from reelbot.ops.resources import Resources, open_resources
from reelbot.ops.roles import ALL_IN_ONE

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


# --- who owns what: the entry opens the sessions and the store, and closes them ----------
async def test_the_bot_leaves_its_resources_to_whoever_opened_them(world_factory) -> None:
    world = await world_factory(start=False)
    config = world.config
    use_api_base(config.discord_api_base)
    async with open_resources(config) as resources:
        bot = Reelbot(config, resources, guild_ready_timeout=0.1)
        await bot.login(config.discord_token)  # setup_hook: the poller runs
        await bot.close()
        # Closed by the entry once the bot (its poller) has stopped, never by the bot:
        # it cannot know whether the entry still writes (the harness reads the store).
        assert not resources.session.closed and not resources.download_session.closed
        assert await resources.store.count_unfinished() == 0  # the store still answers
    assert resources.session.closed and resources.download_session.closed


async def test_a_stop_while_the_store_opens_starts_nothing(
    world_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bot.py opens the store between "Discord is reachable" and building the bot; a
    # SIGTERM meanwhile (a slow PostgreSQL) has no bot to close yet, so the bot must
    # not start afterwards: it would run until a second signal.
    world = await world_factory(start=False)
    real_open = resources_module.open_resources

    @contextlib.asynccontextmanager
    async def open_then_sigterm(config: Config) -> AsyncIterator[Resources]:
        async with real_open(config) as opened:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.1)  # the loop runs bot.py's signal handler
            yield opened

    monkeypatch.setattr(resources_module, "open_resources", open_then_sigterm)
    loop = asyncio.get_running_loop()
    try:
        assert await asyncio.wait_for(bot_main.run_bot(world.config, ALL_IN_ONE), 15) == 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    assert world.discord.commands(world.guild_id) == []  # never logged in: nothing synced
