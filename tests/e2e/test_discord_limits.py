"""Discord's field limits, end to end (issue 11 item 8, item 10's motion autocomplete).

The Discord double refuses what Discord refuses (400/50035), and the suite-wide
fixture fails any test whose bot made such a request; these tests feed the bot
the unbounded text that used to get there: provider error codes and states,
signed output URLs, what members type, long autocomplete lists. And when Discord
refuses a final message anyway, the bot must not retry it for hours.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from doubles.discord import CommandContractError
from doubles.harness import World
from doubles.providers import Step
from reelbot import text
from tests.e2e.test_characters import create, png
from tests.helpers import (
    assert_exactly_once,
    bot_messages,
    eventually,
    final_message,
    finish,
    hold,
    polled,
    refused,
    started,
    status_message,
    task_state,
)

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def within_limit(value: str, limit: int) -> bool:
    """Fits under both counts Discord might use (code points and UTF-16 units)."""
    return len(value) <= limit and len(value.encode("utf-16-le")) // 2 <= limit


async def held_task(world: World, pid: str = "hiapi", prompt: str = "limits"):
    double = world.providers[pid]
    hold(double)
    ix = await world.animate("alice", prompt=prompt, provider=pid)
    thread_id, task_id = await started(world, ix)
    await polled(double)
    return double, thread_id, task_id


def posts_to(channel_id: int) -> str:
    return rf"^/channels/{channel_id}/messages$"


# --- provider strings ---------------------------------------------------------------------
async def test_a_3000_char_error_code_and_state_word_are_shortened(world: World) -> None:
    """A provider answers with a 3,000-character state word, then fails with a
    3,000-character error code and message: the status shows the state shortened, and
    the final message arrives within 2000 characters, with the code shortened."""
    state_word, code, detail = "S" * 3000, "E" * 3000, "M" * 3000
    # foxapi passes its codes through; hiapi's adapter bounds them itself.
    double, thread_id, task_id = await held_task(world, pid="foxapi")
    finish(double, [Step.unknown_state(state_word, polls=100_000)])
    assert world.bot is not None
    store = world.bot.store

    async def shows_state() -> bool:
        task = await store.get_task(task_id)
        # The store keeps a bounded prefix of whatever the provider says.
        return bool(task and task.raw_state and task.raw_state.startswith("S" * 50))

    await eventually(shows_state, description="the provider's state word recorded")
    # Status edits are throttled to one per few seconds: let the next poll edit now.
    await store.update_task(task_id, status_edited_at=0.0)
    world.bot.poller.wake()
    status = status_message(world, thread_id, task_id)
    edited = await world.discord.wait_for(
        lambda: next((e.content for e in status.edits if "S" * 20 in e.content), None),
        description="the status showing the state word",
    )
    assert within_limit(edited, 2000) and "S" * 61 not in edited and "S…" in edited

    finish(double, [Step.fail(code=code, message=detail)])
    final = await final_message(world, thread_id, task_id)
    assert within_limit(final.content, 2000), len(final.content)
    assert "could not be made" in final.content and "given back" in final.content
    assert "E" * 50 + "…" in final.content, "the code is shown, visibly shortened"
    assert "E" * 101 not in final.content
    await assert_exactly_once(world, expect=1)


async def test_a_2500_char_signed_url_goes_into_an_embed_as_a_masked_link(world: World) -> None:
    """A video too large to upload, behind a 2,500-character signed URL: the link goes
    into an embed as a masked link (whole, so it works), the text stays short."""
    double = world.providers["foxapi"]
    signature = "&X-Amz-Signature=" + "a1b2c3d4" * 310  # 2,480 characters
    plain = double.output_url
    double.output_url = lambda task, step, kind="video": plain(task, step, kind) + signature
    hold(double)
    ix = await world.animate("alice", prompt="a long link", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    await polled(double)
    finish(double, [Step.succeed(large_bytes=11 * MiB, content_length=True)])
    final = await final_message(world, thread_id, task_id)
    assert not final.attachments
    assert within_limit(final.content, 2000)
    assert "too large to upload here" in final.content and signature not in final.content
    [embed] = final.embeds
    description = embed["description"]
    assert description.startswith("[Download the video](") and description.endswith(")")
    url = description[len("[Download the video](") : -1]
    assert len(url) > 2500 and url.endswith(signature), "the whole URL, not a cut one"
    await assert_exactly_once(world, expect=1)


# --- what members type --------------------------------------------------------------------
async def test_a_6000_char_model_is_refused_by_the_schema_and_clipped_in_the_echo(
    world: World,
) -> None:
    """``model`` declares max_length, so Discord's client cannot send 6000 characters
    (without it, Discord accepts up to 6000). Should a stale schema still allow it (a
    command synced by an older version), the bot's refusal quoting it stays short."""
    [animate] = [c for c in world.discord.commands(world.guild_id) if c["name"] == "animate"]
    for option in animate["options"]:
        if option["type"] == 3:  # every string option is bounded
            assert 1 <= option.get("max_length", 0) <= 2000, option["name"]
    with pytest.raises(CommandContractError, match="model"):
        await world.animate("alice", prompt="x", provider="hiapi", model="m" * 6000)

    model = next(o for o in animate["options"] if o["name"] == "model")
    del model["max_length"]  # the schema an older bot synced
    ix = await world.animate("alice", prompt="x", provider="hiapi", model="m" * 6000)
    reply = await refused(ix, "is not a model of")
    assert within_limit(reply, 2000)
    assert "m" * 50 + "…" in reply and "m" * 101 not in reply


