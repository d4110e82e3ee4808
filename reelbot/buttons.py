"""The action bar: persistent buttons on the status and final messages (SPEC §3 "Buttons").

Every button is one :class:`TaskButton`, a discord.py ``DynamicItem`` whose
``custom_id`` carries the action and the task id (``reelbot:<action>:<task id>``).
Nothing is kept in memory per message: the class is registered once
(``add_dynamic_items``) and a click on any message, sent by any process, before or
after any restart, is parsed back from its ``custom_id`` and checked against the
store by the ``ActionBar`` cog (cogs/actions.py), which owns every rule.

Pure: building the views and the words they need (seed line, ETA) from a task row.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal, Protocol, cast

import discord
from discord.ext import commands

from reelbot.generations.request import video_request
from reelbot.jobs.scheduling import CompletionModel
from reelbot.store.models import TaskRow

log = logging.getLogger(__name__)

Action = Literal["again", "vary", "remix", "delete", "cancel"]
ACTIONS: tuple[Action, ...] = ("again", "vary", "remix", "delete", "cancel")
PREFIX = "reelbot"
# custom_id is 1-100 characters: "reelbot:remix:" + a 20-digit id is 34.
TEMPLATE = re.compile(rf"{PREFIX}:(?P<action>{'|'.join(ACTIONS)}):(?P<task_id>[0-9]{{1,20}})")
# Modals are answered statelessly too (cogs/actions.py reads them on_interaction).
REMIX_MODAL = re.compile(rf"{PREFIX}:remix-modal:(?P<task_id>[0-9]{{1,20}})")
ANIMATE_MODAL = re.compile(
    rf"{PREFIX}:animate-modal:(?P<channel_id>[0-9]{{1,20}}):(?P<message_id>[0-9]{{1,20}})"
)

LABELS: dict[Action, str] = {
    "again": "Run again",
    "vary": "Vary",
    "remix": "Remix",
    "delete": "Delete",
    "cancel": "Cancel",
}
EMOJI: dict[Action, str] = {
    "again": "🔁",
    "vary": "🎲",
    "remix": "✏️",
    "delete": "🗑️",
    "cancel": "✖️",
}
STYLES: dict[Action, discord.ButtonStyle] = {
    "again": discord.ButtonStyle.primary,
    "vary": discord.ButtonStyle.secondary,
    "remix": discord.ButtonStyle.secondary,
    "delete": discord.ButtonStyle.danger,
    "cancel": discord.ButtonStyle.danger,
}
IN_FLIGHT = ("submitting", "queued", "running")


def custom_id(action: Action, task_id: int) -> str:
    return f"{PREFIX}:{action}:{task_id}"


def remix_modal_id(task_id: int) -> str:
    return f"{PREFIX}:remix-modal:{task_id}"


def animate_modal_id(channel_id: int, message_id: int) -> str:
    return f"{PREFIX}:animate-modal:{channel_id}:{message_id}"


class ActionHandler(Protocol):
    async def pressed(
        self, action: Action, task_id: int, interaction: discord.Interaction
    ) -> None: ...


HANDLER_COG = "ActionBar"


class TaskButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One action on one task; rebuilt from its custom_id on every click."""

    def __init__(self, action: Action, task_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=LABELS[action],
                emoji=EMOJI[action],
                style=STYLES[action],
                custom_id=custom_id(action, task_id),
            )
        )
        self.action: Action = action
        self.task_id = task_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> TaskButton:
        return cls(cast(Action, match["action"]), int(match["task_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        handler = client.get_cog(HANDLER_COG) if isinstance(client, commands.bot.BotBase) else None
        if handler is None:
            log.warning("%s on task %s, but no action bar is loaded", self.action, self.task_id)
            await interaction.response.send_message(
                "This button is not available right now; try again shortly.", ephemeral=True
            )
            return
        await cast(ActionHandler, handler).pressed(self.action, self.task_id, interaction)


def _view(buttons: list[TaskButton]) -> discord.ui.View:
    # timeout=None and only DynamicItems: discord.py keeps nothing per message.
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(button)
    return view


def status_view(task: TaskRow) -> discord.ui.View:
    """Cancel while the task is in flight (the same rules as ❌); no buttons afterwards
    (an empty view: an edit with it removes the Cancel button)."""
    if task.state not in IN_FLIGHT:
        return _view([])
    return _view([TaskButton("cancel", task.id)])


def final_view(task: TaskRow, *, rerunnable: bool, can_vary: bool) -> discord.ui.View:
    """A finished video: Run again, Vary (when its model takes a seed), Remix and
    Delete. A failure or cancellation: Run again. A kind that does not run again (a
    training, ``rerunnable`` False): none."""
    if not rerunnable:
        return _view([])
    if task.state != "succeeded":
        return _view([TaskButton("again", task.id)])
    actions: list[Action] = (
        ["again", "vary", "remix", "delete"]
        if can_vary
        else [
            "again",
            "remix",
            "delete",
        ]
    )
    return _view([TaskButton(a, task.id) for a in actions])


def seed_line(task: TaskRow) -> str:
    """The seed a video was made with, when the request fixed one (Vary always does)."""
    video = video_request(task)
    seed = video.seed if video is not None else None
    return f"**Seed:** `{seed}`" if isinstance(seed, int) else ""


# --- "usually ready in about N min" -------------------------------------------------------
WIDE_SPREAD = 2.0  # third quartile over first: beyond this a single figure would mislead


def _minutes(seconds: float) -> int:
    """Whole minutes, coarser as they grow: 1-9, then fives, then quarter hours."""
    minutes = seconds / 60
    if minutes < 10:
        return max(1, round(minutes))
    if minutes < 60:
        return int(5 * round(minutes / 5))
    return int(15 * round(minutes / 15))


def _say(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def eta_text(model: CompletionModel | None) -> str | None:
    """The phrase "usually ready in about 4 min" from recent completion times (submit to
    success), or None while there are too few of them (``model.ready``).

    No more precision than the data has: the median in whole minutes (fives past
    ten minutes, quarter hours past an hour), "under a minute" below 45 s, and
    the interquartile range instead of one figure when the times vary widely.
    """
    if model is None or not model.ready:
        return None
    median = model.quantile(0.5)
    if median < 45:
        return "usually ready in under a minute"
    q1, q3 = model.quantile(0.25), model.quantile(0.75)
    low, high = _minutes(q1), _minutes(q3)
    if q1 > 0 and q3 / q1 > WIDE_SPREAD and low < high:
        if high < 60:
            return f"usually ready in {low}–{high} min"
        return f"usually ready in {_say(low)} to {_say(high)}"
    return f"usually ready in about {_say(_minutes(median))}"


class EtaBook:
    """Recent completion times per (provider, model), for the status message's ETA.

    Seeded at start from the store (``recent_completions``), then fed with each video
    delivered; before a model has enough of its own, the
    provider's model (the poller's, seeded from the store) stands in only when the
    provider has a single model, so the figure is never borrowed from another model.
    """

    def __init__(self, min_samples: int = 30, capacity: int = 256) -> None:
        self._capacity = capacity
        self._min_samples = min_samples
        self._models: dict[tuple[str, str], CompletionModel] = {}

    def seed(self, provider: str, completions: list[tuple[str | None, float]]) -> None:
        """Start from the store's recent (model, seconds) of this provider's videos."""
        for model, seconds in completions:
            self._model(provider, model).observe(seconds)

    def _model(self, provider: str, model: str | None) -> CompletionModel:
        key = (provider, str(model or ""))
        found = self._models.get(key)
        if found is None:
            found = self._models[key] = CompletionModel(
                capacity=self._capacity, min_samples=self._min_samples
            )
        return found

    def observe(self, task: TaskRow) -> None:
        video = video_request(task)  # only videos: a training's time says nothing here
        if video is None or task.state != "succeeded" or task.finished_at is None:
            return
        started = task.submitted_at or task.created_at
        self._model(task.provider, video.model).observe(task.finished_at - started)

    def model_for(
        self,
        task: TaskRow,
        *,
        provider_model: CompletionModel | None = None,
        single_model: bool = False,
    ) -> CompletionModel | None:
        video = video_request(task)
        model = video.model if video is not None else None
        own = self._models.get((task.provider, str(model or "")))
        if own is not None and own.ready:
            return own
        if single_model and provider_model is not None and provider_model.ready:
            return provider_model
        return None

    def text_for(
        self,
        task: TaskRow,
        *,
        provider_model: CompletionModel | None = None,
        single_model: bool = False,
    ) -> str | None:
        return eta_text(
            self.model_for(task, provider_model=provider_model, single_model=single_model)
        )
