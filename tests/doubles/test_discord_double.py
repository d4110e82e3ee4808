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

from doubles.discord import CommandContractError, DiscordDouble, limits

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


# --- Discord's field limits (DISCORD.md §6) ------------------------------------------------
def _leaf(errors: dict[str, Any], *path: str) -> list[dict[str, str]]:
    node: Any = errors
    for part in path:
        assert part in node, f"{part!r} not in {node!r}"
        node = node[part]
    return node["_errors"]


def _codes(errors: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p, c) for p, c, _ in limits.flatten(errors)]


def test_message_limits() -> None:
    assert limits.check_message({"content": "x" * 2000}) == {}
    errors = limits.check_message({"content": "x" * 2001})
    assert _leaf(errors, "content") == [
        {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
    ]
    # An astral emoji is one code point and two UTF-16 units: the stricter count decides.
    assert limits.check_message({"content": "🌀" * 1000}) == {}
    assert "content" in limits.check_message({"content": "🌀" * 1001})
    assert _codes(limits.check_message({"nonce": "n" * 26})) == [("nonce", "BASE_TYPE_MAX_LENGTH")]
    assert limits.check_message({"nonce": "reelbot-123"}) == {}
    named = limits.check_message({"attachments": [{"id": 0, "filename": "f" * 1025}]}, ["a.mp4"])
    assert _codes(named) == [("attachments.0.filename", "BASE_TYPE_MAX_LENGTH")]
    assert _codes(limits.check_message({}, ["f" * 1025])) == [
        ("files[0].filename", "BASE_TYPE_MAX_LENGTH")
    ]
    mentions = limits.check_message(
        {
            "allowed_mentions": {
                "parse": ["users"],
                "users": ["1"],
                "roles": [str(i) for i in range(101)],
            }
        }
    )
    assert {c for _, c in _codes(mentions)} == {
        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
        "BASE_TYPE_MAX_LENGTH",
    }


def test_embed_limits() -> None:
    fine = {"title": "t" * 256, "description": "d" * 4096, "fields": [{"name": "n", "value": "v"}]}
    assert limits.check_message({"embeds": [fine]}) == {}
    errors = limits.check_message(
        {
            "embeds": [
                {
                    "title": "t" * 257,
                    "description": "d" * 4097,
                    "footer": {"text": "f" * 2049},
                    "author": {"name": "a" * 257},
                    "fields": [{"name": "n" * 257, "value": "v" * 1025}],
                }
            ]
        }
    )
    assert {p for p, _ in _codes(errors)} == {
        "embeds.0.title",
        "embeds.0.description",
        "embeds.0.footer.text",
        "embeds.0.author.name",
        "embeds.0.fields.0.name",
        "embeds.0.fields.0.value",
    }
    assert "embeds" in limits.check_message({"embeds": [{"title": "x"}] * 11})
    assert "embeds" in limits.check_message(
        {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}
    )
    total = limits.check_message(
        {"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}
    )
    assert _codes(total) == [("embeds", "MAX_EMBED_SIZE_EXCEEDED")]


def test_component_limits() -> None:
    button = {"type": 2, "style": 1, "custom_id": "c", "label": "ok"}
    assert limits.check_message({"components": [{"type": 1, "components": [button] * 5}]}) == {}
    assert "components" in limits.check_message(
        {"components": [{"type": 1, "components": [button]}] * 6}
    )
    too_wide = limits.check_message({"components": [{"type": 1, "components": [button] * 6}]})
    assert _codes(too_wide) == [("components.0.components", "BASE_TYPE_MAX_LENGTH")]
    bad = {"type": 2, "style": 1, "custom_id": "c" * 101, "label": "l" * 81}
    link = {"type": 2, "style": 5, "url": "https://x", "label": "go"}  # no custom_id needed
    select = {
        "type": 3,
        "custom_id": "s",
        "options": [{"label": "l" * 101, "value": "v"}] + [{"label": "l", "value": "v"}] * 25,
    }
    errors = limits.check_message(
        {
            "components": [
                {"type": 1, "components": [bad, link]},
                {"type": 1, "components": [select]},
            ]
        }
    )
    assert {p for p, _ in _codes(errors)} == {
        "components.0.components.0.custom_id",
        "components.0.components.0.label",
        "components.1.components.0.options",
        "components.1.components.0.options.0.label",
    }


def test_components_v2_limits() -> None:
    v2 = 1 << 15
    text_display = {"type": 10, "content": "x" * 2000}
    assert limits.check_message({"flags": v2, "components": [text_display] * 2}) == {}
    too_much_text = limits.check_message({"flags": v2, "components": [text_display] * 3})
    assert _codes(too_much_text) == [
        ("components", "UI_COMPONENTS_V2_TEXT_DISPLAY_TOTAL_LENGTH_EXCEEDED")
    ]
    container = {"type": 17, "components": [{"type": 10, "content": "a"}] * 40}
    assert _codes(limits.check_message({"flags": v2, "components": [container]})) == [
        ("components", "UI_COMPONENTS_V2_MAX_COMPONENTS_EXCEEDED")
    ]
    legacy = limits.check_message({"flags": v2, "content": "hi", "components": [text_display]})
    assert _codes(legacy) == [("content", "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2")]
    gallery = limits.check_message({"flags": v2, "components": [{"type": 12, "items": []}]})
    assert _codes(gallery) == [("components.0.items", "BASE_TYPE_BAD_LENGTH")]


def test_thread_autocomplete_and_modal_limits() -> None:
    assert limits.check_thread({"name": "n" * 100, "auto_archive_duration": 10080}) == {}
    assert {
        p for p, _ in _codes(limits.check_thread({"name": "n" * 101, "auto_archive_duration": 30}))
    } == {
        "name",
        "auto_archive_duration",
    }
    assert "name" in limits.check_thread({"name": ""})
    choice = {"name": "n" * 100, "value": "v" * 100}
    assert limits.check_autocomplete({"choices": [choice] * 25}) == {}
    assert _codes(limits.check_autocomplete({"choices": [choice] * 26})) == [
        ("data.choices", "BASE_TYPE_MAX_LENGTH")
    ]
    long_ones = limits.check_autocomplete({"choices": [{"name": "n" * 101, "value": "v" * 101}]})
    assert {p for p, _ in _codes(long_ones)} == {"data.choices.0.name", "data.choices.0.value"}
    assert limits.check_autocomplete({"choices": [{"name": "n", "value": 10**9}]}) == {}
    text_input = {"type": 4, "custom_id": "p", "label": "Prompt", "style": 2, "value": "v"}
    modal = {
        "title": "Remix",
        "custom_id": "m",
        "components": [{"type": 1, "components": [text_input]}],
    }
    assert limits.check_modal(modal) == {}
    bad_input = dict(text_input, label="l" * 46, value="v" * 4001, placeholder="p" * 101)
    bad = limits.check_modal(
        {
            "title": "t" * 46,
            "custom_id": "m",
            "components": [{"type": 1, "components": [bad_input]}] * 6,
        }
    )
    assert {p for p, _ in _codes(bad)} >= {
        "data.title",
        "data.components",
        "data.components.0.components.0.label",
        "data.components.0.components.0.value",
        "data.components.0.components.0.placeholder",
    }


def test_command_schema_limits() -> None:
    def command(**changes: Any) -> dict[str, Any]:
        return {"name": "animate", "description": "d", "type": 1, **changes}

    errors: dict[str, Any] = {}
    limits.check_command(command(), ["0"], errors)
    assert errors == {}
    cases = {
        "0.name": command(name="Animate"),
        "0.description": command(description="d" * 101),
        "0.options": command(
            options=[{"name": f"o{i}", "description": "d", "type": 3} for i in range(26)]
        ),
        "0.options.0.max_length": command(
            options=[{"name": "o", "description": "d", "type": 3, "max_length": 6001}]
        ),
        "0.options.0.choices": command(
            options=[
                {
                    "name": "o",
                    "description": "d",
                    "type": 3,
                    "choices": [{"name": "c", "value": "v"}] * 26,
                }
            ]
        ),
        "0.options.0.choices.0.value": command(
            options=[
                {
                    "name": "o",
                    "description": "d",
                    "type": 3,
                    "choices": [{"name": "c", "value": "v" * 101}],
                }
            ]
        ),
        "0.options.1.required": command(
            options=[
                {"name": "a", "description": "d", "type": 3},
                {"name": "b", "description": "d", "type": 3, "required": True},
            ]
        ),
        "0": command(
            options=[
                {
                    "name": f"o{i}",
                    "description": "d" * 100,
                    "type": 3,
                    "choices": [{"name": "c" * 100, "value": "v" * 100}] * 25,
                }
                for i in range(2)
            ]
        ),
        "0.description ": {"name": "Animate it", "type": 3, "description": "no"},
    }
    for where, schema in cases.items():
        errors = {}
        limits.check_command(schema, ["0"], errors)
        assert where.strip() in {p for p, _ in _codes(errors)}, (where, errors)
    errors = {}
    limits.check_command({"name": "Animate this", "type": 3, "description": ""}, ["0"], errors)
    assert errors == {}, "a context-menu name may have capitals and spaces"


async def test_every_route_refuses_over_the_limit_like_discord(
    double: DiscordDouble, guild: dict[str, int]
) -> None:
    """Channel messages (POST/PATCH), threads, command sync, interaction callbacks
    (types 4, 7, 8, 9) and the interaction webhook (followup, @original) all answer
    400/50035 with the field's path, and each refusal is recorded."""
    double.expect_limit_refusals()
    api, channel = double.api_base, guild["channel"]
    bot_auth = {"Authorization": f"Bot {double.token}"}
    too_long = {"content": "x" * 2001}
    async with aiohttp.ClientSession() as http:

        async def call(method: str, path: str, body: Any, auth: bool = True) -> tuple[int, Any]:
            async with http.request(
                method, api + path, json=body, headers=bot_auth if auth else {}
            ) as resp:
                return resp.status, None if resp.status == 204 else await resp.json()

        status, body = await call("POST", f"/channels/{channel}/messages", too_long)
        assert status == 400 and body == {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {
                "content": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": "Must be 2000 or fewer in length.",
                        }
                    ]
                }
            },
        }
        status, posted = await call("POST", f"/channels/{channel}/messages", {"content": "ok"})
        assert status == 200
        message_path = f"/channels/{channel}/messages/{posted['id']}"
        assert (await call("PATCH", message_path, too_long))[0] == 400
        status, body = await call("POST", message_path + "/threads", {"name": "n" * 101})
        assert (status, list(body["errors"])) == (400, ["name"])
        status, body = await call(
            "POST",
            f"/channels/{channel}/threads",
            {"name": "ok", "type": 11, "auto_archive_duration": 30},
        )
        assert (status, list(body["errors"])) == (400, ["auto_archive_duration"])
        sync = f"/applications/{double.application_id}/guilds/{guild['guild']}/commands"
        status, body = await call(
            "PUT",
            sync,
            [
                {
                    "name": "say",
                    "description": "d",
                    "options": [
                        {"name": "text", "description": "d", "type": 3, "max_length": 6001}
                    ],
                }
            ],
        )
        assert status == 400 and "max_length" in body["errors"]["0"]["options"]["0"]
        status, _ = await call(
            "PUT",
            sync,
            [
                {
                    "name": "say",
                    "description": "d",
                    "options": [
                        {
                            "name": "text",
                            "description": "d",
                            "type": 3,
                            "max_length": 100,
                            "autocomplete": True,
                        }
                    ],
                }
            ],
        )
        assert status == 200

        def interaction(**kwargs: Any) -> Any:
            return double._interactions.create(
                "say",
                guild_id=guild["guild"],
                channel_id=channel,
                user_id=guild["alice"],
                options={"text": "hi"},
                attachments={},
                **kwargs,
            )

        def callback(ix: Any) -> str:
            return f"/interactions/{ix.id}/{ix.token}/callback"

        ix = interaction()
        status, body = await call("POST", callback(ix), {"type": 4, "data": too_long}, auth=False)
        assert status == 400 and "content" in body["errors"]["data"]
        status, body = await call(
            "POST",
            callback(ix),
            {"type": 9, "data": {"title": "t" * 46, "custom_id": "m", "components": []}},
            auth=False,
        )
        assert status == 400 and {"title", "components"} <= set(body["errors"]["data"])
        clicked = interaction()
        clicked.type, clicked.source_message_id = 3, int(posted["id"])  # a button on it
        status, body = await call(
            "POST", callback(clicked), {"type": 7, "data": too_long}, auth=False
        )
        assert status == 400 and "content" in body["errors"]["data"]
        typing = interaction(focused="text")
        status, body = await call(
            "POST",
            callback(typing),
            {"type": 8, "data": {"choices": [{"name": "n", "value": "v" * 101}]}},
            auth=False,
        )
        assert status == 400 and "value" in body["errors"]["data"]["choices"]["0"]
        status, _ = await call("POST", callback(ix), {"type": 5}, auth=False)
        assert status == 204
        hook = f"/webhooks/{double.application_id}/{ix.token}"
        status, body = await call("POST", hook + "?wait=true", too_long, auth=False)
        assert status == 400 and "content" in body["errors"]
        status, body = await call("PATCH", hook + "/messages/@original", too_long, auth=False)
        assert status == 400 and "content" in body["errors"]
    refused_paths = [r.path for r in double.limit_refusals]
    assert len(refused_paths) == 11, refused_paths
    assert all(r.for_limit and r.describe().startswith(r.method) for r in double.limit_refusals)


async def test_an_unexpected_limit_refusal_fails_the_test(double: DiscordDouble) -> None:
    """What the suite-wide fixture relies on: without expect_limit_refusals(), a refusal
    makes assert_no_limit_refusals() fail, naming the request and the field."""
    g = double.add_guild("Limits")
    channel = double.add_channel(g, "general")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{double.api_base}/channels/{channel}/messages",
            json={"content": "x", "nonce": "n" * 30},
            headers={"Authorization": f"Bot {double.token}"},
        ) as resp,
    ):
        assert resp.status == 400
    with pytest.raises(AssertionError, match=r"nonce: BASE_TYPE_MAX_LENGTH"):
        double.assert_no_limit_refusals()
    double.expect_limit_refusals()  # declared: the teardown check passes
    double.assert_no_limit_refusals()
