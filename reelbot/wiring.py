"""The bot's services, built and connected: the one place that does either.

The entry point opens the resources (:mod:`reelbot.ops.resources`) and hands them to
the bot, whose constructor calls :func:`wire` once; ``setup_hook`` then runs
:func:`prepare` and starts the worker and the servers. Nothing here opens or closes a
session or the store, and nothing else constructs a service.

Most services get everything through their constructor. Where one needs another that
is built after it (a genuine cycle), or its constructor takes no such argument yet,
the link is made here after both exist (see "Links made after construction" in
:func:`wire`), and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord

from providers import provider_class
from providers.base import Provider
from providers.http import ProviderHttp
from reelbot.buttons import EtaBook
from reelbot.callbacks import CallbackServer, ShortLinks
from reelbot.characters.kind import TrainingKind
from reelbot.characters.service import Characters
from reelbot.config import Config
from reelbot.failover.book import HealthBook
from reelbot.generations.kind import VideoKind
from reelbot.generations.service import Generations
from reelbot.jobs.delivery import Delivery, DeliverySettings
from reelbot.jobs.failover import SubmitFailover
from reelbot.jobs.inputs import InputStore, UrlRefresher
from reelbot.jobs.kinds import JobKinds
from reelbot.jobs.poller import Poller, PollerSettings
from reelbot.jobs.scheduling import CompletionModel
from reelbot.ops.health import HealthServer
from reelbot.ops.resources import Resources
from reelbot.ops.roles import Role
from reelbot.ops.worker import Worker
from reelbot.spending import Spending, member_roles_via
from reelbot.store import Store
from reelbot.store.models import QuotaPolicy, TaskRow

log = logging.getLogger(__name__)

SUBMIT_GRACE_MARGIN = 5.0
ETA_SEED_LIMIT = 2000  # recent completions per provider, shared among its models


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the bot runs on, connected. The store is the entry's (Resources):
    here so that every service reads it from one place, closed by whoever opened it."""

    store: Store
    providers: dict[str, Provider]
    health_book: HealthBook
    inputs: InputStore
    delivery: Delivery
    poller: Poller
    characters: Characters
    generations: Generations
    worker: Worker  # started in worker processes only; stopped in every one
    callbacks: CallbackServer | None  # PUBLIC_BASE_URL set: providers call back
    health: HealthServer | None  # HEALTH_PORT set


def build_providers(config: Config, session: aiohttp.ClientSession) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for pc in config.providers:
        cls = provider_class(pc.id)
        http = ProviderHttp(session, provider_id=pc.id, base_url=pc.base_url, api_key=pc.api_key)
        providers[pc.id] = cls(http)
    return providers


def submit_grace(providers: Iterable[Provider]) -> float:
    """How long a stop waits for a submit in flight: its whole request timeout, plus a
    moment to record the answer (the SIGTERM grace of a container must be longer)."""
    timeouts = [p.http.timeout.total or 0.0 for p in providers]
    return max(timeouts, default=0.0) + SUBMIT_GRACE_MARGIN


def eta_of(
    providers: Mapping[str, Provider],
    book: EtaBook,
    completion_models: Mapping[str, CompletionModel],
) -> Callable[[TaskRow], str | None]:
    """The ETA ("usually ready in about N min") of a task in flight."""

    def eta(task: TaskRow) -> str | None:
        """This provider's and model's recent completion times; the provider's (the
        poller's model) stands in only for a provider with a single model. None while
        there are too few, and for anything but a video: the history is of videos."""
        if task.kind != "video":
            return None
        provider = providers.get(task.provider)
        return book.text_for(
            task,
            provider_model=completion_models.get(task.provider),
            single_model=provider is not None and len(provider.models()) <= 1,
        )

    return eta


def status_message_image(client: discord.Client) -> UrlRefresher:
    """Where a kept first frame gets a fresh CDN URL: the status message that shows it."""

    async def refresh(meta: dict[str, Any]) -> str | None:
        channel_id, message_id = meta.get("status_channel_id"), meta.get("status_message_id")
        if not channel_id or not message_id:
            return None
        channel = client.get_partial_messageable(channel_id)
        message = await channel.fetch_message(message_id)
        return message.attachments[0].url if message.attachments else None

    return refresh


