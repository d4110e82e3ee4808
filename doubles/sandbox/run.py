"""``python bot.py --sandbox``: the real bot against local doubles, shown in a browser.

No token, no API keys, no network: the Discord double and the five provider doubles
run on 127.0.0.1 in this process, and a web page (``web.py``) shows the sandbox guild
as Discord would and lets the visitor act as one of its members. The conversation is
also narrated on stdout. ``--once`` runs one /animate per protocol and exits 0 when
every video has arrived in its thread (non-zero, with the reason, otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path

from doubles.harness import World, build_world, input_png
from doubles.sandbox.web import Sandbox, WebApp
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


SANDBOX_ENV = {
    "POLL_INTERVAL_SECONDS": "0.3",
    "POLL_MAX_INTERVAL_SECONDS": "2",
    # Failover (SPEC §4): set a provider "out of credits" or "stopped" in the page and
    # requests that name no provider keep arriving from the next of these; /providers
    # tells the story. A short cool-off, so a recovered provider is probed soon.
    "DEFAULT_PROVIDER": "hiapi",
    "FAILOVER_PROVIDERS": "foxapi,gptge,higgsfield",
    "PROVIDER_COOLOFF_SECONDS": "15",
}
# hiapi, foxapi and gptge call the bot back, as they would with PUBLIC_BASE_URL set.
CALLBACKS = {"callbacks": True, "hiapi_webhook_secret": "sandbox-webhook-key-0123"}


async def run_sandbox(*, once: bool, port: int = 0) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("reelbot").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="reelbot-sandbox-") as tmp:
        if once:
            say("Starting the Discord double, five provider doubles and the real bot…")
            world = await build_world(
                Path(tmp), provider_ids=PROVIDER_IDS, env=SANDBOX_ENV, **CALLBACKS
            )
            narrator = asyncio.create_task(narrate(world))
            _describe(world)
            try:
                return await run_once(world)
            finally:
                narrator.cancel()
                await world.close()
        return await serve(Path(tmp), port=port)


async def serve(tmp: Path, *, port: int = 0, stop: asyncio.Event | None = None) -> int:
    """The web sandbox: the page's URL first, then the world; runs until ``stop`` (Ctrl-C)."""
    worlds = iter(range(1_000_000))

    async def build() -> World:
        data_dir = tmp / f"world-{next(worlds)}"
        data_dir.mkdir()
        return await build_world(data_dir, provider_ids=PROVIDER_IDS, env=SANDBOX_ENV, **CALLBACKS)

    sandbox = Sandbox(build)
    narrators: list[asyncio.Task[None]] = []

    def on_world(world: World) -> None:
        for task in narrators:
            task.cancel()
        narrators[:] = [asyncio.create_task(narrate(world))]
        _describe(world)

    sandbox.on_world.append(on_world)
    web = WebApp(sandbox)
    url = await web.start(port)
    say(f"Reelbot sandbox: open {url} (127.0.0.1 only: a development tool, not a server)")
    say("Starting the Discord double, five provider doubles and the real bot…")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":  # the event loop has no signal handlers there
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        await sandbox.start()
        say(f"Ready: {url} — act as alice, bob or a moderator; press Ctrl-C to stop.")
        await stop.wait()
        return 0
    finally:
        for task in narrators:
            task.cancel()
        await web.close()
        await sandbox.close()


def _describe(world: World) -> None:
    say(
        f"Discord double at {world.discord.api_base}; guild {world.guild_id}, "
        f"channel #videos {world.channel_id}; members: {', '.join(world.users)}"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(run_sandbox(once=True)))
