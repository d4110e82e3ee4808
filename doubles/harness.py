"""A whole world on 127.0.0.1: the Discord double, the five provider doubles, the real bot.

Used by the end-to-end tests and by ``python bot.py --sandbox``. The bot is the
unmodified product (``reelbot.app.Reelbot``) configured through the same
environment variables an operator would set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord

from doubles.billing import TALLY, DoubleBilled, Ledger, ledgers
from doubles.discord import DiscordDouble
from doubles.providers import ProviderDouble, make_double
from providers import PROVIDER_IDS
from reelbot.app import Reelbot
from reelbot.config import DEFAULT_API_BASE, Config, load_config
from reelbot.ops.discordpy import use_api_base
from reelbot.ops.resources import open_resources
from reelbot.ops.roles import Role
from reelbot.store import open_store
from reelbot.store.models import TaskRow

log = logging.getLogger(__name__)

MEDIA = Path(__file__).resolve().parent / "media"
API_KEY = "double-key"
MANAGE_GUILD = 0x20


@dataclass
class World:
    discord: DiscordDouble
    providers: dict[str, ProviderDouble]
    data_dir: Path
    env: dict[str, str]
    guild_id: int = 0
    channel_id: int = 0
    mod_role_id: int = 0
    admin_role_id: int = 0
    users: dict[str, int] = field(default_factory=dict)
    bot: Reelbot | None = None
    _bot_task: asyncio.Task[None] | None = None
    # The bot's sessions and store: opened here, as bot.py opens them, and closed here
    # once the bot has stopped (a restart opens new ones on the same store file).
    _bot_resources: contextlib.AsyncExitStack | None = None
    extra: list[tuple[Reelbot, asyncio.Task[None] | None, contextlib.AsyncExitStack]] = field(
        default_factory=list
    )
    # Orphan provider tasks a test makes on purpose (doubles/billing.py), per provider.
    allowed_orphans: dict[str, int] = field(default_factory=dict)
    check_billing: bool = True

    @property
    def config(self) -> Config:
        return load_config(self.env)

    # --- lifecycle ------------------------------------------------------------------------
    async def start_bot(self, **env: str) -> Reelbot:
        """Start (or restart) the real bot against the doubles; returns once it is ready."""
        if self.bot is not None:
            raise RuntimeError("bot already running")
        self.env.update(env)
        config = load_config(self.env)
        use_api_base(config.discord_api_base)
        owned = contextlib.AsyncExitStack()
        resources = await owned.enter_async_context(open_resources(config))
        bot = Reelbot(config, resources, guild_ready_timeout=0.1)
        self.bot, self._bot_resources = bot, owned
        self._bot_task = asyncio.create_task(bot.start(config.discord_token), name="bot")
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self._bot_task}, timeout=20, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._bot_task in done:
                self._bot_task.result()  # raise the start-up error
            raise TimeoutError("the bot did not become ready within 20 s")
        return bot

    async def start_process(self, role: Role, **env: str) -> Reelbot:
        """Another bot process (in this event loop) with a role: gateway shards or a worker."""
        config = load_config({**self.env, **env})
        use_api_base(config.discord_api_base)
        owned = contextlib.AsyncExitStack()
        resources = await owned.enter_async_context(open_resources(config))
        bot = Reelbot(config, resources, role=role, guild_ready_timeout=0.1)
        task = None
        if role.gateway:
            task = asyncio.create_task(bot.start(config.discord_token), name=f"bot-{role.name}")
        self.extra.append((bot, task, owned))  # closed by close(), even if it never starts
        if task is not None:
            await asyncio.wait_for(bot.wait_until_ready(), 20)
        else:
            await bot.login(config.discord_token)
        return bot

    async def stop_bot(self) -> None:
        """A clean stop (SIGTERM path)."""
        bot, task, owned = self.bot, self._bot_task, self._bot_resources
        self.bot, self._bot_task, self._bot_resources = None, None, None
        if bot is not None:
            await bot.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if owned is not None:
            await owned.aclose()  # the store and the sessions, after the bot stopped

    async def kill_bot(self) -> None:
        """An abrupt stop: no goodbye, in-flight work abandoned mid-way (like kill -9).

        In-process we cannot lose the OS process, so we cancel every bot task and
        drop connections without the orderly shutdown; leases and half-done writes
        stay as they were. The subprocess test covers a real SIGKILL.
        """
        bot, task, owned = self.bot, self._bot_task, self._bot_resources
        self.bot, self._bot_task, self._bot_resources = None, None, None
        if bot is None:
            return
        worker = bot.services.worker
        for running in list(bot.poller._running):
            running.cancel()
        for loop_task in (worker.poller_task, worker.sweep_task):
            if loop_task is not None:
                loop_task.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await discord.Client.close(bot)
        if owned is not None:
            with contextlib.suppress(Exception):
                await owned.aclose()

    async def close(self) -> None:
        """Stop everything; then fail if a provider double billed a task twice."""
        await self.stop_bot()
        for bot, task, owned in self.extra:
            await bot.close()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
            await owned.aclose()
        self.extra.clear()
        found: list[Ledger] = []
        if self.check_billing:
            try:
                found = await self.billing()
            except Exception:
                # A test that removed its store on purpose; counted, never silently.
                log.warning("could not read the store to check billing", exc_info=True)
                TALLY.unchecked += 1
            else:
                TALLY.add(found, os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0])
        for double in self.providers.values():
            await double.close()
        await self.discord.close()
        use_api_base(DEFAULT_API_BASE)
        billed = [ledger for ledger in found if ledger.double_billed]
        if billed:
            raise DoubleBilled(
                "provider tasks created but tracked by no Reelbot task, beyond what "
                f"ambiguous submit failures explain: {billed}"
            )

    def allow_orphans(self, provider: str, count: int = 1) -> None:
        """This test leaves ``count`` provider tasks untracked on purpose."""
        self.allowed_orphans[provider] = self.allowed_orphans.get(provider, 0) + count

    async def billing(self) -> list[Ledger]:
        """Each double's created tasks against the store (doubles/billing.py)."""
        created = {pid: double.created_ids() for pid, double in self.providers.items()}
        if not any(created.values()):
            return ledgers(created, [], self.allowed_orphans)
        return ledgers(created, await self.stored_tasks(), self.allowed_orphans)

    async def stored_tasks(self) -> list[TaskRow]:
        """Every task in the store, read through a connection of our own."""
        store = open_store(load_config(self.env).database_url)
        await store.open()
        try:
            tasks: list[TaskRow] = []
            for guild_id in self.discord._state.guilds:  # every guild the double knows
                tasks += await store.guild_tasks(guild_id, limit=1_000_000)
            return tasks
        finally:
            await store.close()

    # --- driving it -------------------------------------------------------------------------
    async def animate(
        self,
        user: str = "alice",
        *,
        channel_id: int | None = None,
        image: bytes | None = None,
        **options: Any,
    ):
        attachments = {}
        if image is not None:
            attachments["image"] = ("input.png", image, "image/png")
        return await self.discord.invoke(
            "animate",
            guild_id=self.guild_id,
            channel_id=channel_id or self.channel_id,
            user_id=self.users[user],
            options=options,
            attachments=attachments,
        )

    async def command(self, command_name: str, as_user: str = "alice", /, **options: Any):
        return await self.discord.invoke(
            command_name,
            guild_id=self.guild_id,
            channel_id=self.channel_id,
            user_id=self.users[as_user],
            options=options,
        )


