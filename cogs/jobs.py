"""/jobs: in-flight and recent tasks, with a link to each thread."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from reelbot import messages
from reelbot.generations.request import video_request
from reelbot.permissions import interaction_is_moderator
from reelbot.store.models import TaskRow
from reelbot.text import clip_message

if TYPE_CHECKING:
    from reelbot.app import Reelbot

PAGE_SIZE = 10
MAX_PAGES = 10


def job_line(task: TaskRow, *, now: float, show_requester: bool, about: str) -> str:
    """One task of the list; ``about``: what it is about (its kind's ``JobKind.about``)."""
    state = messages.STATE_LABELS.get(task.state, task.state)
    if task.state in ("queued", "running") and task.progress is not None:
        state += f" {task.progress}%"
    video = video_request(task)
    model = f" · {video.model}" if video is not None and video.model else ""
    who = f" · <@{task.requester_id}>" if show_requester else ""
    link = f"https://discord.com/channels/{task.guild_id}/{task.reply_channel_id}"
    if task.result_message_id:
        link += f"/{task.result_message_id}"
    prompt = messages.preview(about, 60)
    return (
        f"**#{task.id}** {state} · {task.provider}{model}{who} · "
        f"{messages.format_duration(now - task.created_at)} ago · [thread]({link})\n"
        f"  {prompt}"
    )


class Jobs(commands.Cog):
    def __init__(self, bot: Reelbot) -> None:
        self.bot = bot

    def _about(self, task: TaskRow) -> str:
        kind = self.bot.delivery.kinds.get(task.kind)
        return kind.about(task) if kind is not None else ""

    @app_commands.command(name="jobs", description="Your in-flight and recent generations")
    @app_commands.guild_only()
    @app_commands.describe(page="Page number (10 tasks per page)")
    async def jobs(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1, MAX_PAGES] = 1
    ) -> None:
        assert interaction.guild_id is not None
        moderator = interaction_is_moderator(interaction, self.bot.config.moderator_role_ids)
        tasks = await self.bot.generations.recent_tasks(
            interaction.guild_id,
            interaction.user.id,
            everyone=moderator,
            limit=PAGE_SIZE * MAX_PAGES,
        )
        pages = max(1, -(-len(tasks) // PAGE_SIZE))
        page = min(page, pages)
        shown = tasks[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        scope = "this server's" if moderator else "your"
        if not shown:
            text = f"No tasks yet in {scope} history. Start one with /animate."
        else:
            now = time.time()
            in_flight = sum(t.in_flight for t in tasks)
            header = f"**{scope.capitalize()} tasks** — {in_flight} in flight · page {page}/{pages}"
            body = "\n".join(
                job_line(t, now=now, show_requester=moderator, about=self._about(t)) for t in shown
            )
            text = f"{header}\n{body}"
            if page < pages:
                text += f"\n-# More: /jobs page:{page + 1}"
        await interaction.response.send_message(
            clip_message(text),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
            suppress_embeds=True,
        )


async def setup(bot: Reelbot) -> None:
    await bot.add_cog(Jobs(bot))