# --- autocomplete -------------------------------------------------------------------------
async def motion_choices(world: World, current: str) -> list[dict]:
    return await world.discord.autocomplete(
        "animate",
        focused="motion",
        options={"prompt": "x", "provider": "higgsfield_feed", "motion": current},
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
    )


async def test_a_long_motion_list_is_offered_within_discords_limits(world: World) -> None:
    """40 motions (more than 25), some with 300-character names, some with names of 100
    emoji (200 UTF-16 units), some with ids longer than 100: Discord takes at most 25
    choices of 1-100 characters. A long id cannot be offered (a clipped id would name
    another motion, or none), so it is left out."""
    feed = world.providers["higgsfield_feed"]
    long_id = "x" * 150
    feed.motions = (
        [{"id": f"motion-{i}", "name": f"Spin {i} " + "very long name " * 20} for i in range(15)]
        + [{"id": f"emoji-{i}", "name": "🌀" * 100} for i in range(5)]
        + [{"id": long_id + str(i), "name": f"Spin long id {i}"} for i in range(5)]
        + [{"id": f"short-{i}", "name": f"Spin {i}"} for i in range(15)]
    )
    choices = await motion_choices(world, "")
    assert len(choices) == 25
    assert all(within_limit(c["name"], 100) and c["name"] for c in choices)
    assert all(within_limit(c["value"], 100) for c in choices)
    assert not any(c["value"].startswith(long_id) for c in choices)
    emoji = [c for c in choices if c["value"].startswith("emoji-")]
    assert emoji and all(c["name"].endswith("…") for c in emoji)


async def test_a_long_model_list_is_offered_within_discords_limits(world: World) -> None:
    """A provider with 40 models, one named with 150 characters: at most 25 choices,
    and the model whose name is too long to be a choice's value is left out."""
    assert world.bot is not None
    long_name = "model-" + "x" * 144
    names = [long_name] + [f"model-{i}" for i in range(39)]
    world.bot.providers["hiapi"].models = lambda: names  # type: ignore[method-assign]
    choices = await world.discord.autocomplete(
        "animate",
        focused="model",
        options={"prompt": "x", "provider": "hiapi", "model": "model"},
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
    )
    assert [c["value"] for c in choices] == names[1:26]


async def test_motion_autocomplete_asks_the_provider_once_per_search(world: World) -> None:
    """Autocomplete fires on every keystroke: the same search within the cache's
    lifetime is answered from the cache."""
    feed = world.providers["higgsfield_feed"]
    feed.record = True
    for _ in range(3):
        choices = await motion_choices(world, "punch")
        assert any(c["name"] == "Face Punch" for c in choices)
    asks = [p for m, p, _ in feed.requests if p.endswith("/tpl/motions")]
    assert len(asks) == 1, asks


@pytest.fixture
async def stuck_motions() -> AsyncIterator[str]:
    """A higgsfield_feed base URL whose motions endpoint never answers (until teardown)."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/higgsfield/tpl/motions", hang)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        release.set()
        await runner.cleanup()


async def test_a_slow_motion_list_still_answers_within_discords_3_seconds(
    world_factory, stuck_motions: str
) -> None:
    """The provider's motion endpoint hangs (the client's timeout is 30 s): autocomplete
    answers, with nothing, before Discord's 3-second deadline instead of missing it."""
    world: World = await world_factory(env={"HIGGSFIELD_FEED_BASE_URL": stuck_motions})
    loop = asyncio.get_running_loop()
    began = loop.time()
    choices = await motion_choices(world, "punch")
    assert choices == []
    assert loop.time() - began < world.discord.interaction_deadline
    [ix] = [i for i in world.discord.interactions if i.autocomplete_choices is not None]
    assert ix.acknowledged