async def build_world(
    data_dir: Path,
    *,
    provider_ids: tuple[str, ...] = PROVIDER_IDS,
    env: Mapping[str, str] | None = None,
    start: bool = True,
    shard_count: int = 1,
    callbacks: bool = False,
    hiapi_webhook_secret: str = "",
) -> World:
    """Start the doubles and (unless ``start`` is False) the bot.

    ``callbacks``: the bot serves its callback endpoint on a free local port
    (PUBLIC_BASE_URL=http://127.0.0.1:<port>) and the doubles call it back;
    ``hiapi_webhook_secret`` signs hiapi's callbacks (and the bot checks them).
    """
    discord_double = DiscordDouble(shard_count=shard_count)
    await discord_double.start()
    doubles: dict[str, ProviderDouble] = {}
    for pid in provider_ids:
        double = make_double(pid, api_key=API_KEY)
        await double.start()
        doubles[pid] = double

    world = World(discord=discord_double, providers=doubles, data_dir=data_dir, env={})
    world.guild_id = discord_double.add_guild("Reelbot Test Server", premium_tier=0)
    world.channel_id = discord_double.add_channel(world.guild_id, "videos")
    world.mod_role_id = discord_double.add_role(world.guild_id, "Video Mods", permissions=0)
    world.admin_role_id = discord_double.add_role(
        world.guild_id, "Admins", permissions=MANAGE_GUILD
    )
    world.users = {
        "alice": discord_double.add_member(world.guild_id, "alice"),
        "bob": discord_double.add_member(world.guild_id, "bob"),
        "mod": discord_double.add_member(world.guild_id, "mod", roles=[world.mod_role_id]),
        "admin": discord_double.add_member(world.guild_id, "admin", roles=[world.admin_role_id]),
    }
    world.env = {
        "DISCORD_TOKEN": discord_double.token,
        "DISCORD_API_BASE": discord_double.api_base,
        "DISCORD_GUILD_IDS": str(world.guild_id),
        "DATABASE_URL": f"sqlite:///{data_dir / 'reelbot.db'}",
        "DATA_DIR": str(data_dir),
        "POLL_INTERVAL_SECONDS": "0.05",
        "POLL_MAX_INTERVAL_SECONDS": "0.2",
        "TASK_TIMEOUT_SECONDS": "120",
        "DAILY_QUOTA": "10",
        "MODERATOR_ROLE_IDS": str(world.mod_role_id),
        "USER_COOLDOWN_SECONDS": "0",
        "MAX_USER_IN_FLIGHT": "0",
        "ALLOW_LOCAL_URLS": "true",
        "LOG_LEVEL": "INFO",
    }
    for pid, double in doubles.items():
        world.env[f"{pid.upper()}_API_KEY"] = API_KEY
        world.env[f"{pid.upper()}_BASE_URL"] = double.base_url
    if callbacks:
        for double in doubles.values():
            if double.completion_delay is None:
                # A provider that calls back finishes on its own clock, not after a
                # number of polls (the default timeline would wait for the sparse poll).
                double.completion_delay = lambda _index: CALLBACK_WORLD_SECONDS
        port = free_port()
        world.env |= {
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
        }
    if hiapi_webhook_secret:
        world.env["HIAPI_WEBHOOK_SECRET"] = hiapi_webhook_secret
        hiapi = doubles.get("hiapi")
        if hiapi is not None:
            hiapi.webhook_secret = hiapi_webhook_secret  # type: ignore[attr-defined]
    world.env.update(env or {})
    if start:
        await world.start_bot()
    return world


CALLBACK_WORLD_SECONDS = 2.0  # build_world(callbacks=True): how long a generation takes


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for the bot's callback server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def sample_video() -> bytes:
    return (MEDIA / "sample.mp4").read_bytes()


def input_png() -> bytes:
    return (MEDIA / "input.png").read_bytes()
