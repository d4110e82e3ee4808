"""Reelbot entry point: ``python bot.py`` (or ``--sandbox [--once]`` to try it offline)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

import aiohttp
from dotenv import load_dotenv

from reelbot.config import Config, ConfigError, load_config
from reelbot.ops.logs import setup_logging
from reelbot.ops.roles import ALL_IN_ONE, WORKER, Role, parse_shards

log = logging.getLogger("reelbot")


async def run_bot(config: Config, role: Role) -> int:
    """Own every resource: open the HTTP sessions and the store, hand them to the bot,
    and close them once it has stopped (its worker first, so in-flight writes finish)."""
    from reelbot.app import Reelbot
    from reelbot.ops.discordpy import use_api_base
    from reelbot.ops.reach import wait_until_reachable
    from reelbot.ops.resources import open_resources

    use_api_base(config.discord_api_base)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    closing: list[asyncio.Task[None]] = []  # keep a reference until it finishes
    started: list[Reelbot] = []

    def request_stop(signame: str) -> None:
        if not stopping.is_set():
            log.info("%s received: finishing in-flight work and stopping", signame)
            stopping.set()
            if started:
                closing.append(loop.create_task(started[0].close()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig.name)
    # Discord down (or DNS, or the network) at start: say so in one line and keep trying,
    # as discord.py does by itself once connected. A stop meanwhile exits cleanly.
    if not await wait_until_reachable(config.discord_api_base, stopping):
        return 0
    async with contextlib.AsyncExitStack() as owned:
        try:
            resources = await owned.enter_async_context(open_resources(config))
        except Exception:
            log.exception("the bot stopped because of an error")
            return 1
        bot = Reelbot(config, resources, role=role)
        if stopping.is_set():
            return 0  # asked to stop while the store was opening: nothing to stop
        started.append(bot)
        try:
            if role.gateway:
                await bot.start(config.discord_token)
            else:
                # A worker needs REST only: log in (runs setup_hook, starts the poller)
                # and keep going until asked to stop. No gateway connection, no shard.
                await bot.login(config.discord_token)
                await stopping.wait()
        except Exception as exc:
            import discord

            if isinstance(exc, discord.LoginFailure):
                log.error("DISCORD_TOKEN was rejected by Discord: check the token in .env")
            elif isinstance(exc, discord.PrivilegedIntentsRequired):
                log.error(
                    "enable the Message Content intent for this bot in the Developer Portal "
                    "(Bot → Privileged Gateway Intents) and start again"
                )
            elif isinstance(exc, aiohttp.ClientConnectionError):
                # Reachable a moment ago, gone during the log-in: one line, and a
                # supervisor (systemd, docker) starts us again.
                log.error("lost the connection to Discord while starting (%r); stopping", exc)
            else:
                log.exception("the bot stopped because of an error")
            await bot.close()
            return 1
        finally:
            # bot.start() returns as soon as the gateway is closed, while the signal's
            # close() may still be stopping the worker: let it finish, so that the store
            # and the sessions close (leaving this block) only after it.
            if closing:
                await asyncio.gather(*closing, return_exceptions=True)
            if not bot.is_closed():
                await bot.close()
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Reelbot: /animate videos on Discord")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against local Discord and provider doubles (no token or keys needed)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="with --sandbox: run one /animate per provider and exit 0 when all arrived",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="with --sandbox: serve the page on this 127.0.0.1 port (default: a free one)",
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="poll providers and deliver results only (no gateway connection)",
    )
    parser.add_argument(
        "--shards",
        metavar="IDS",
        help="run the gateway for these shards only, e.g. 0,1 (needs --shard-count)",
    )
    parser.add_argument("--shard-count", type=int, metavar="N", help="total number of shards")
    return parser.parse_args(argv)


def role_from_args(args: argparse.Namespace) -> Role:
    if args.worker and args.shards:
        raise ValueError("choose --worker or --shards, not both")
    if args.worker:
        return WORKER
    if args.shards:
        return parse_shards(args.shards, args.shard_count)
    if args.shard_count is not None:
        raise ValueError("--shard-count goes with --shards")
    return ALL_IN_ONE


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    load_dotenv(override=False)  # the process environment wins over .env
    if args.sandbox:
        # Test doubles live beside the product, not in it: imported only here.
        try:
            from doubles.sandbox.run import run_sandbox
        except ImportError as exc:
            print(
                f"reelbot: --sandbox runs from a source checkout (doubles/ not found: {exc})",
                file=sys.stderr,
            )
            return 2

        return asyncio.run(run_sandbox(once=args.once, port=args.port))
    try:
        role = role_from_args(args)
        config = load_config()
    except ValueError as exc:
        print(f"reelbot: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"reelbot: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format, role=role.name)
    try:
        return asyncio.run(run_bot(config, role))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
