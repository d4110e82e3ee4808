"""Bad input: every malformed or unacceptable /animate gets a specific, ephemeral error,
creates no task, takes no quota, opens no thread, and never reaches a provider.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from doubles.discord import CommandContractError
from doubles.harness import World, input_png
from tests.helpers import all_tasks, final_message, invoke_in_dm, refused, started

pytestmark = pytest.mark.timeout(60)

PNG = input_png()
MiB = 1024 * 1024

# name: (options, needles of the ephemeral refusal)
BAD_OPTIONS = {
    "empty_prompt": ({"prompt": "   "}, ["empty"]),
    "whitespace_only_prompt": ({"prompt": "\n\t \n"}, ["empty"]),
    "nul_byte": ({"prompt": "a cat\x00 on a mat"}, ["control character", "U+0000"]),
    "terminal_escape": ({"prompt": "a cat \x1b[31mred"}, ["control character", "U+001B"]),
    "zero_width_space": ({"prompt": "a\u200bcat"}, ["control character", "U+200B"]),
    "bidi_override": ({"prompt": "a cat \u202egnikaw"}, ["control character", "U+202E"]),
    "bell_in_negative_prompt": (
        {"prompt": "a cat", "provider": "gptge", "negative_prompt": "dogs\x07"},
        ["negative prompt", "control character"],
    ),
    "duration_zero": ({"prompt": "a cat", "duration": 0}, ["`duration`", "between 1 and 60"]),
    "duration_negative": ({"prompt": "a cat", "duration": -5}, ["`duration`"]),
    "duration_too_long": ({"prompt": "a cat", "duration": 61}, ["`duration`"]),
    "duration_huge": ({"prompt": "a cat", "duration": 2**40}, ["`duration`"]),
    "seed_negative": ({"prompt": "a cat", "seed": -1}, ["`seed`", "between 0"]),
    "seed_over_int32": ({"prompt": "a cat", "seed": 2**31}, ["`seed`"]),
    "unknown_model": ({"prompt": "a cat", "model": "sora-9000"}, ["`sora-9000`", "not a model"]),
    "model_of_another_provider": (
        {"prompt": "a cat", "provider": "foxapi", "model": "seedance-2-0"},
        ["not a model"],
    ),
    "option_the_provider_lacks": (
        {"prompt": "a cat", "provider": "hiapi", "negative_prompt": "dogs"},
        ["does not support", "`negative_prompt`", "gptge"],
    ),
    "motion_on_a_provider_without_motions": (
        {"prompt": "a cat", "provider": "foxapi", "motion": "Face Punch"},
        ["does not support", "`motion`"],
    ),
    "text_only_to_image_only_provider": (
        {"prompt": "a cat", "provider": "higgsfield_feed"},
        ["only animates an image"],
    ),
    "duration_the_provider_cannot_make": (
        {"prompt": "a cat", "provider": "gptge", "duration": 7},
        ["`gptge`", "6 or 10"],
    ),
    "seed_out_of_the_providers_range": (
        {"prompt": "a cat", "provider": "higgsfield_feed", "seed": 0, "image": PNG},
        ["`higgsfield_feed`", "seeds from 1"],
    ),
}

# name: (filename, bytes, declared content type, needles)
BAD_ATTACHMENTS = {
    "text_file": ("notes.txt", b"just some text", "text/plain", ["notes.txt", "not a PNG"]),
    "png_name_but_not_an_image": (
        "cat.png",
        b"MZ\x90\x00 not an image",
        "image/png",
        ["cat.png", "not a PNG"],
    ),
    "gif": ("cat.gif", b"GIF89a" + b"\x00" * 32, "image/gif", ["not a PNG"]),
    "svg": (
        "cat.svg",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "image/svg+xml",
        ["not a PNG"],
    ),
    "over_20_mib": ("huge.png", PNG + b"\x00" * (20 * MiB), "image/png", ["20 MiB"]),
}


def assert_nothing_happened(world: World) -> None:
    """No provider call, no thread, no bot message in the channel."""
    assert not [d.protocol for d in world.providers.values() if d.request_count], "provider called"
    assert not world.discord.threads(world.channel_id)
    assert not [
        m
        for m in world.discord.messages(world.channel_id)
        if m.author_id == world.discord.bot_user_id
    ]


async def assert_no_task_and_no_quota(world: World, user: str = "alice") -> None:
    assert await all_tasks(world) == []
    assert world.bot is not None
    quota = await world.bot.store.quota_status(
        world.guild_id, world.users[user], now=time.time(), default_limit=10
    )
    assert quota.used == 0


@pytest.mark.parametrize("case", BAD_OPTIONS)
async def test_bad_options_are_refused(world: World, case: str) -> None:
    options, needles = BAD_OPTIONS[case]
    options = dict(options)
    options.setdefault("provider", "hiapi")
    ix = await world.animate("alice", image=options.pop("image", None), **options)
    await refused(ix, *needles)
    assert_nothing_happened(world)
    await assert_no_task_and_no_quota(world)


@pytest.mark.parametrize("case", BAD_ATTACHMENTS)
async def test_bad_attachments_are_refused(world: World, case: str) -> None:
    filename, data, content_type, needles = BAD_ATTACHMENTS[case]
    ix = await world.discord.invoke(
        "animate",
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
        options={"prompt": "animate this", "provider": "hiapi"},
        attachments={"image": (filename, data, content_type)},
    )
    await refused(ix, *needles)
    assert_nothing_happened(world)
    await assert_no_task_and_no_quota(world)


async def test_expired_attachment_url_is_refused_kindly(world: World) -> None:
    """The attachment's CDN URL died before the bot fetched it."""
    world.discord.expire_attachment_urls()
    original = world.discord._cdn.url

    def expired_url(attachment):  # every URL handed out is already expired
        url = original(attachment)
        world.discord.expire_attachment_urls()
        return url

    world.discord._cdn.url = expired_url
    ix = await world.animate("alice", prompt="animate this", provider="hiapi", image=PNG)
    await refused(ix, "could not download your image")
    assert_nothing_happened(world)
    await assert_no_task_and_no_quota(world)


