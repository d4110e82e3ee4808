"""Security, end to end: secrets never leak (logs, Discord, the store), echoed text never
pings, moderator-only paths refuse everyone else, SQL never carries user text, and
outputs are only fetched from where the URL policy allows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import aiosqlite
import pytest

from doubles.harness import World, build_world, input_png
from doubles.providers import Step
from providers.gptge import KLING_MODELS
from tests.helpers import (
    MediaHost,
    all_tasks,
    assert_exactly_once,
    bot_reacted,
    final_message,
    finish,
    hold,
    polled,
    refused,
    started,
    status_message,
    task_state,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)

# Realistic-looking keys that no regex would take for a credential on its own.
KEYS = {
    "higgsfield": "hf7Qx9Lm2Pz8Rt4Vb6Nc1Yd3Kw5",
    "higgsfield_feed": "fd3Ws8Jk1Lq9Zx4Cv7Bn2Mm6Hp0",
    "hiapi": "ha5Tg2Yh8Uj3Ik6Ol9Pq1Wr4Es7",
    "foxapi": "fx9Rt4Ey7Uw2Iq5Op8As1Df3Gh6",
    "gptge": "gp2Zx5Cv8Bn1Mq4Wl7Ek0Rj3Tn9",
}


@pytest.fixture
async def keyed_world(tmp_path: Path, caplog):
    """All providers with distinct keys; every log record from start-up on, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    world = await build_world(tmp_path, start=False)
    for pid, double in world.providers.items():  # restart each double with its own key
        await double.close()
        double.api_key = KEYS[pid]
        await double.start()
        world.env[f"{pid.upper()}_API_KEY"] = KEYS[pid]
        world.env[f"{pid.upper()}_BASE_URL"] = double.base_url
    await world.start_bot(LOG_LEVEL="DEBUG")
    try:
        yield world
    finally:
        await world.close()


def everything_discord_saw(world: World) -> str:
    """Every message (with its earlier edits), thread name and interaction reply."""
    state = world.discord._state
    parts = []
    for message in state.messages.values():
        parts.append(message.content)
        parts += [str(edit) for edit in message.edits]
        parts += [str(e) for e in message.embeds]
    parts += [c.name or "" for c in state.channels.values()]
    for ix in world.discord.interactions:
        parts += ix.contents()
    return "\n".join(parts)


async def test_secrets_never_leak_even_when_providers_echo_them(keyed_world: World, caplog) -> None:
    """Faults: providers echo our API key back in a 401 body, in an HTTP 200 envelope
    error and in a task's failure message; one answers with an HTML 502 page."""
    world = keyed_world
    p = world.providers
    p["higgsfield"].fail_next_submit(
        401, body={"success": False, "error": f"bad credentials {KEYS['higgsfield']}"}
    )
    p["hiapi"].fail_next_submit(
        200, body={"code": 401, "data": None, "message": f"credentials {KEYS['hiapi']} rejected"}
    )
    p["foxapi"].script_next(
        [
            Step.running(20),
            Step.fail(code="E_AUTH", message=f"upstream refused {KEYS['foxapi']} for this model"),
        ]
    )
    p["gptge"].script_next([Step.server_error(502, html=True), Step.succeed()])
    for pid in ("higgsfield", "hiapi", "foxapi", "gptge", "higgsfield_feed"):
        image = input_png() if pid == "higgsfield_feed" else None
        ix = await world.animate("alice", prompt=f"secret test {pid}", provider=pid, image=image)
        await started(world, ix)
    tasks = await assert_exactly_once(world, expect=5)
    assert sorted(t.state for t in tasks) == ["failed"] * 3 + ["succeeded"] * 2
    assert any("[redacted]" in (t.error_message or "") for t in tasks)
    await world.stop_bot()  # checkpoint the store, then read every byte it wrote

    secrets = [world.env["DISCORD_TOKEN"], *KEYS.values()]
    seen_by_discord = everything_discord_saw(world)
    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    stored = b"".join(f.read_bytes() for f in world.data_dir.rglob("*") if f.is_file())
    assert "DEBUG" in caplog.text and len(caplog.records) > 100  # we did look at a lot
    for secret in secrets:
        assert secret not in logs, f"a secret reached the logs: {secret[:4]}…"
        assert secret not in seen_by_discord, f"a secret reached Discord: {secret[:4]}…"
        assert secret.encode() not in stored, f"a secret reached the store: {secret[:4]}…"