def wire(config: Config, role: Role, resources: Resources, client: discord.Client) -> Services:
    """Build every service on the entry's resources and connect them (no I/O)."""
    store = resources.store
    providers = build_providers(config, resources.session)
    # Health per provider, shared by every process through the store (SPEC §4).
    health_book = HealthBook(
        store=store,
        providers=providers,
        order=config.failover_providers,
        cooloff=config.provider_cooloff,
    )
    inputs = InputStore(config.data_dir / "inputs", refresher=status_message_image(client))
    kinds = JobKinds()
    delivery = Delivery(
        client=client,
        store=store,
        providers=providers,
        session=resources.download_session,
        settings=DeliverySettings(
            max_download_bytes=config.max_download_bytes,
            allow_local_urls=config.allow_local_urls,
        ),
        kinds=kinds,
    )
    # A moved request is re-priced under the member's limits, role limits too. Spending
    # holds no state of its own: this one prices for the failover, the generations'
    # own (below) for new requests, under the same rules.
    roles_of = member_roles_via(client)
    spending = Spending(config=config, store=store, roles_of=roles_of)

    async def policy_of(task: TaskRow) -> QuotaPolicy:
        return await spending.policy(
            task.guild_id, task.requester_id, is_moderator=False, cooldown=False
        )

    poller = Poller(
        store=store,
        providers=providers,
        settings=PollerSettings(
            poll_interval=config.poll_interval,
            poll_max_interval=config.poll_max_interval,
            task_timeout=config.task_timeout,
            idle_wake=config.poll_interval,
            lease_seconds=config.task_lease,
            submit_grace=submit_grace(providers.values()),
        ),
        inputs=inputs,
        deliver=delivery.deliver,
        on_status=delivery.update_status,
        on_delivered=delivery.offer_retry,
        kinds=kinds,
        failover=SubmitFailover(book=health_book, policy_of=policy_of, price_of=spending.price),
    )
    characters = Characters(
        config=config,
        store=store,
        providers=providers,
        client=client,
        directory=config.data_dir / "characters",
        wake=poller.wake,
    )
    # Each kind of task is registered by its owner; the poller and delivery read them.
    kinds.register(VideoKind(inputs, callback_base=config.public_base_url))
    kinds.register(TrainingKind(characters))
    # Cycles: delivery feeds the poller (deliver, on_status), yet shows an ETA read from
    # the poller's completion models; the ETA needs both.
    eta = eta_of(providers, delivery.eta_book, poller.completion_models)
    generations = Generations(
        config=config,
        store=store,
        providers=providers,
        inputs=inputs,
        wake=poller.wake,
        kinds=kinds,
        health=health_book,
        eta=eta,
        spending=spending,
    )

    # --- Links made after construction ------------------------------------------------
    # Delivery is built first (the poller needs it), yet shows that ETA and offers Vary
    # by the generations' rules, which are built last.
    delivery.eta = eta
    delivery.can_vary = generations.can_vary
    # No cycle, but Delivery takes it as an attribute, not an argument.
    if config.callbacks_enabled:
        delivery.shorten = ShortLinks(store, config.public_base_url).shorten

    callbacks = None
    if config.callbacks_enabled:
        # Any process may take callbacks: the store makes the task due (and on
        # PostgreSQL NOTIFYs the workers); a worker here is also woken directly.
        callbacks = CallbackServer(
            store=store,
            wake=poller.wake,
            host=config.webhook_host,
            port=config.webhook_port,
            providers=tuple(providers),
            hiapi_secret=config.hiapi_webhook_secret,
        )
    health = None
    if config.health_port:
        health = HealthServer(
            role=role,
            latency=lambda: client.latency,
            poller=poller,
            book=health_book,
            host=config.health_host,
            port=config.health_port,
        )
    return Services(
        store=store,
        providers=providers,
        health_book=health_book,
        inputs=inputs,
        delivery=delivery,
        poller=poller,
        characters=characters,
        generations=generations,
        worker=Worker(poller=poller, store=store, generations=generations),
        callbacks=callbacks,
        health=health,
    )


async def prepare(services: Services, role: Role) -> None:
    """What the store says at start: leases of a previous run voided (one process per
    SQLite file), work to resume, and the ETA's history."""
    store = services.store
    # One process per SQLite file: leases left by a previous run are void. Processes
    # sharing PostgreSQL must not void each other's: expired leases are re-claimed.
    released = await store.release_all_leases() if store.single_process and role.worker else 0
    pending = await store.count_unfinished()
    log.info("store ready: %d unfinished task(s) to resume (%d leases reset)", pending, released)
    # The status message's ETA starts from the store's recent completions.
    for pid in services.providers:
        try:
            completions = await store.recent_completions(pid, limit=ETA_SEED_LIMIT)
        except Exception:
            log.warning("could not read %s's recent completions", pid, exc_info=True)
            continue
        services.delivery.eta_book.seed(pid, completions)