# --- names members give their files --------------------------------------------------------
async def test_long_zip_entry_names_are_shortened_in_the_reply_and_the_upload(
    world: World,
) -> None:
    """A zip whose entries have names of 1,500 and 3,000 characters (zip allows 65,535):
    the photo is re-posted under a file name within Discord's 1024, and the reply that
    lists the entries it could not use stays within 2000."""
    thread_id = await create(world, "alice", "Zia")
    photo_name = "p" * 1500 + ".png"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(photo_name, png(7))
        for i in range(3):
            archive.writestr(f"{i}" + "n" * 3000 + ".txt", "not a photo")
    await world.discord.post_user_message(
        thread_id,
        world.users["alice"],
        "",
        attachments=[("photos.zip", buf.getvalue(), "application/zip")],
    )
    reply = await world.discord.wait_for(
        lambda: next((m for m in bot_messages(world, thread_id) if "Got " in m.content), None),
        description="the reply to the zip",
    )
    assert "1 new photo" in reply.content and within_limit(reply.content, 2000)
    assert "n" * 50 + "…" in reply.content and "n" * 101 not in reply.content
    [unpacked] = [m for m in bot_messages(world, thread_id) if m.attachments]
    [attachment] = unpacked.attachments
    assert within_limit(attachment.filename, 1024) and attachment.filename.endswith(".png")


# --- when Discord refuses anyway ------------------------------------------------------------
async def test_a_400_on_the_final_message_posts_a_fallback_and_refunds(world: World) -> None:
    """Discord answers 400/50035 to the final message. The bot does not retry it for hours
    (the same body would be refused every time): it posts a short fallback at once,
    tells the requester, and gives the quota back."""
    double, thread_id, task_id = await held_task(world)
    world.discord.fail_next(
        "POST", posts_to(thread_id), 400, code=50035, message="Invalid Form Body"
    )
    finish(double)
    final = await final_message(world, thread_id, task_id)
    assert final.mention_ids == [world.users["alice"]]
    assert "Discord refused" in final.content and "quota for it was given back" in final.content
    [task] = await assert_exactly_once(world, expect=1)
    assert task.refunded and task.result_message_id == final.id
    assert task.next_action_at is None, "no retry scheduled"
    assert world.bot is not None
    status = await world.bot.store.quota_status(
        world.guild_id, world.users["alice"], now=task.created_at, default_limit=10
    )
    assert status.used == 0
    thread_posts = f"/channels/{thread_id}/messages"
    posts = [s for m, p, s in world.discord.request_log if m == "POST" and p == thread_posts]
    assert posts == [200, 400, 200], "status, the refused final message, the fallback"


async def test_a_400_on_a_status_edit_is_not_retried_on_every_poll(world: World) -> None:
    """Discord refuses a status edit with 400: the bot shows a shortened status instead
    and does not send the refused text again; the video is still delivered."""
    double, thread_id, task_id = await held_task(world)
    status = status_message(world, thread_id, task_id)
    edits = rf"^/channels/{thread_id}/messages/{status.id}$"
    world.discord.fail_next("PATCH", edits, 400, code=50035, message="Invalid Form Body")
    finish(double, [Step.running(70, polls=3), Step.succeed()])
    await task_state(world, task_id, "succeeded")
    await assert_exactly_once(world, expect=1)
    await world.discord.wait_for(
        lambda: any("too long for Discord" in e.content for e in status.edits),
        description="the shortened status",
    )
    refused_edits = [s for m, p, s in world.discord.request_log if m == "PATCH" and s == 400]
    assert refused_edits == [400]


def test_clipper_keeps_tokens_and_counts_utf16() -> None:
    """The one clipper: never splits a mention or a masked link, fits both counts."""
    clipped = text.clip("hi <@123456789> there", 10)
    assert clipped == "hi…" and within_limit(clipped, 10)
    assert within_limit(text.clip("🌀" * 100, 100), 100)
    link = "see [video](https://x.example/" + "a" * 50 + ")"
    assert text.clip(link, 30) == "see…"
    assert text.clip_message("x" * 3000, "\n-# Task #7").endswith(
        "shortened to fit Discord's limit)\n-# Task #7"
    )
    assert text.clip_filename("a" * 2000 + ".jpg").endswith(".jpg")
    assert text.choices([("n", "v" * 101), ("", "ok")]) == [("ok", "ok")]
