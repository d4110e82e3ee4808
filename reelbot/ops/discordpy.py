"""Process-wide adjustments to discord.py, each for one reason, applied by the entry.

discord.py offers no constructor argument for any of them: they are class attributes
the library reads on every use.
"""

from __future__ import annotations

import time

import discord

RATELIMIT_SWEEP_SECONDS = 60.0


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