async def test_echoed_text_never_pings(world: World) -> None:
    """Hostile prompt: @everyone, @here, a role and a member mention. Only the requester
    is ever pinged, and only by the final message; a provider error echoing mentions
    pings no one else either."""
    bob, role = world.users["bob"], world.mod_role_id
    prompt = f"@everyone @here <@&{role}> <@{bob}> dance"
    world.providers["foxapi"].script_next(
        [Step.fail(code="E", message=f"@everyone <@{bob}> <@&{role}> it failed")]
    )
    ix = await world.animate("alice", prompt=prompt, provider="hiapi")
    thread_id, task_id = await started(world, ix)
    ix2 = await world.animate("alice", prompt=prompt, provider="foxapi")
    thread2, task2 = await started(world, ix2)
    ok = await video_lands(world, thread_id, task_id)
    failed = await final_message(world, thread2, task2)
    jobs = await world.command("jobs", "alice")
    await refused(jobs, "dance")

    alice = world.users["alice"]
    for final in (ok, failed):
        assert final.mention_ids == [alice]
        assert not final.mention_everyone and final.mention_role_ids == []
    echoes = [status_message(world, thread_id, task_id), status_message(world, thread2, task2)]
    echoes += [m for m in world.discord.messages(world.channel_id)]  # thread anchors
    echoes.append(jobs.response_message)
    for message in echoes:
        assert message.mention_ids == [], message.content
        assert not message.mention_everyone and message.mention_role_ids == [], message.content


# --- moderator-only paths -------------------------------------------------------------------------
def _filler(option: dict, world: World):
    kinds = {6: world.users["bob"], 4: 1, 3: "x", 5: True, 7: world.channel_id}
    return world.mod_role_id if option["type"] == 8 else kinds[option["type"]]


async def test_every_moderator_command_refuses_members(world: World) -> None:
    """Every subcommand described as 'Moderators: …' refuses a plain member, ephemerally,
    and changes nothing (no audit entry, no quota change)."""
    privileged = []
    for command in world.discord.commands(world.guild_id):
        for sub in command.get("options", []):
            if sub["type"] == 1 and sub.get("description", "").startswith("Moderators"):
                privileged.append((f"{command['name']} {sub['name']}", sub))
            for leaf in sub.get("options", []) if sub["type"] == 2 else ():  # subcommand groups
                if leaf["type"] == 1 and leaf.get("description", "").startswith("Moderators"):
                    privileged.append((f"{command['name']} {sub['name']} {leaf['name']}", leaf))
    assert {name for name, _ in privileged} >= {
        "quota set", "quota default", "quota reset", "quota role", "quota server", "quota cost",
        "settings channel", "settings defaults", "settings audit",
        "settings banned-words add", "settings banned-words remove", "settings banned-words list",
    }  # fmt: skip
    for name, sub in privileged:
        options = {o["name"]: _filler(o, world) for o in sub.get("options", []) if o["required"]}
        await refused(await world.command(name, "alice", **options), "moderator")
    # /quota show of somebody else is a moderator path too.
    await refused(await world.command("quota show", "alice", user=world.users["bob"]), "moderator")
    assert world.bot is not None
    assert await world.bot.store.audit_entries(world.guild_id) == []


