"""``python bot.py --sandbox``: the real bot against local doubles, narrated on stdout.

No token, no API keys, no network: the Discord double and the five provider doubles
run on 127.0.0.1 in this process. ``--once`` runs one /animate per protocol and exits
0 when every video has arrived in its thread (non-zero, with the reason, otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path

from doubles.harness import World, build_world, input_png
from providers import PROVIDER_IDS

log = logging.getLogger(__name__)

ONCE_TIMEOUT = 90.0
PROMPTS = {
    "higgsfield": "a paper boat sailing through a rainy street",
    "higgsfield_feed": "the cat throws a punch",
    "hiapi": "a lighthouse at dawn, waves crashing",
    "foxapi": "a fox running through snow",
    "gptge": "a neon city seen from a drone",
}


def say(text: str) -> None:
    print(text, flush=True)


async def narrate(world: World) -> None:
    """Print every message the bot or a member posts or edits, as a member would see it."""
    double = world.discord
    names = {uid: name for name, uid in world.users.items()}
    seen: dict[int, int] = {}  # message id -> number of edits already shown
    version = -1
    while True:
        await double.wait_for(lambda v=version: double._notifier.version != v, timeout=3600)
        version = double._notifier.version
        channels = [world.channel_id, *(t.id for t in double.threads(world.channel_id))]
        for channel_id in channels:
            for message in double.messages(channel_id):
                edits = len(message.edits)
                if seen.get(message.id) == edits:
                    continue
                verb = "posted" if message.id not in seen else "edited"
                seen[message.id] = edits
                author = (
                    "bot"
                    if message.author_id == double.bot_user_id
                    else names.get(message.author_id, str(message.author_id))
                )
                first = (message.content or "").splitlines()[0] if message.content else ""
                files = ", ".join(f"{a.filename} ({a.size} B)" for a in message.attachments)
                say(
                    f"  #{channel_id} {author} {verb}: {first[:100]}"
                    + (f"  📎 {files}" if files else "")
                )


async def run_once(world: World) -> int:
    pending = {}
    for pid in world.providers:
        say(f"> /animate provider:{pid} prompt:{PROMPTS[pid]!r}")
        image = input_png() if pid == "higgsfield_feed" else None
        ix = await world.animate("alice", prompt=PROMPTS[pid], provider=pid, image=image)
        pending[pid] = ix

    async def wait_for_video(pid: str) -> str | None:
        ix = pending[pid]
        try:
            await ix.wait_for_response(timeout=10)
            await world.discord.wait_for(
                lambda: _video_for(world, pid) is not None, timeout=ONCE_TIMEOUT
            )
        except TimeoutError as exc:
            return f"{pid}: no video within {ONCE_TIMEOUT:.0f} s ({exc})"
        return None

    errors = [e for e in await asyncio.gather(*(wait_for_video(p) for p in pending)) if e]
    for pid in pending:
        msg = _video_for(world, pid)
        if msg is not None:
            say(f"✔ {pid}: video delivered in thread {msg.channel_id}")
    for err in errors:
        say(f"✘ {err}")
    say("sandbox: all videos arrived" if not errors else "sandbox: FAILED")
    return 0 if not errors else 1


def _video_for(world: World, pid: str):
    """The delivered video message of the sandbox task for provider ``pid``."""
    for thread in world.discord.threads(world.channel_id):
        messages = world.discord.messages(thread.id)
        if not any(f"**Provider:** {pid}" in (m.content or "") for m in messages):
            continue
        for m in messages:
            if m.author_id == world.discord.bot_user_id and any(
                a.filename.endswith(".mp4") for a in m.attachments
            ):
                return m
    return None


async def run_sandbox(*, once: bool) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("reelbot").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="reelbot-sandbox-") as tmp:
        say("Starting the Discord double, five provider doubles and the real bot…")
        world = await build_world(
            Path(tmp),
            provider_ids=PROVIDER_IDS,
            env={"POLL_INTERVAL_SECONDS": "0.3", "POLL_MAX_INTERVAL_SECONDS": "2"},
        )
        narrator = asyncio.create_task(narrate(world))
        say(
            f"Discord double at {world.discord.api_base}; guild {world.guild_id}, "
            f"channel #videos {world.channel_id}; members: {', '.join(world.users)}"
        )
        try:
            if once:
                return await run_once(world)
            code = await run_once(world)
            say("The sandbox keeps running; press Ctrl-C to stop.")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            if sys.platform != "win32":  # the event loop has no signal handlers there
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            return code
        finally:
            narrator.cancel()
            await world.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(run_sandbox(once=True)))
