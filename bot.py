"""Reelbot entry point: ``python bot.py`` (or ``--sandbox [--once]`` to try it offline)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from dotenv import load_dotenv

from reelbot.config import Config, ConfigError, load_config

log = logging.getLogger("reelbot")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-8s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    # discord.py's gateway chatter at INFO is noise for operators.
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.WARNING))


async def run_bot(config: Config) -> int:
    from reelbot.app import Reelbot, use_api_base

    use_api_base(config.discord_api_base)
    bot = Reelbot(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    closing: list[asyncio.Task[None]] = []  # keep a reference until it finishes

    def request_stop(signame: str) -> None:
        if not stopping.is_set():
            log.info("%s received: finishing in-flight work and stopping", signame)
            stopping.set()
            closing.append(loop.create_task(bot.close()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig.name)
    try:
        await bot.start(config.discord_token)
    except Exception as exc:
        import discord

        if isinstance(exc, discord.LoginFailure):
            log.error("DISCORD_TOKEN was rejected by Discord: check the token in .env")
        elif isinstance(exc, discord.PrivilegedIntentsRequired):
            log.error(
                "enable the Message Content intent for this bot in the Developer Portal "
                "(Bot → Privileged Gateway Intents) and start again"
            )
        else:
            log.exception("the bot stopped because of an error")
        await bot.close()
        return 1
    finally:
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    load_dotenv(override=False)  # the process environment wins over .env
    if args.sandbox:
        from reelbot.sandbox import run_sandbox

        return asyncio.run(run_sandbox(once=args.once))
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"reelbot: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    try:
        return asyncio.run(run_bot(config))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