def test_unknown_providers_are_not_even_offered(world: World) -> None:
    """Discord only offers configured providers, so an unknown one cannot be sent."""
    [animate] = [c for c in world.discord.commands(world.guild_id) if c["name"] == "animate"]
    [option] = [o for o in animate["options"] if o["name"] == "provider"]
    assert {c["value"] for c in option["choices"]} == set(world.providers)


async def test_prompt_over_2000_chars_is_refused(world: World) -> None:
    """The schema declares max_length 2000, so Discord itself refuses a longer prompt;
    should an older schema still allow it, the bot refuses it too."""
    with pytest.raises(CommandContractError, match="prompt"):
        await world.animate("alice", prompt="x" * 2001, provider="hiapi")
    [animate] = [c for c in world.discord.commands(world.guild_id) if c["name"] == "animate"]
    del next(o for o in animate["options"] if o["name"] == "prompt")["max_length"]
    ix = await world.animate("alice", prompt="x" * 2001, provider="hiapi")
    await refused(ix, "2001 characters", "2000")
    assert_nothing_happened(world)
    await assert_no_task_and_no_quota(world)


async def test_unknown_provider_is_refused_when_invoked(world_factory) -> None:
    world = await world_factory(provider_ids=("hiapi",))
    with pytest.raises(CommandContractError):  # Discord itself refuses a non-choice
        await world.animate("alice", prompt="a cat", provider="sora")
    assert_nothing_happened(world)


async def test_rerun_on_a_provider_that_was_removed_is_refused(
    world_factory, tmp_path: Path
) -> None:
    """🔁 on a task whose provider the operator has since removed."""
    world = await world_factory(provider_ids=("hiapi", "foxapi"))
    ix = await world.animate("alice", prompt="a cat", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    await world.stop_bot()
    await world.start_bot(FOXAPI_API_KEY="")
    fox = world.providers["foxapi"]
    submitted = len(fox.submissions)
    await world.discord.add_reaction(thread_id, final.id, world.users["alice"], "🔁")
    notice = await world.discord.wait_for(
        lambda: next(
            (m for m in world.discord.messages(thread_id) if "can't run task" in m.content), None
        ),
        description="the bot's notice",
    )
    assert "`foxapi` is not a provider this bot offers" in notice.content
    assert len(fox.submissions) == submitted
    assert len(await all_tasks(world)) == 1


@pytest.mark.parametrize(
    "command, options",
    [
        ("animate", {"prompt": "a cat"}),
        ("jobs", {}),
        ("quota show", {}),
    ],
)
async def test_commands_in_dms_are_refused(world_factory, command: str, options: dict) -> None:
    """A slash command arriving from a DM (the commands are guild-only, so Discord hides
    them there; a stale client or a user install could still send one)."""
    world = await world_factory(env={"DISCORD_GUILD_IDS": ""})  # global commands
    for synced in world.discord.commands(None):
        assert synced.get("contexts") == [0] or synced.get("dm_permission") is False
    ix = await invoke_in_dm(world, command, **options)
    await refused(ix, "only works in a server")
    assert_nothing_happened(world)
    await assert_no_task_and_no_quota(world)
