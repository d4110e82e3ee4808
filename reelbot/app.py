"""The bot: one object that owns every resource (session, store, providers, poller).

``setup_hook`` opens them in order, loads the cogs and syncs commands; ``close``
stops the poller first (so in-flight store writes finish), then Discord, then the
store and the HTTP session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from providers import provider_class
from providers.base import Provider
from providers.http import ProviderHttp
from reelbot.callbacks import CallbackServer, ShortLinks
from reelbot.characters.kind import TrainingKind
from reelbot.characters.service import Characters
from reelbot.config import DEFAULT_API_BASE, Config
from reelbot.failover.book import HealthBook
from reelbot.generations.kind import VideoKind
from reelbot.generations.service import Generations, UserError
from reelbot.jobs.delivery import Delivery, DeliverySettings
from reelbot.jobs.downloads import download_session
from reelbot.jobs.failover import SubmitFailover
from reelbot.jobs.inputs import InputStore
from reelbot.jobs.kinds import JobKinds
from reelbot.jobs.poller import Poller, PollerSettings
from reelbot.ops.health import HealthServer
from reelbot.ops.roles import ALL_IN_ONE, Role
from reelbot.spending import member_roles_via
from reelbot.store import Store, open_store
from reelbot.store.models import QuotaPolicy, TaskRow
from reelbot.text import clip, clip_message

log = logging.getLogger(__name__)

COGS = (
    "cogs.animate",
    "cogs.actions",
    "cogs.quota",
    "cogs.jobs",
    "cogs.characters",
    "cogs.settings",
    "cogs.providers",
)


def build_providers(config: Config, session: aiohttp.ClientSession) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for pc in config.providers:
        cls = provider_class(pc.id)
        http = ProviderHttp(session, provider_id=pc.id, base_url=pc.base_url, api_key=pc.api_key)
        providers[pc.id] = cls(http)
    return providers


def use_api_base(api_base: str) -> None:
    """Point discord.py's REST layer at ``DISCORD_API_BASE`` (a proxy or a local double).

    discord.py has no constructor argument for this; ``Route.BASE`` is read on every
    request, including interaction callbacks and webhooks.
    """
    discord.http.Route.BASE = api_base.rstrip("/")


def silence_voice_warnings() -> None:
    """Reelbot has no voice: drop discord.py's "PyNaCl/davey is not installed, voice will
    NOT be supported" start-up warnings, and only those.

    ``Client.__init__`` logs each once per process, guarded by these two flags (set when
    the library is missing); clearing them skips exactly those two lines. Voice itself
    is untouched: connecting to a voice channel would still fail loudly.
    """
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


REACH_TIMEOUT = aiohttp.ClientTimeout(total=15)
REACH_FIRST_DELAY = 1.0
REACH_MAX_DELAY = 60.0


def _unreachable_reason(exc: BaseException) -> str:
    """What went wrong reaching a host, in a few words (no traceback)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return (os.strerror(error.errno) if error.errno else str(error)).lower()
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def wait_until_reachable(api_base: str, stopping: asyncio.Event) -> bool:
    """Wait until Discord's REST API answers at all (any HTTP status), retrying with
    exponential backoff and one log line per failed attempt. False when ``stopping``
    is set first.

    discord.py retries the gateway by itself once logged in, but a failed first login
    (DNS or network down at start) ends ``start()`` with a long traceback.
    """
    url = f"{api_base.rstrip('/')}/gateway"
    where = yarl.URL(api_base)
    host = f"{where.host}:{where.port}" if where.port else str(where.host)
    delay = REACH_FIRST_DELAY
    async with aiohttp.ClientSession(timeout=REACH_TIMEOUT) as session:
        while not stopping.is_set():
            try:
                async with session.get(url, allow_redirects=False):
                    return True
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.error(
                    "cannot reach Discord at %s (%s); retrying in %g s",
                    host,
                    _unreachable_reason(exc),
                    delay,
                )
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, REACH_MAX_DELAY)
    return False


