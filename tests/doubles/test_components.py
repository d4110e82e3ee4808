"""Buttons, selects and modals through the Discord double, with discord.py's own views:
MESSAGE_COMPONENT (type 3) and MODAL_SUBMIT (type 5) interactions as Discord sends them."""

from __future__ import annotations

import discord
import pytest

from doubles.discord import DiscordDouble
from tests.doubles.test_discord_double import (  # noqa: F401 - fixtures
    double,
    guild,
    restore_route_base,
    running_bot,
)
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(30)


class NameModal(discord.ui.Modal, title="Name the character"):
    name: discord.ui.TextInput[NameModal] = discord.ui.TextInput(label="Name", custom_id="name")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"named {self.name.value}", ephemeral=True)


class Panel(discord.ui.View):
    def __init__(self, owner_id: int) -> None:
        super().__init__(timeout=None)
        self.owner_id = owner_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("not your buttons", ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Rename", custom_id="rename", style=discord.ButtonStyle.primary)
    async def rename(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        await interaction.response.send_modal(NameModal())

    @discord.ui.button(label="Run again", custom_id="again", style=discord.ButtonStyle.secondary)
    async def again(self, interaction: discord.Interaction, _: discord.ui.Button[Panel]) -> None:
        assert interaction.message is not None
        await interaction.response.edit_message(content=f"{interaction.message.content} +1")

    @discord.ui.select(
        custom_id="pick",
        options=[
            discord.SelectOption(label="Fast", value="fast"),
            discord.SelectOption(label="Good", value="good"),
        ],
    )
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[Panel]
    ) -> None:
        await interaction.response.send_message(f"picked {select.values[0]}")


async def test_clicks_selects_and_modals_reach_the_bot(
    double: DiscordDouble,  # noqa: F811
    guild: dict[str, int],  # noqa: F811
) -> None:
    stranger = double.add_member(guild["guild"], "bob")
    async with running_bot(double) as bot:
        channel = bot.get_channel(guild["channel"])
        assert isinstance(channel, discord.TextChannel)
        view = Panel(guild["alice"])
        bot.add_view(view)
        sent = await channel.send("render 1", view=view)

        # A button that edits its own message (UPDATE_MESSAGE).
        click = await double.click(sent.id, "again", user_id=guild["alice"])
        await click.wait_for_response()
        await double.wait_for(lambda: double.message(sent.id).content == "render 1 +1")
        assert click.payload["type"] == 3
        assert click.payload["message"]["id"] == str(sent.id)

        # A stranger is refused by the bot's own check.
        refused = await double.click(sent.id, "again", user_id=stranger)
        assert await refused.wait_for_content("not your buttons")
        assert refused.ephemeral

        # A select: values arrive; the answer is a new message.
        picked = await double.click(sent.id, "pick", user_id=guild["alice"], values=["good"])
        assert await picked.wait_for_content("picked good")

        # A button that opens a modal; submitting it answers.
        opened = await double.click(sent.id, "rename", user_id=guild["alice"])
        await opened.wait_for_response()
        assert opened.modal is not None and opened.modal["title"] == "Name the character"
        submitted = await double.submit_modal(opened, {"name": "Ava"})
        assert submitted.payload["type"] == 5
        assert await submitted.wait_for_content("named Ava")

        with pytest.raises(ValueError, match="no component"):
            await double.click(sent.id, "nope", user_id=guild["alice"])


async def test_message_commands_and_redelivered_interactions(
    double: DiscordDouble,  # noqa: F811
    guild: dict[str, int],  # noqa: F811
) -> None:
    """A message context-menu command arrives as Discord sends it (type 2, ``data.type``
    3, ``target_id``, ``resolved.messages``); a redelivered interaction has the same id
    and token, and only its first response is accepted."""
    async with running_bot(double) as bot:
        seen: list[tuple[int, str]] = []
        errors: list[int] = []

        async def animate(interaction: discord.Interaction, message: discord.Message) -> None:
            seen.append((message.id, message.content))
            try:
                await interaction.response.send_message("got it", ephemeral=True)
            except discord.HTTPException as exc:
                errors.append(exc.code)

        bot.tree.add_command(discord.app_commands.ContextMenu(name="Animate", callback=animate))
        await bot.tree.sync()
        [menu] = [c for c in double.commands() if c["type"] == 3]
        assert menu["name"] == "Animate" and menu["description"] == ""

        posted = await double.post_user_message(guild["channel"], guild["alice"], "a cat")
        ix = await double.message_command("Animate", posted, user_id=guild["alice"])
        assert ix.payload["type"] == 2
        data = ix.payload["data"]
        assert data["type"] == 3 and data["target_id"] == str(posted) and "options" not in data
        assert data["resolved"]["messages"][str(posted)]["content"] == "a cat"
        assert await ix.wait_for_content("got it")
        assert seen == [(posted, "a cat")]

        await double.redeliver(ix)
        await eventually(lambda: errors, description="the second response refused")
        assert errors == [40060] and len(ix.responses) == 1 and len(seen) == 2

        with pytest.raises(Exception, match="never synced"):
            await double.message_command("Nope", posted, user_id=guild["alice"])
