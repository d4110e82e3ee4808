"""/animate end to end: the real discord.py client, the Discord double, the provider doubles."""

from __future__ import annotations

import time

import pytest

from cogs.animate import Animate
from doubles.harness import World, input_png, sample_video
from doubles.providers import Step
from providers import PROVIDER_IDS
from tests.helpers import (
    bot_reacted,
    final_message,
    finals,
    started,
    status_shows,
    video_lands,
)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("pid", PROVIDER_IDS)
async def test_animate_delivers_a_video_into_a_thread(world: World, pid: str) -> None:
    image = input_png() if pid == "higgsfield_feed" else None  # image-to-video only
    ix = await world.animate("alice", prompt="a cat surfing a wave", provider=pid, image=image)
    thread_id, task_id = await started(world, ix)

    thread = world.discord.channel(thread_id)
    assert thread.parent_id == world.channel_id and thread.type == 11
    final = await video_lands(world, thread_id, task_id)

    alice = world.users["alice"]
    assert final.content.startswith(f"<@{alice}>")
    assert final.mention_ids == [alice]  # only the requester is pinged
    video = next(a for a in final.attachments if a.filename.endswith(".mp4"))
    assert video.data == sample_video()
    await bot_reacted(world, final, "🔁")

    status = await status_shows(world, thread_id, task_id, "✅ Done")
    assert f"**Provider:** {pid}" in status.content
    assert "a cat surfing a wave" in status.content
    assert status.mention_ids == []  # the status message never pings

    double = world.providers[pid]
    [submission] = double.submissions
    assert "a cat surfing a wave" in str(submission["json"])
    assert "authorization" not in {k.lower() for k in submission["headers"]}
    assert len(finals(world, thread_id, task_id)) == 1


async def test_several_outputs_are_attached_together(world: World) -> None:
    world.providers["hiapi"].script_next([Step.running(40), Step.succeed(("video", "first_frame"))])
    ix = await world.animate("alice", prompt="two outputs please", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    final = await video_lands(world, thread_id, task_id)
    kinds = sorted(a.filename.rsplit(".", 1)[1] for a in final.attachments)
    assert kinds == ["jpg", "mp4"]


async def test_provider_failure_posts_the_code_and_gives_quota_back(world: World) -> None:
    world.providers["foxapi"].script_next(
        [
            Step.running(20),
            Step.fail(
                code="generation_failed", message="Video generation failed due to content policy"
            ),
        ]
    )
    ix = await world.animate("bob", prompt="something the filter dislikes", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    final = await final_message(world, thread_id, task_id)
    assert "`generation_failed`" in final.content
    assert "content policy" in final.content
    assert "quota for it was given back" in final.content
    assert final.attachments == []
    await bot_reacted(world, final, "🔁")
    await status_shows(world, thread_id, task_id, "❌ Failed")
    assert world.bot is not None
    quota = await world.bot.store.quota_status(
        world.guild_id, world.users["bob"], now=time.time(), default_limit=10
    )
    assert quota.used == 0


async def test_status_message_follows_progress(world: World) -> None:
    world.providers["foxapi"].script_next(
        [Step.queued(), Step.running(30), Step.running(70), Step.succeed()]
    )
    ix = await world.animate("alice", prompt="progress please", provider="foxapi")
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    # Edits are throttled, so not every step shows, but the last one always does.
    status = await status_shows(world, thread_id, task_id, "✅ Done")
    assert status.edits, "the status message was never edited"
    assert "**Took:**" in status.content


async def test_animate_inside_a_thread_uses_that_thread(world: World) -> None:
    ix = await world.animate("alice", prompt="first", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    await video_lands(world, thread_id, task_id)
    ix2 = await world.animate(
        "alice", prompt="second, same thread", provider="hiapi", channel_id=thread_id
    )
    thread2, task2 = await started(world, ix2)
    assert thread2 == thread_id
    await video_lands(world, thread_id, task2)
    assert len(world.discord.threads(world.channel_id)) == 1


async def test_model_autocomplete_lists_the_chosen_providers_models(world: World) -> None:
    choices = await world.discord.autocomplete(
        "animate",
        focused="model",
        options={"prompt": "x", "provider": "hiapi", "model": ""},
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
    )
    values = [c["value"] for c in choices]
    assert values == world.bot.providers["hiapi"].models()
    assert "seedance-2-0" in values


async def test_motion_autocomplete_comes_from_the_provider(world: World) -> None:
    choices = await world.discord.autocomplete(
        "animate",
        focused="motion",
        options={"prompt": "x", "provider": "higgsfield_feed", "motion": "punch"},
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        user_id=world.users["alice"],
    )
    assert any(c["name"] == "Face Punch" for c in choices)


async def test_only_configured_providers_are_offered(world_factory) -> None:
    world = await world_factory(provider_ids=("hiapi", "gptge"))
    [animate] = [c for c in world.discord.commands(world.guild_id) if c["name"] == "animate"]
    provider_option = next(o for o in animate["options"] if o["name"] == "provider")
    assert [c["value"] for c in provider_option["choices"]] == ["hiapi", "gptge"]
    names = [o["name"] for o in animate["options"]]
    assert names == [
        "prompt",
        "image",
        "provider",
        "model",
        "duration",
        "aspect_ratio",
        "resolution",
        "seed",
        "negative_prompt",
        "character",
        "motion",
    ]


async def test_a_throttled_status_change_is_shown_by_a_later_poll(world: World) -> None:
    # queued → running happens within the edit throttle window and nothing changes
    # afterwards (no progress reported): the status must still come to say so.
    world.providers["hiapi"].script_next([Step.queued(), Step.running(polls=10_000)])
    ix = await world.animate("alice", prompt="long and quiet", provider="hiapi")
    thread_id, task_id = await started(world, ix)
    status = await status_shows(world, thread_id, task_id, "🎬 Generating")
    assert "Task #" in status.content


async def test_animate_leaves_with_its_cog_and_comes_back_with_the_providers_of_the_new_one(
    world_factory,
) -> None:
    """/animate is built per cog instance (its provider choices are the configured ones):
    unloading the cog takes it out of the tree, so a new instance can add its own."""
    world = await world_factory(provider_ids=("hiapi", "gptge"))
    bot = world.bot
    await bot.remove_cog("Animate")
    assert bot.tree.get_command("animate") is None
    await bot.add_cog(Animate(bot))
    command = bot.tree.get_command("animate")
    assert command is not None
    provider = next(p for p in command.parameters if p.name == "provider")
    assert [c.value for c in provider.choices] == ["hiapi", "gptge"]
