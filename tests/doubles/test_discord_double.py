"""The Discord double, exercised through the real, unmodified discord.py client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from doubles.discord import CommandContractError, DiscordDouble

PNG = b"\x89PNG\r\n\x1a\n" + b"fake-image-bytes" * 4
MESSAGE_CONTENT = 1 << 15
MANAGE_GUILD = 0x20


class Results:
    """What the bot's commands produced; tests await a key instead of sleeping.

    ``double.wait_for`` only wakes on the double's own state changes, so
    bot-side outcomes are awaited here (or with ``bot.wait_for``).
    """

    def __init__(self) -> None:
        self._values: dict[str, asyncio.Future[Any]] = {}

    def _future(self, key: str) -> asyncio.Future[Any]:
        if key not in self._values:
            self._values[key] = asyncio.get_running_loop().create_future()
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._future(key).set_result(value)

    async def get(self, key: str, timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(asyncio.shield(self._future(key)), timeout)


class ProbeBot(commands.AutoShardedBot):
    """A minimal bot with the shapes Reelbot uses: defer, thread, file, reaction, edit."""

    def __init__(self, *, message_content: bool = True, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            chunk_guilds_at_startup=False,
            guild_ready_timeout=0.1,
            **options,
        )
        self.ready = asyncio.Event()
        self.results = Results()
        self.raw_reactions: list[discord.RawReactionActionEvent] = []
        self.seen_messages: list[discord.Message] = []
        self._add_commands()

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # the default sleeps 5 s before every non-first shard

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.raw_reactions.append(payload)

    async def on_message(self, message: discord.Message) -> None:
        self.seen_messages.append(message)

    def _add_commands(self) -> None:
        results = self.results

        async def model_choices(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            models = ["kling-2", "veo-3", "wan-2.2"]
            return [app_commands.Choice(name=m, value=m) for m in models if current in m]

        @self.tree.command(name="animate", description="Turn a prompt into a video")
        @app_commands.autocomplete(model=model_choices)
        async def animate(
            interaction: discord.Interaction,
            prompt: str,
            duration: app_commands.Range[int, 1, 20] = 5,
            image: discord.Attachment | None = None,
            model: str | None = None,
        ) -> None:
            await interaction.response.defer(thinking=True)
            image_bytes = await image.read() if image else b""
            original = await interaction.original_response()
            thread = await original.create_thread(name=f"animate: {prompt}"[:100])
            video = discord.File(io.BytesIO(image_bytes or b"video"), filename="out.mp4")
            sent = await thread.send(content="rendering", file=video)
            await sent.add_reaction("🔁")
            await sent.edit(content="done")
            results["animate"] = {
                "prompt": prompt,
                "duration": duration,
                "model": model,
                "image": image_bytes,
                "filesize_limit": interaction.filesize_limit,
                "thread_id": thread.id,
                "message_id": sent.id,
            }
            await interaction.edit_original_response(content=f"queued in {thread.mention}")

        quota = app_commands.Group(name="quota", description="Daily quotas")

        @quota.command(name="set", description="Set a member's daily limit")
        async def quota_set(
            interaction: discord.Interaction, user: discord.Member, limit: int
        ) -> None:
            if not interaction.permissions.manage_guild:
                await interaction.response.send_message("moderators only", ephemeral=True)
                return
            await interaction.response.send_message(
                f"limit for {user.name} is now {limit}", ephemeral=True
            )

        self.tree.add_command(quota)

        @self.tree.command(name="twice", description="Answers twice (a bug, on purpose)")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            try:
                # A fresh InteractionResponse forgets the first answer, so the
                # second one really reaches the server.
                await discord.InteractionResponse(interaction).defer()
            except discord.HTTPException as error:
                results["twice"] = error
            await interaction.edit_original_response(content="answered")

        @self.tree.command(name="deliver", description="Ephemeral defer, then followups")
        async def deliver(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            clip = discord.File(io.BytesIO(b"clip"), filename="clip.mp4")
            first = await interaction.followup.send("first", file=clip, wait=True)
            second = await interaction.followup.send("second", wait=True)
            await second.edit(content="second, edited")
            results["deliver"] = (first.id, second.id)

        @self.tree.command(name="slow", description="Answers, then edits")
        async def slow(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.defer()
            except discord.HTTPException as error:
                results["slow_defer"] = error
                return
            try:
                await interaction.edit_original_response(content="too late")
            except discord.HTTPException as error:
                results["slow_edit"] = error


@pytest.fixture(autouse=True)
def restore_route_base() -> Any:
    saved = discord.http.Route.BASE
    yield
    discord.http.Route.BASE = saved


@pytest.fixture
async def double() -> AsyncIterator[DiscordDouble]:
    async with DiscordDouble() as fake:
        yield fake


@contextlib.asynccontextmanager
async def running_bot(double: DiscordDouble, **options: Any) -> AsyncIterator[ProbeBot]:
    discord.http.Route.BASE = double.api_base
    bot = ProbeBot(**options)
    runner = asyncio.create_task(bot.start(double.token))
    ready = asyncio.create_task(bot.ready.wait())
    try:
        done, _ = await asyncio.wait({runner, ready}, timeout=10, return_when="FIRST_COMPLETED")
        if runner in done:
            runner.result()  # startup failed: raise why
        assert ready in done, "bot never became ready"
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def expect(bot: ProbeBot, event: str, check: Any = None) -> asyncio.Task[Any]:
    """Arm ``bot.wait_for`` before triggering the event (it must not be missed)."""
    return asyncio.create_task(bot.wait_for(event, check=check, timeout=5))


async def react_and_wait(
    bot: ProbeBot, double: DiscordDouble, channel_id: int, message_id: int, user_id: int
) -> discord.RawReactionActionEvent:
    arrived = expect(bot, "raw_reaction_add", lambda r: r.user_id == user_id)
    await double.add_reaction(channel_id, message_id, user_id, "🔁")
    return await arrived


@pytest.fixture
def guild(double: DiscordDouble) -> dict[str, int]:
    g = double.add_guild("Test Guild")
    mods = double.add_role(g, "Mods", permissions=MANAGE_GUILD)
    return {
        "guild": g,
        "channel": double.add_channel(g, "general"),
        "mods": mods,
        "alice": double.add_member(g, "alice"),
        "mod": double.add_member(g, "mod", roles=[mods]),
    }


async def test_login_sync_and_ready(double: DiscordDouble, guild: dict[str, int]) -> None:
    async with running_bot(double) as bot:
        assert bot.user is not None and bot.user.id == double.bot_user_id
        assert bot.get_guild(guild["guild"]) is not None
        assert double.identified_intents is not None
        assert double.identified_intents & MESSAGE_CONTENT
    recorded = {c["name"]: c for c in double.commands()}
    assert set(recorded) == {"animate", "quota", "twice", "deliver", "slow"}
    animate_types = {o["name"]: o["type"] for o in recorded["animate"]["options"]}
    assert animate_types == {"prompt": 3, "duration": 4, "image": 11, "model": 3}
    calls = [(m, p) for m, p, _ in double.request_log]
    assert ("GET", "/users/@me") in calls
    assert ("GET", "/gateway/bot") in calls
    assert ("PUT", f"/applications/{double.application_id}/commands") in calls


async def test_animate_flow_end_to_end(double: DiscordDouble, guild: dict[str, int]) -> None:
    channel, alice = guild["channel"], guild["alice"]
    async with running_bot(double) as bot:
        ix = await double.invoke(
            "animate",
            guild_id=guild["guild"],
            channel_id=channel,
            user_id=alice,
            options={"prompt": "a cat", "duration": 7},
            attachments={"image": ("in.png", PNG, "image/png")},
        )
        await ix.wait_for_content("queued in")
        assert ix.deferred and not ix.ephemeral
        result = await bot.results.get("animate")
        assert (result["prompt"], result["duration"], result["image"]) == ("a cat", 7, PNG)
        assert result["filesize_limit"] == 10 * 1024 * 1024

        [thread] = double.threads(channel)
        assert thread.id == result["thread_id"]
        assert thread.starter_message_id == ix.original_message_id
        assert [m.id for m in double.messages(channel)] == [ix.original_message_id]
        [video] = double.messages(thread.id)
        assert video.content == "done" and [e.content for e in video.edits] == ["done"]
        assert [(a.filename, a.data, a.content_type) for a in video.attachments] == [
            ("out.mp4", PNG, "video/mp4")
        ]
        assert video.reactions == {"🔁": {double.bot_user_id}}

        # Like Discord, the bot hears its own reaction, then a user's one.
        user_event = await react_and_wait(bot, double, thread.id, video.id, alice)
        assert user_event.member is not None and user_event.member.id == alice
        assert user_event.guild_id == guild["guild"] and str(user_event.emoji) == "🔁"
        assert any(r.user_id == double.bot_user_id for r in bot.raw_reactions)
        assert double.message(video.id).reactions["🔁"] == {double.bot_user_id, alice}


async def test_user_messages_and_message_content_intent(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    channel, alice = guild["channel"], guild["alice"]
    async with running_bot(double) as bot:
        arrived = expect(bot, "message", lambda m: m.author.id == alice)
        await double.post_user_message(
            channel, alice, "hello", attachments=[("ref.png", PNG, "image/png")]
        )
        seen = await arrived
        assert seen.content == "hello" and seen.attachments[0].filename == "ref.png"
        assert await seen.attachments[0].read() == PNG

    async with running_bot(double, message_content=False) as bot:
        arrived = expect(bot, "message", lambda m: m.author.id == alice)
        await double.post_user_message(channel, alice, "secret")
        hidden = await arrived
        assert hidden.content == "" and not hidden.attachments  # hidden without the intent


async def test_autocomplete_subcommands_and_contract_errors(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    where = {"guild_id": guild["guild"], "channel_id": guild["channel"]}
    async with running_bot(double):
        choices = await double.autocomplete(
            "animate",
            focused="model",
            options={"prompt": "x", "model": "2"},
            user_id=guild["alice"],
            **where,
        )
        assert [c["value"] for c in choices] == ["kling-2", "wan-2.2"]

        ix = await double.invoke(
            "quota set", user_id=guild["mod"], options={"user": guild["alice"], "limit": 3}, **where
        )
        assert await ix.wait_for_content("limit for alice is now 3") and ix.ephemeral
        assert double.messages(guild["channel"]) == []  # ephemeral replies are not in the channel
        ix = await double.invoke(
            "quota set", user_id=guild["alice"], options={"user": guild["mod"], "limit": 1}, **where
        )
        await ix.wait_for_content("moderators only")

        with pytest.raises(CommandContractError, match="seconds"):
            await double.invoke(
                "animate", user_id=guild["alice"], options={"prompt": "x", "seconds": 5}, **where
            )
        with pytest.raises(CommandContractError, match="required"):
            await double.invoke("animate", user_id=guild["alice"], options={}, **where)
        with pytest.raises(CommandContractError, match="never synced"):
            await double.invoke("jobs", user_id=guild["alice"], **where)
        with pytest.raises(CommandContractError, match="outside"):
            await double.invoke(
                "animate", user_id=guild["alice"], options={"prompt": "x", "duration": 99}, **where
            )


async def test_interaction_rules(double: DiscordDouble, guild: dict[str, int]) -> None:
    where = {"guild_id": guild["guild"], "channel_id": guild["channel"], "user_id": guild["alice"]}
    async with running_bot(double) as bot:
        ix = await double.invoke("twice", **where)
        await ix.wait_for_content("answered")
        error = await bot.results.get("twice")
        assert (error.status, error.code) == (400, 40060)
        assert len(ix.responses) == 1

        double.interaction_deadline = 0.0
        ix = await double.invoke("slow", **where)
        error = await bot.results.get("slow_defer")
        assert isinstance(error, discord.NotFound) and error.code == 10062
        assert not ix.acknowledged

        double.interaction_deadline = 3.0
        double.interaction_token_ttl = 0.0
        await double.invoke("slow", **where)
        error = await bot.results.get("slow_edit")
        assert (error.status, error.code) == (401, 50027)


async def test_message_validation(double: DiscordDouble, guild: dict[str, int]) -> None:
    double.expect_limit_refusals()
    async with running_bot(double) as bot:
        channel = bot.get_channel(guild["channel"])
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert (too_long.value.status, too_long.value.code) == (400, 50035)
        with pytest.raises(discord.HTTPException) as empty:
            await bot.http.send_message(channel.id, params=discord.http.handle_message_parameters())
        assert empty.value.code == 50006
        with pytest.raises(discord.HTTPException) as too_many:
            await channel.send(
                files=[discord.File(io.BytesIO(b"x"), f"{i}.txt") for i in range(11)]
            )
        assert too_many.value.status == 400

        double.set_upload_limit(guild["guild"], 1024)
        with pytest.raises(discord.HTTPException) as too_big:
            await channel.send(file=discord.File(io.BytesIO(b"x" * 2048), "big.mp4"))
        assert (too_big.value.status, too_big.value.code) == (413, 40005)
        await channel.send(file=discord.File(io.BytesIO(b"x" * 1024), "fits.mp4"))

        updated = expect(bot, "guild_update")
        double.set_upload_limit(guild["guild"], premium_tier=2)
        _, after = await updated
        assert after.filesize_limit == channel.guild.filesize_limit == 50 * 1024 * 1024
        assert [m.attachments[0].filename for m in double.messages(channel.id)] == ["fits.mp4"]


async def test_rate_limit_is_retried_and_nonce_dedups(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    async with running_bot(double) as bot:
        channel = bot.get_channel(guild["channel"])
        assert isinstance(channel, discord.TextChannel)
        double.fail_next("POST", r"/channels/\d+/messages$", status=429, retry_after=0.05)
        sent = await channel.send("after a 429")
        statuses = [s for m, p, s in double.request_log if m == "POST" and p.endswith("/messages")]
        assert statuses == [429, 200]
        assert sent.content == "after a 429"

        first = await channel.send("once", nonce=1234)
        again = await channel.send("once", nonce=1234)
        assert first.id == again.id
        assert [m.content for m in double.messages(channel.id)] == ["after a 429", "once"]

        double.fail_next("POST", r"/channels/\d+/messages$", status=403)
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.send("nope")
        assert forbidden.value.code == 50013


async def test_unknown_route_and_auth(
    double: DiscordDouble, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(double) as bot:
        with caplog.at_level(logging.WARNING), pytest.raises(discord.NotFound) as missing:
            await bot.http.request(discord.http.Route("GET", "/no/such/route"))
    assert missing.value.code == 0
    assert ("GET", "/no/such/route", 404) in double.request_log
    assert "no such route GET /no/such/route" in caplog.text

    async with (
        aiohttp.ClientSession() as session,
        session.get(double.api_base + "/users/@me") as response,
    ):
        assert response.status == 401
        assert response.content_type == "application/json"
        assert await response.json() == {"message": "401: Unauthorized", "code": 0}


async def test_threads_attachments_and_deletion(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    async with running_bot(double) as bot:
        channel = bot.get_channel(guild["channel"])
        assert isinstance(channel, discord.TextChannel)
        thread = await channel.create_thread(name="jobs", type=discord.ChannelType.public_thread)
        sent = await thread.send(file=discord.File(io.BytesIO(PNG), "frame.png"))
        old_url = sent.attachments[0].url
        assert "ex=" in old_url and "hm=" in old_url

        double.expire_attachment_urls()
        with pytest.raises(discord.NotFound):
            await sent.attachments[0].read()
        fresh = await thread.fetch_message(sent.id)
        assert fresh.attachments[0].url != old_url
        assert await fresh.attachments[0].read() == PNG

        double.delete_channel(thread.id)
        with pytest.raises(discord.NotFound) as gone:
            await thread.send("anyone there?")
        assert gone.value.code == 10003


async def test_resume_replays_missed_events(double: DiscordDouble, guild: dict[str, int]) -> None:
    async with running_bot(double) as bot:
        channel = bot.get_channel(guild["channel"])
        assert isinstance(channel, discord.TextChannel)
        message = await channel.send("react to me")
        [session] = double.sessions
        await double.disconnect_gateway()
        # Dispatched while the bot is offline: kept and replayed on RESUME.
        await react_and_wait(bot, double, channel.id, message.id, guild["alice"])
        assert session.resumes == 1 and session.connected


async def test_two_shards_get_only_their_guilds() -> None:
    async with DiscordDouble(shard_count=2) as double:
        g0 = double.add_guild("zero", shard_id=0)
        g1 = double.add_guild("one", shard_id=1)
        c1 = double.add_channel(g1, "general")
        alice = double.add_member(g1, "alice")
        async with running_bot(double) as bot:
            assert bot.shard_count == 2
            by_shard = {s.shard_id: s for s in double.sessions}
            assert by_shard[0].guild_ids() == [g0]
            assert by_shard[1].guild_ids() == [g1]
            assert bot.get_guild(g1) is not None and bot.get_guild(g1).shard_id == 1

            ix = await double.invoke(
                "quota set",
                guild_id=g1,
                channel_id=c1,
                user_id=alice,
                options={"user": alice, "limit": 2},
            )
            await ix.wait_for_response()
            assert "INTERACTION_CREATE" in by_shard[1].event_names()
            assert "INTERACTION_CREATE" not in by_shard[0].event_names()


async def test_followups_replace_the_thinking_message(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    async with running_bot(double) as bot:
        ix = await double.invoke(
            "deliver", guild_id=guild["guild"], channel_id=guild["channel"], user_id=guild["alice"]
        )
        first_id, second_id = await bot.results.get("deliver")
        assert ix.deferred and ix.ephemeral
        # The first followup after a deferral edits the loading message.
        assert ix.original_message_id == first_id
        assert [f["content"] for f in ix.followups] == ["first", "second, edited"]
        assert ix.followups[0]["attachments"][0]["filename"] == "clip.mp4"
        # Later followups choose their own visibility (discord.py sends no flags here).
        assert double.message(first_id).ephemeral and not double.message(second_id).ephemeral
        assert [m.id for m in double.messages(guild["channel"])] == [second_id]


async def test_history_edits_deletes_reactions_and_mentions(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    alice = guild["alice"]
    async with running_bot(double) as bot:
        channel = bot.get_channel(guild["channel"])
        assert isinstance(channel, discord.TextChannel) and bot.user is not None
        one = await channel.send("one", file=discord.File(io.BytesIO(b"a"), "a.txt"))
        two = await channel.send("two")
        three = await channel.send(
            f"<@{alice}> three", allowed_mentions=discord.AllowedMentions.none()
        )
        assert [m.id async for m in channel.history(limit=10)] == [three.id, two.id, one.id]
        after_one = [m.id async for m in channel.history(after=one, oldest_first=True)]
        assert after_one == [two.id, three.id]

        await one.edit(content="one!")  # attachments not mentioned: kept
        assert [a.filename for a in double.message(one.id).attachments] == ["a.txt"]
        await one.edit(attachments=[])
        assert double.message(one.id).attachments == []
        assert [e.content for e in double.message(one.id).edits] == ["one!", "one!"]

        await two.delete()
        assert [m.id for m in double.messages(channel.id)] == [one.id, three.id]
        with pytest.raises(discord.NotFound) as gone:
            await channel.fetch_message(two.id)
        assert gone.value.code == 10008

        stored = double.message(three.id)
        assert stored.mention_ids == [] and stored.allowed_mentions == {"parse": []}
        await three.add_reaction("🔁")
        fetched = await channel.fetch_message(three.id)
        assert [u.id async for u in fetched.reactions[0].users()] == [bot.user.id]
        await three.remove_reaction("🔁", bot.user)
        assert double.message(three.id).reactions == {}
