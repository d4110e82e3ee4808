"""/settings and spending (SPEC §3 "/settings", "Spending"), through the real client."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from doubles.harness import World
from doubles.providers import Step
from reelbot.store.models import utc_day
from reelbot.store.schema import load_migrations
from reelbot.store.sqlite import SqliteStore, _split_sql
from tests.helpers import (
    all_tasks,
    bot_reacted,
    eventually,
    final_message,
    refused,
    started,
    task_state,
)

pytestmark = pytest.mark.timeout(90)


async def status_of(world: World, user: str):
    assert world.bot is not None
    return await world.bot.store.quota_status(
        world.guild_id, world.users[user], now=time.time(), default_limit=10
    )


async def spent(world: World) -> int:
    assert world.bot is not None
    return await world.bot.store.server_spend(world.guild_id, now=time.time())


async def outcomes(interactions) -> list[str]:
    texts = []
    for ix in interactions:
        await ix.wait_for_content(lambda c: bool(c), timeout=40)
        texts.append(ix.response_content)
    return texts


def add_member(world: World, name: str, roles: list[int] | None = None) -> int:
    world.users[name] = world.discord.add_member(world.guild_id, name, roles=roles or [])
    return world.users[name]


# --- who may change what --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("settings channel", {"channel": "videos", "allowed": True}),
        ("settings banned-words add", {"words": "gore"}),
        ("settings banned-words remove", {"words": "gore"}),
        ("settings banned-words list", {}),
        ("settings defaults", {"provider": "foxapi"}),
        ("settings audit", {}),
        ("quota role", {"role": "mods", "limit": 5}),
        ("quota server", {"limit": 5}),
        ("quota cost", {"provider": "foxapi", "credits": 2}),
    ],
)
async def test_members_are_refused_moderator_settings(
    world: World, command: str, options: dict
) -> None:
    resolved = dict(options)
    if resolved.get("channel") == "videos":
        resolved["channel"] = world.channel_id
    if resolved.get("role") == "mods":
        resolved["role"] = world.mod_role_id
    await refused(await world.command(command, "alice", **resolved), "only moderators")
    assert await world.bot.store.audit_entries(world.guild_id) == []


async def test_settings_show_is_for_anyone(world: World) -> None:
    text = await refused(await world.command("settings show", "alice"), "every channel")
    assert "Server budget: unlimited" in text


# --- channels -------------------------------------------------------------------------------
async def test_channel_allow_list_includes_threads_and_names_where_it_works(
    world: World,
) -> None:
    other = world.discord.add_channel(world.guild_id, "chat")
    await refused(
        await world.command("settings channel", "mod", channel=world.channel_id, allowed=True),
        "only in",
    )
    text = await refused(
        await world.animate("alice", channel_id=other, prompt="here?", provider="foxapi"),
        "does not work in this channel",
    )
    assert f"<#{world.channel_id}>" in text
    assert not world.providers["foxapi"].submissions

    thread_id, _ = await started(world, await world.animate("alice", prompt="in videos"))
    # Inside a thread of the allowed channel: allowed too.
    await started(world, await world.animate("bob", channel_id=thread_id, prompt="in thread"))

    shown = await refused(await world.command("settings show", "bob"), f"<#{world.channel_id}>")
    assert "every channel" not in shown
    # Disallowing the last allowed channel lifts the restriction.
    await refused(
        await world.command("settings channel", "mod", channel=world.channel_id, allowed=False),
        "every channel",
    )
    await started(world, await world.animate("alice", channel_id=other, prompt="now ok"))
    actions = [e["action"] for e in await world.bot.store.audit_entries(world.guild_id)]
    assert actions.count("settings_channel") == 2


# --- banned words ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt",
    [
        "an ASS in the rain",
        "what an ass!",
        "ＡＳＳ on a hill",
        "the Ass, the cat",
        "a BLOOD... bath",
    ],
)
async def test_banned_words_refused_in_any_case_punctuation_and_width(
    world: World, prompt: str
) -> None:
    await refused(
        await world.command("settings banned-words add", "mod", words="ass, blood bath"),
        "banned 2 new",
    )
    text = await refused(
        await world.animate("alice", prompt=prompt, provider="foxapi"), "does not allow"
    )
    assert "no credits were used" in text.lower()
    assert not world.providers["foxapi"].submissions
    assert await all_tasks(world) == []
    assert (await status_of(world, "alice")).used == 0
    refusals = [
        e
        for e in await world.bot.store.audit_entries(world.guild_id)
        if e["action"] == "banned_word_refused"
    ]
    assert len(refusals) == 1
    entry = refusals[0]
    assert entry["actor_id"] == world.users["alice"] and entry["at"] > 0
    assert ("“ass”" in entry["details"]) or ("“blood bath”" in entry["details"])
    # The audit keeps the matched entry, never the prompt.
    assert prompt not in entry["details"] and "rain" not in entry["details"]


async def test_banned_words_in_negative_prompt_near_misses_pass_and_list_remove(
    world: World,
) -> None:
    await refused(
        await world.command("settings banned-words add", "mod", words="ass, Straße"),
        "banned 2 new",
    )
    await refused(
        await world.animate(
            "alice",
            prompt="a cat",
            provider="gptge",
            model="kling-v2-5-turbo",
            negative_prompt="no STRASSE please",
        ),
        "negative prompt contains",
    )
    # Not whole words: "classic", "assassin", "passage" all pass.
    await started(
        world, await world.animate("alice", prompt="a classic passage", provider="foxapi")
    )
    listed = await refused(await world.command("settings banned-words list", "mod"), "“ass”")
    assert "“strasse”" in listed
    await refused(
        await world.command("settings banned-words remove", "mod", words="ASS, nothing"),
        "removed 1",
        "not banned",
    )
    await started(world, await world.animate("bob", prompt="what an ass", provider="foxapi"))
    actions = [e["action"] for e in await world.bot.store.audit_entries(world.guild_id)]
    assert actions.count("banned_word_add") == 2 and actions.count("banned_word_remove") == 1


async def test_banned_words_apply_to_a_rerun(world: World) -> None:
    ix = await world.animate("alice", prompt="a donkey called ass", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    await bot_reacted(world, final)
    await refused(await world.command("settings banned-words add", "mod", words="ass"), "banned")
    await world.discord.add_reaction(thread_id, final.id, world.users["alice"], "🔁")

    def said() -> bool:
        return any("does not allow" in (m.content or "") for m in world.discord.messages(thread_id))

    await eventually(said, description="the 🔁 refused for a banned word")
    assert len(await all_tasks(world)) == 1


# --- defaults -------------------------------------------------------------------------------
async def test_server_default_provider_and_model(world: World) -> None:
    await refused(
        await world.command(
            "settings defaults", "mod", provider="foxapi", model="wan-2.7-text-to-video"
        ),
        "foxapi",
    )
    _, task_id = await started(world, await world.animate("alice", prompt="no provider named"))
    task = await world.bot.store.get_task(task_id)
    assert task.provider == "foxapi" and task.request["model"] == "wan-2.7-text-to-video"
    await refused(
        await world.command("settings defaults", "mod", provider="nope"), "not a provider"
    )
    await refused(await world.command("settings defaults", "mod"), "bot's default")


# --- credits, role limits, budgets ----------------------------------------------------------
async def test_role_limits_highest_wins_and_a_personal_limit_wins_over_roles(
    world: World,
) -> None:
    boosters = world.discord.add_role(world.guild_id, "Boosters")
    fans = world.discord.add_role(world.guild_id, "Fans")
    add_member(world, "carol", roles=[fans, boosters])
    await refused(await world.command("quota default", "mod", limit=1), "1 credit per day")
    await refused(await world.command("quota role", "mod", role=fans, limit=2), "Fans")
    await refused(await world.command("quota role", "mod", role=boosters, limit=3), "Boosters")
    for i in range(3):
        await started(world, await world.animate("carol", prompt=f"boost {i}", provider="foxapi"))
    await refused(
        await world.animate("carol", prompt="one more", provider="foxapi"), "used 3 of your 3"
    )
    shown = await refused(await world.command("quota show", "carol"), "used **3**")
    assert "Boosters" in shown and "limit of 3" in shown
    # alice has no role limit: the server default applies.
    shown = await refused(await world.command("quota show", "alice"), "server default")
    # A personal limit wins over the roles.
    await refused(
        await world.command("quota set", "mod", user=world.users["carol"], limit=5), "5 credits"
    )
    await started(world, await world.animate("carol", prompt="personal", provider="foxapi"))
    shown = await refused(await world.command("quota show", "carol"), "personal limit")
    # No limit option: the role's limit is removed.
    await refused(await world.command("quota role", "mod", role=boosters), "no longer")
    assert (await world.bot.store.guild_settings(world.guild_id)).role_limits == {fans: 2}


async def test_provider_price_is_charged_and_provider_usage_is_shown_apart(world: World) -> None:
    await refused(
        await world.command("quota cost", "mod", provider="foxapi", credits=3), "3 credit"
    )
    ix = await world.animate("alice", prompt="priced", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    await final_message(world, thread_id, task_id)
    assert (await status_of(world, "alice")).used == 3
    shown = await refused(await world.command("quota show", "alice"), "used **3**")
    # foxapi's own usage.credits_reserved, labelled as the provider's, never as ours.
    assert "provider-reported usage" in shown.lower() and "foxapi 5" in shown
    assert "global default" in shown
    await refused(await world.command("quota cost", "mod", provider="nope", credits=1), "not a")


async def test_server_budget_hit_by_three_members_at_once_moderators_included(
    world: World,
) -> None:
    add_member(world, "carol")
    await refused(await world.command("quota cost", "mod", provider="foxapi", credits=2), "2")
    await refused(await world.command("quota server", "mod", limit=4), "4 credits")
    texts = await outcomes(
        await asyncio.gather(
            *(
                world.animate(u, prompt=f"{u} at once", provider="foxapi")
                for u in ("alice", "bob", "carol")
            )
        )
    )
    assert sum("On it" in t for t in texts) == 2, texts
    assert sum("This server has used 4 of its 4 credits" in t for t in texts) == 1, texts
    await refused(
        await world.animate("mod", prompt="mods too", provider="foxapi"), "this server has used"
    )
    assert await spent(world) == 4
    shown = await refused(await world.command("quota show", "mod"), "server today: **4**")
    assert "of its 4 credit budget" in shown and "Top spenders today" in shown
    shown = await refused(
        await world.command("quota show", "mod", user=world.users["alice"]), "server today"
    )
    await refused(await world.command("settings show", "alice"), "4 credits/day")


async def test_fifty_concurrent_requests_at_the_edge_of_a_user_limit(world: World) -> None:
    await refused(
        await world.command("quota set", "mod", user=world.users["bob"], limit=5), "5 credits"
    )
    texts = await outcomes(
        await asyncio.gather(
            *(world.animate("bob", prompt=f"race {i}", provider="foxapi") for i in range(50))
        )
    )
    assert sum("On it" in t for t in texts) == 5, texts
    assert sum("used 5 of your 5" in t for t in texts) == 45
    assert (await status_of(world, "bob")).used == 5
    assert len(await all_tasks(world)) == 5


async def test_fifty_concurrent_requests_at_the_edge_of_the_server_budget(world: World) -> None:
    members = [add_member(world, f"m{i}") for i in range(5)]
    assert len(members) == 5
    await refused(await world.command("quota server", "mod", limit=7), "7 credits")
    texts = await outcomes(
        await asyncio.gather(
            *(
                world.animate(f"m{i % 5}", prompt=f"budget race {i}", provider="foxapi")
                for i in range(50)
            )
        )
    )
    assert sum("On it" in t for t in texts) == 7, texts
    assert sum("this server has used 7 of its 7" in t.lower() for t in texts) == 43
    assert await spent(world) == 7


async def test_a_refund_goes_back_to_the_member_and_the_server_budget(world: World) -> None:
    await refused(await world.command("quota cost", "mod", provider="hiapi", credits=3), "3")
    await refused(await world.command("quota server", "mod", limit=3), "3 credits")
    world.providers["hiapi"].script_next([Step.fail("content_policy", "refused by provider")])
    _, task_id = await started(
        world, await world.animate("alice", prompt="will fail", provider="hiapi")
    )
    await task_state(world, task_id, "failed")

    async def refunded() -> bool:
        task = await world.bot.store.get_task(task_id)
        return bool(task and task.refunded)

    await eventually(refunded, description="the failed task refunded")
    assert (await status_of(world, "alice")).used == 0
    assert await spent(world) == 0
    await started(world, await world.animate("bob", prompt="the budget is back", provider="hiapi"))
    assert (await status_of(world, "bob")).used == 3 and await spent(world) == 3


# --- audit ------------------------------------------------------------------------------------
async def test_moderator_changes_are_audited_with_old_and_new_and_paged(world: World) -> None:
    for limit in range(1, 8):
        await refused(await world.command("quota server", "mod", limit=limit), "credits")
    await refused(await world.command("quota default", "admin", limit=4), "4 credits")
    await refused(
        await world.command("quota set", "mod", user=world.users["bob"], limit=2), "2 credits"
    )
    await refused(await world.command("quota cost", "mod", provider="gptge", credits=2), "2")
    await refused(await world.command("settings banned-words add", "mod", words="x y"), "1 new")
    first = await refused(await world.command("settings audit", "mod"), "page 1")
    assert "`settings` " not in first
    assert "banned_word_add" in first and "gptge price 1 → 2" in first
    assert "user limit none → 2" in first and "server default none → 4" in first
    assert "/settings audit page:2" in first
    second = await refused(await world.command("settings audit", "mod", page=2), "page 2")
    assert "server budget 1 → 2" in first and "server budget 0 → 1" in second
    assert "More" not in second
    await refused(await world.command("settings audit", "mod", page=3), "no audit entries")


# --- migration ------------------------------------------------------------------------------
async def test_migration_of_an_existing_store_keeps_old_limits(tmp_path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    migrations = load_migrations("sqlite")
    # The store as it was before the settings/spending migration (the one adding guild_config).
    before = next(i for i, (_, sql) in enumerate(migrations) if "guild_config" in sql)
    for version, sql in migrations[:before]:
        for statement in _split_sql(sql):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
    today = utc_day(time.time())
    db.execute("INSERT INTO guild_settings (guild_id, daily_quota) VALUES (1, 3)")
    db.execute("INSERT INTO user_quotas (guild_id, user_id, daily_limit) VALUES (1, 7, 5)")
    db.execute(
        "INSERT INTO quota_usage (guild_id, user_id, day, used) VALUES (1, 7, ?, 4), (1, 8, ?, 2)",
        (today, today),
    )
    db.commit()
    db.close()

    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await store.schema_version() == len(migrations)
        user = await store.quota_status(1, 7, now=time.time(), default_limit=10)
        other = await store.quota_status(1, 8, now=time.time(), default_limit=10)
        assert (user.limit, user.used, user.source) == (5, 4, "user")
        assert (other.limit, other.used, other.source) == (3, 2, "guild")
        assert (user.server_used, user.server_limit) == (6, 0)
        assert await store.credit_price(1, "foxapi") == 1  # a generation still costs 1
    finally:
        await store.close()


async def test_a_moderator_rerun_charges_the_requester_under_their_role_limit(
    world: World,
) -> None:
    """🔁 by a moderator: the requester's roles are looked up (REST) for their limit."""
    vip = world.discord.add_role(world.guild_id, "VIP")
    add_member(world, "vera", roles=[vip])
    await refused(await world.command("quota default", "mod", limit=1), "1 credit")
    await refused(await world.command("quota role", "mod", role=vip, limit=2), "VIP")
    ix = await world.animate("vera", prompt="vip clip", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    await bot_reacted(world, final)
    await world.discord.add_reaction(thread_id, final.id, world.users["mod"], "🔁")
    rerun = await eventually(
        lambda: world.bot.store.get_task(task_id + 1), description="the moderator's re-run"
    )
    assert rerun.requester_id == world.users["vera"]
    status = await world.bot.store.quota_status(
        world.guild_id, world.users["vera"], now=time.time(), default_limit=10, role_ids=[vip]
    )
    assert (status.used, status.limit, status.source) == (2, 2, "role")
    # A third (by the moderator again) is past vera's role limit.
    final2 = await final_message(world, thread_id, rerun.id)
    await bot_reacted(world, final2)
    await world.discord.add_reaction(thread_id, final2.id, world.users["mod"], "🔁")

    def said() -> bool:
        return any(
            "used 2 of your 2" in (m.content or "") for m in world.discord.messages(thread_id)
        )

    await eventually(said, description="the third run refused at vera's role limit")