RATELIMIT_SWEEP_SECONDS = 60.0
INPUT_SWEEP_INTERVAL = 6 * 3600.0
SUBMIT_GRACE_MARGIN = 5.0
ETA_SEED_LIMIT = 2000  # recent completions per provider, shared among its models


def throttle_ratelimit_sweep() -> None:
    """Make discord.py's rate-limit bucket clean-up O(1) amortised.

    discord.py 2.7 scans every bucket each time it creates one, once it holds 256+.
    Buckets are per channel and route, and every task has its own thread, so with
    thousands of tasks each new bucket cost a scan of thousands (12 % of the event
    loop at 10,000 tasks). Buckets are only dropped after 300 s idle anyway: sweeping
    once a minute keeps the same memory bound.
    """
    http_client = discord.http.HTTPClient
    if getattr(http_client, "_reelbot_throttled", False):
        return
    sweep = http_client._try_clear_expired_ratelimits

    def throttled(self: discord.http.HTTPClient) -> None:
        now = time.monotonic()
        if now - getattr(self, "_reelbot_last_sweep", 0.0) >= RATELIMIT_SWEEP_SECONDS:
            self._reelbot_last_sweep = now  # type: ignore[attr-defined]
            sweep(self)

    http_client._try_clear_expired_ratelimits = throttled  # type: ignore[method-assign]
    http_client._reelbot_throttled = True  # type: ignore[attr-defined]


