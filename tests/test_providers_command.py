"""/providers' words (cogs/providers.py): state, success rate, typical time, and the
out-of-credits line for moderators, within Discord's limits."""

from __future__ import annotations

from cogs.providers import providers_text
from reelbot import text


def row(pid: str, **kw) -> dict:
    return {
        "provider": pid,
        "state": "up",
        "text": "up",
        "down_since": None,
        "out_of_credits": False,
        "success_rate": None,
        "samples": 0,
        "last_error": None,
        "typical_seconds": None,
        **kw,
    }


def test_each_provider_with_its_state_rate_and_typical_time() -> None:
    shown = providers_text(
        [
            row("foxapi", success_rate=0.9, samples=20, typical_seconds=250.0),
            row(
                "hiapi",
                state="down",
                text="down since <t:1790000000:R> (out of credits)",
                down_since=1_790_000_000.0,
                out_of_credits=True,
                success_rate=0.25,
                samples=8,
            ),
            row("gptge", state="degraded", text="degraded", last_error="http_429: " + "x" * 5000),
        ],
        ["foxapi", "gptge"],
    )
    assert "🟢 **foxapi** — up · 90% of the last 20 calls went well" in shown
    assert "about 4m 10s" in shown
    assert "🔴 **hiapi** — down since <t:1790000000:R> (out of credits)" in shown
    assert "top up the hiapi account" in shown
    assert "🟡 **gptge** — degraded" in shown and "last error: `http_429" in shown
    assert "first of foxapi, gptge that is up" in shown
    assert text.fits(shown, text.CONTENT)


def test_without_failover_or_providers() -> None:
    assert "Failover is off" in providers_text([row("hiapi")], [])
    assert "No video provider" in providers_text([], [])