async def test_strangers_reactions_do_nothing(world: World) -> None:
    """❌ and 🔁 are privileged: only the requester or a moderator. Bob's are ignored."""
    double = world.providers["hiapi"]
    hold(double)
    ix = await world.animate("alice", prompt="mine", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await polled(double)
    status = status_message(world, thread_id, task_id)
    bob = world.users["bob"]
    await world.discord.add_reaction(thread_id, status.id, bob, "❌")
    await world.discord.wait_for(
        lambda: bob not in status.reactions.get("❌", set()), description="bob's ❌ to be removed"
    )
    assert (await task_state(world, task_id, "running")).state == "running"
    finish(double)
    final = await video_lands(world, thread_id, task_id)
    await bot_reacted(world, final, "🔁")  # the delivery is recorded
    await world.discord.add_reaction(thread_id, final.id, bob, "🔁")
    await world.discord.wait_for(
        lambda: bob not in final.reactions.get("🔁", set()), description="bob's 🔁 to be removed"
    )
    assert len(await all_tasks(world)) == 1 and len(double.submissions) == 1


# --- SQL never carries user or provider text -------------------------------------------
async def test_sql_is_parameterised(world: World, monkeypatch) -> None:
    """Hostile text from a member (prompt, negative prompt) and from a provider (error
    code and message) must only ever travel as bound parameters."""
    seen: list[str] = []
    original = aiosqlite.Connection.execute

    def spy(self, sql, parameters=None):
        seen.append(sql)
        return original(self, sql, parameters)

    monkeypatch.setattr(aiosqlite.Connection, "execute", spy)
    hostile = 'Robert\'); DROP TABLE tasks;-- ZQXmember " OR "1"="1'
    world.providers["gptge"].script_next(
        [Step.fail(code="2013", message="ZQXprovider'); DELETE FROM quota_usage;--")]
    )
    ix = await world.animate(
        "alice", prompt=hostile, provider="gptge", model=KLING_MODELS[0], negative_prompt=hostile
    )
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    assert "ZQXprovider" in final.content
    ix = await world.animate("alice", prompt=hostile, provider="hiapi")
    await video_lands(world, *await started(world, ix))
    assert seen, "the spy saw no SQL"
    assert not [sql for sql in seen if "ZQX" in sql]
    tasks = await assert_exactly_once(world, expect=2)
    assert all(t.request["prompt"] == hostile.strip() for t in tasks)


# --- where outputs may come from ---------------------------------------------------------------
async def test_outputs_on_local_or_plain_http_urls_are_refused(tmp_path: Path) -> None:
    """ALLOW_LOCAL_URLS=false (the default): an output URL on http:// or a loopback
    address is never fetched; the task fails with a message. Inline (base64) outputs
    need no URL and are still delivered."""
    world = await build_world(
        tmp_path, provider_ids=("foxapi", "gptge"), env={"ALLOW_LOCAL_URLS": "false"}
    )
    host = await MediaHost().start()
    try:
        host.serve_outputs_of(world.providers["foxapi"])
        ix = await world.animate("alice", prompt="fetch from localhost", provider="foxapi")
        thread_id, task_id = await started(world, ix)
        final = await final_message(world, thread_id, task_id)
        assert "plain-http" in final.content and not final.attachments
        assert host.requests == 0, "a refused URL was fetched anyway"

        world.providers["gptge"].script_next([Step.succeed(form="base64")])
        ix = await world.animate("alice", prompt="inline output", provider="gptge")
        await video_lands(world, *await started(world, ix))
        await assert_exactly_once(world, expect=2)
    finally:
        await host.close()
        await world.close()


async def test_quota_is_not_consumed_by_refused_or_failed_work(world: World) -> None:
    """Bad input takes no quota; a provider failure gives it back (counted once)."""
    await refused(await world.animate("alice", prompt="\x00", provider="hiapi"), "control")
    world.providers["hiapi"].script_next([Step.fail()])
    ix = await world.animate("alice", prompt="will fail", provider="hiapi")
    await final_message(world, *await started(world, ix))
    await assert_exactly_once(world, expect=1)
    assert world.bot is not None
    quota = await world.bot.store.quota_status(
        world.guild_id, world.users["alice"], now=time.time(), default_limit=10
    )
    assert quota.used == 0