class Reelbot(commands.AutoShardedBot):
    store: Store
    session: aiohttp.ClientSession
    download_session: aiohttp.ClientSession
    providers: dict[str, Provider]
    generations: Generations
    poller: Poller
    delivery: Delivery
    characters: Characters
    health_book: HealthBook

    def __init__(self, config: Config, *, role: Role = ALL_IN_ONE, **options: Any) -> None:
        intents = discord.Intents.default()
        # /character collects reference photos posted in a thread: reading attachments
        # of members' messages needs the privileged Message Content intent.
        intents.message_content = True
        options.setdefault("chunk_guilds_at_startup", False)
        silence_voice_warnings()
        if role.shard_ids is not None:
            options.update(shard_ids=list(role.shard_ids), shard_count=role.shard_count)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.config = config
        throttle_ratelimit_sweep()
        self.role = role
        self._poller_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._health: HealthServer | None = None
        self.callbacks: CallbackServer | None = None

    async def setup_hook(self) -> None:
        config, role = self.config, self.role
        if config.discord_api_base != DEFAULT_API_BASE:
            # A plain gateway default would go to discord.gg; ask the API instead.
            gateway = await self.http.get_bot_gateway()
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway[1])
        self.session = aiohttp.ClientSession()
        # Outputs come from wherever a provider points: their own session, whose connector
        # only connects to addresses it checked (no DNS rebinding to internal hosts).
        self.download_session = download_session(allow_local=config.allow_local_urls)
        self.store = open_store(config.database_url)
        await self.store.open()
        # One process per SQLite file: leases left by a previous run are void. Processes
        # sharing PostgreSQL must not void each other's: expired leases are re-claimed.
        released = (
            await self.store.release_all_leases()
            if self.store.single_process and role.worker
            else 0
        )
        pending = await self.store.count_unfinished()
        log.info(
            "store ready: %d unfinished task(s) to resume (%d leases reset)", pending, released
        )
        self.providers = build_providers(config, self.session)
        # Health per provider, shared by every process through the store (SPEC §4).
        self.health_book = HealthBook(
            store=self.store,
            providers=self.providers,
            order=config.failover_providers,
            cooloff=config.provider_cooloff,
        )
        inputs = InputStore(config.data_dir / "inputs", refresher=self._refresh_input_url)
        kinds = JobKinds()
        self.delivery = Delivery(
            client=self,
            store=self.store,
            providers=self.providers,
            session=self.download_session,
            settings=DeliverySettings(
                max_download_bytes=config.max_download_bytes,
                allow_local_urls=config.allow_local_urls,
            ),
            kinds=kinds,
        )
        self.poller = Poller(
            store=self.store,
            providers=self.providers,
            settings=PollerSettings(
                poll_interval=config.poll_interval,
                poll_max_interval=config.poll_max_interval,
                task_timeout=config.task_timeout,
                idle_wake=config.poll_interval,
                lease_seconds=config.task_lease,
                submit_grace=submit_grace(self.providers.values()),
            ),
            inputs=inputs,
            deliver=self.delivery.deliver,
            on_status=self.delivery.update_status,
            on_delivered=self.delivery.offer_retry,
            kinds=kinds,
        )
        self.characters = Characters(
            config=config,
            store=self.store,
            providers=self.providers,
            client=self,
            directory=config.data_dir / "characters",
            wake=self.poller.wake,
        )
        # Each kind of task is registered by its owner; the poller and delivery read them.
        kinds.register(VideoKind(inputs, callback_base=config.public_base_url))
        kinds.register(TrainingKind(self.characters))
        if config.callbacks_enabled:
            self.delivery.shorten = ShortLinks(self.store, config.public_base_url).shorten
        self.generations = Generations(
            config=config,
            store=self.store,
            providers=self.providers,
            inputs=inputs,
            wake=self.poller.wake,
            health=self.health_book,
        )
        self.generations.spending.roles_of = member_roles_via(self)
        spending = self.generations.spending

        async def policy_of(task: TaskRow) -> QuotaPolicy:
            # A moved request is re-priced under the member's limits (role limits too).
            return await spending.policy(
                task.guild_id, task.requester_id, is_moderator=False, cooldown=False
            )

        self.poller.failover = SubmitFailover(
            book=self.health_book, policy_of=policy_of, price_of=spending.price
        )
        self.generations.eta = self.delivery.eta = self.eta_for
        await self._seed_eta()
        self.delivery.can_vary = self.generations.can_vary
        if role.gateway:
            self.tree.error(self.on_app_command_error)
            self.tree.interaction_check = _guild_only  # type: ignore[method-assign]
            for cog in COGS:
                await self.load_extension(cog)
            if role.syncs_commands:
                await self.sync_commands()
        if role.worker:
            await self.store.subscribe(self.poller.wake)  # work added by other processes
            self._poller_task = asyncio.create_task(self.poller.run(), name="poller")
            self._poller_task.add_done_callback(_log_crash)
            self._sweep_task = asyncio.create_task(self._sweep_inputs(), name="input-sweep")
        if config.callbacks_enabled:
            # Any process may take callbacks: the store makes the task due (and on
            # PostgreSQL NOTIFYs the workers); a worker here is also woken directly.
            self.callbacks = CallbackServer(
                store=self.store,
                wake=self.poller.wake,
                host=config.webhook_host,
                port=config.webhook_port,
                providers=tuple(self.providers),
                hiapi_secret=config.hiapi_webhook_secret,
            )
            await self.callbacks.start()
        if config.health_port:
            self._health = HealthServer(self, host=config.health_host, port=config.health_port)
            await self._health.start()
        log.info("running as %s", role.name)

    async def _seed_eta(self) -> None:
        """The status message's ETA starts from the store's recent completions."""
        for pid in self.providers:
            try:
                completions = await self.store.recent_completions(pid, limit=ETA_SEED_LIMIT)
            except Exception:
                log.warning("could not read %s's recent completions", pid, exc_info=True)
                continue
            self.delivery.eta_book.seed(pid, completions)

    def eta_for(self, task: Any) -> str | None:
        """The ETA ("usually ready in about N min") of a video in flight: this provider's and
        model's recent completion times; the provider's (the poller's model) stands in
        only for a provider with a single model. None while there are too few."""
        if task.kind != "video":
            return None
        provider = self.providers.get(task.provider)
        return self.delivery.eta_book.text_for(
            task,
            provider_model=self.poller.completion_models.get(task.provider),
            single_model=provider is not None and len(provider.models()) <= 1,
        )

    async def _sweep_inputs(self) -> None:
        """At start and every few hours: remove first-frame images no task created
        within INPUT_RETENTION_DAYS uses."""
        while True:
            try:
                await self.generations.sweep_inputs(now=time.time())
            except Exception:
                log.warning("could not clean up old first-frame images", exc_info=True)
            await asyncio.sleep(INPUT_SWEEP_INTERVAL)

    async def sync_commands(self) -> None:
        if self.config.guild_ids:
            for gid in self.config.guild_ids:
                guild = discord.Object(gid)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), gid)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def _refresh_input_url(self, meta: dict[str, Any]) -> str | None:
        """A fresh CDN URL for a kept first frame, from the status message that shows it."""
        channel_id, message_id = meta.get("status_channel_id"), meta.get("status_message_id")
        if not channel_id or not message_id:
            return None
        channel = self.get_partial_messageable(channel_id)
        message = await channel.fetch_message(message_id)
        return message.attachments[0].url if message.attachments else None

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (%s) to %d guild(s)",
            self.user,
            getattr(self.user, "id", "?"),
            len(self.guilds),
        )

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserError):
            text = str(original)
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = "This command only works in a server channel, not in DMs."
        elif isinstance(error, app_commands.TransformerError):
            text = f"`{clip(str(error.value), 100)}` is not a valid value for that option."
        elif isinstance(error, app_commands.CheckFailure):
            text = "You are not allowed to use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command /%s failed for user %s in guild %s",
                command,
                interaction.user.id,
                interaction.guild_id,
                exc_info=original,
            )
            text = "Something went wrong on my side. It has been logged; please try again."
        await self._reply_ephemeral(interaction, text)

    @staticmethod
    async def _reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
        try:
            # Refusals quote what members typed: keep them within Discord's limit.
            content = clip_message(text)
            if interaction.response.is_done():
                await interaction.edit_original_response(content=content)
            else:
                await interaction.response.send_message(content, ephemeral=True)
        except discord.HTTPException:
            log.warning("could not send an error reply to interaction %s", interaction.id)

    async def close(self) -> None:
        """Stop taking work, let in-flight writes finish, then close everything."""
        if getattr(self, "poller", None) is not None:
            await self.poller.stop()
        if self._poller_task is not None:
            self._poller_task.cancel()
            await asyncio.gather(self._poller_task, return_exceptions=True)
        if self._sweep_task is not None:
            self._sweep_task.cancel()
            await asyncio.gather(self._sweep_task, return_exceptions=True)
        await super().close()
        if self.callbacks is not None:
            await self.callbacks.close()
        if self._health is not None:
            await self._health.close()
        if getattr(self, "store", None) is not None:
            await self.store.close()
        if getattr(self, "session", None) is not None:
            await self.session.close()
        if getattr(self, "download_session", None) is not None:
            await self.download_session.close()
        log.info("stopped cleanly at %s", time.strftime("%H:%M:%S"))


async def _guild_only(interaction: discord.Interaction) -> bool:
    """Every command works in a server only. ``guild_only`` merely asks Discord to hide
    them in DMs; a stale client or a user install can still send one, so refuse it here
    (NoPrivateMessage becomes an ephemeral reply) before any command code runs."""
    if interaction.guild_id is not None:
        return True
    if interaction.type is discord.InteractionType.autocomplete:
        return False  # nothing to offer, nothing to say
    raise app_commands.NoPrivateMessage()


def submit_grace(providers: Iterable[Provider]) -> float:
    """How long a stop waits for a submit in flight: its whole request timeout, plus a
    moment to record the answer (the SIGTERM grace of a container must be longer)."""
    timeouts = [p.http.timeout.total or 0.0 for p in providers]
    return max(timeouts, default=0.0) + SUBMIT_GRACE_MARGIN


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the poller stopped unexpectedly", exc_info=task.exception())
