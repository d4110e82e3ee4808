"""The web sandbox in a real headless browser (Debian's Chromium through Playwright).

The page is driven like a visitor would: pick alice, submit /animate from the form
built from the bot's synced commands, watch the status message change live and the
video play, run it again (🔁 on the final message, until the buttons land), and see
bob's 🔁 refused. A screenshot of the final page is saved as a test artifact
(``REELBOT_TEST_ARTIFACTS``, default ``test-artifacts/``); with
``REELBOT_UPDATE_SCREENSHOT=1`` it also replaces the README's ``docs/sandbox.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from doubles.harness import World, build_world
from doubles.sandbox.run import SANDBOX_ENV as RUN_ENV
from doubles.sandbox.web import Sandbox, WebApp
from tests.helpers import all_tasks

pytestmark = [pytest.mark.timeout(120), pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("REELBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The sandbox's own failover settings (doubles/sandbox/run.py), faster polls.
SANDBOX_ENV = {
    **RUN_ENV,
    "POLL_INTERVAL_SECONDS": "0.2",
    "POLL_MAX_INTERVAL_SECONDS": "0.5",
}


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """A headless Chromium context; skipped, saying why, only where none can start
    (a failure instead under ``REELBOT_REQUIRE_BROWSER=1``, as in CI)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # pragma: no cover - playwright is in the test extra
        pytest.skip(f"no browser: playwright is not installed ({exc})")
    async with async_playwright() as pw:
        try:
            context = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 900},
            )
        except Exception as exc:
            reason = f"no browser can start here ({CHROMIUM}): {str(exc).splitlines()[0]}"
            if os.environ.get("REELBOT_REQUIRE_BROWSER") == "1":  # .ci/run installs one
                pytest.fail(reason)
            pytest.skip(reason)
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, str]]:
    async def build() -> World:
        return await build_world(tmp_path / "world", env=SANDBOX_ENV)

    box = Sandbox(build)
    web = WebApp(box)
    url = await web.start()
    await box.start()
    try:
        yield box, url
    finally:
        await web.close()
        await box.close()


def videos_delivered(world: World) -> list[Any]:
    """The bot's video messages, in every thread of #videos, oldest first."""
    found = []
    for thread in world.discord.threads(world.channel_id):
        for message in world.discord.messages(thread.id):
            if message.author_id == world.discord.bot_user_id and any(
                a.filename.endswith(".mp4") for a in message.attachments
            ):
                found.append(message)
    return sorted(found, key=lambda m: m.id)


PLAYABLE = """n => Array.from(document.querySelectorAll('#messages video'))
    .filter(v => v.readyState >= 1 && v.currentSrc).length >= n"""


async def test_a_visitor_uses_the_bot_end_to_end_in_the_browser(
    browser: Any, sandbox: tuple[Sandbox, str]
) -> None:
    box, url = sandbox
    world = box.world
    assert world is not None and url.startswith("http://127.0.0.1:")
    alice, bob = str(world.users["alice"]), str(world.users["bob"])
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    await page.goto(url)
    await page.wait_for_selector("text=● live")
    # The form is built from what the bot synced: /animate and its options are there.
    await page.wait_for_selector("#command option[value=animate]", state="attached")
    await page.select_option("#as-user", alice)
    await page.select_option("#command", "animate")
    await page.wait_for_selector("input[name=prompt]")
    await page.wait_for_selector("select[name=provider] option[value=hiapi]", state="attached")

    # Untrusted text is rendered as text: markdown, mentions and timestamps become nodes.
    hostile = f'<img src=x onerror="window.pwned=1"> **hi** <@{alice}> <t:1700000000:R>'
    await page.fill("#say-text", hostile)
    await page.click("#say button[type=submit]")
    said = page.locator("#messages .msg", has_text="onerror")
    await said.wait_for()
    assert await said.locator("img").count() == 0
    assert await said.locator("strong", has_text="hi").count() == 1
    assert await said.locator(".mention", has_text="@alice").count() == 1
    assert "ago" in await said.locator(".timestamp").inner_text()
    assert await page.evaluate("() => window.pwned") is None

    await page.fill("input[name=prompt]", "a paper boat on a **rainy** street")
    await page.select_option("select[name=provider]", "hiapi")
    await page.click("#send")

    # The bot opened a thread; open it from the card under the command's answer.
    card = page.locator(".thread-card").first
    await card.wait_for(timeout=15_000)
    await card.click()
    status = page.locator("#messages .msg").first
    await status.wait_for()
    # Live: the status message is seen in progress, then done, without a reload.
    await page.wait_for_function(
        """() => { const m = document.querySelector('#messages .msg');
                   return m && /State:/.test(m.innerText) && !/Done/.test(m.innerText); }""",
        timeout=15_000,
    )
    await page.wait_for_function(
        "() => /✅ Done/.test(document.querySelector('#messages .msg').innerText)",
        timeout=30_000,
    )
    assert await status.locator("strong", has_text="rainy").count() == 1  # markdown, as nodes
    await page.wait_for_function(PLAYABLE, arg=1, timeout=30_000)
    [first] = videos_delivered(world)
    final = page.locator(f'[data-message-id="{first.id}"]')
    await final.locator(".reaction[data-emoji='🔁']").wait_for()

    # A stranger's 🔁 is refused: the bot takes bob's reaction away and runs nothing.
    await page.select_option("#as-user", bob)
    await final.hover()
    await final.locator("[data-add-emoji='🔁']").click()
    removed = f"/reactions/🔁/{bob}"  # the request log has paths decoded
    await world.discord.wait_for(
        lambda: any(m == "DELETE" and removed in p for m, p, _ in world.discord.request_log),
        timeout=10,
        description="the bot removing bob's 🔁",
    )
    await page.wait_for_function(
        """([id, bob]) => { const r = document.querySelector(
                `[data-message-id="${id}"] .reaction[data-emoji="🔁"]`);
            return r && r.textContent.trim().endsWith(' 1') && !r.title.includes('bob'); }""",
        arg=[str(first.id), bob],
    )
    assert len(videos_delivered(world)) == 1
    assert "bob" not in (await final.locator(".reaction[data-emoji='🔁']").get_attribute("title"))

    # Run again (alice's 🔁 on the final message; the buttons: see the action bar test).
    await page.select_option("#as-user", alice)
    await final.hover()
    await final.locator("[data-add-emoji='🔁']").click()
    await world.discord.wait_for(lambda: len(videos_delivered(world)) == 2, timeout=40)
    second = videos_delivered(world)[1]
    if second.channel_id != first.channel_id:
        await page.click(f'#channels [data-channel="{second.channel_id}"]')
        await page.wait_for_function(PLAYABLE, arg=1, timeout=20_000)
    else:
        await page.wait_for_function(PLAYABLE, arg=2, timeout=20_000)
    await page.locator(f'[data-message-id="{second.id}"] video').wait_for()
    src = await page.locator(f'[data-message-id="{second.id}"] video').get_attribute("src")
    assert src and src.startswith(world.discord.base_url)

    # The same through the action bar: bob's press of Run again is refused (privately,
    # and nothing runs); alice's press makes a third video.
    [_, second_task] = [t.id for t in sorted(await all_tasks(world), key=lambda t: t.id)]
    again = page.locator(f"button[data-custom-id='reelbot:again:{second_task}']")
    await page.select_option("#as-user", bob)
    await again.click()
    refusal = page.locator("#messages .msg.ephemeral", has_text="who asked for task")
    await refusal.wait_for(timeout=10_000)
    assert len(await all_tasks(world)) == 2
    await page.select_option("#as-user", alice)
    await again.click()
    await world.discord.wait_for(lambda: len(videos_delivered(world)) == 3, timeout=40)
    third = videos_delivered(world)[2]
    await page.locator(f'[data-message-id="{third.id}"] video').wait_for(timeout=20_000)
    here = sum(1 for v in videos_delivered(world) if v.channel_id == third.channel_id)
    await page.wait_for_function(PLAYABLE, arg=here, timeout=20_000)

    assert errors == []
    shot = artifacts() / "sandbox.png"
    await page.screenshot(path=str(shot))
    print(f"screenshot of the sandbox page: {shot}")
    if os.environ.get("REELBOT_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "sandbox.png")


def artifacts() -> Path:
    where = Path(os.environ.get("REELBOT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    where.mkdir(parents=True, exist_ok=True)
    return where


# --- the web app without a browser: its actions, checks and snapshots -------------------------


async def post(url: str, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "api/act", json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_other_origins_and_host_names_are_refused(sandbox: tuple[Sandbox, str]) -> None:
    box, url = sandbox
    assert box.world is not None
    alice = str(box.world.users["alice"])
    body = {"action": "invoke", "user_id": alice, "command": "jobs"}
    status, _ = await post(url, body, Origin="http://evil.example")
    assert status == 403
    status, _ = await post(url, body, Host="rebound.example")  # DNS rebinding
    assert status == 403
    assert not [ix for ix in box.world.discord.interactions if ix.command_name == "jobs"]
    status, answer = await post(url, {**body, "user_id": "1"})
    assert status == 400 and "members" in answer["error"]


async def test_provider_behaviours_ephemeral_answers_and_reset(
    sandbox: tuple[Sandbox, str],
) -> None:
    box, url = sandbox
    world = box.world
    assert world is not None
    alice, bob = str(world.users["alice"]), str(world.users["bob"])

    status, _ = await post(url, {"action": "provider", "provider": "foxapi", "behaviour": "x"})
    assert status == 400
    status, _ = await post(
        url, {"action": "provider", "provider": "foxapi", "behaviour": "out_of_credits"}
    )
    assert status == 200 and box.snapshot()["providers"]["foxapi"] == "out_of_credits"
    status, answer = await post(
        url,
        {
            "action": "invoke",
            "user_id": alice,
            "command": "animate",
            "options": {"prompt": "a fox in the snow", "provider": "foxapi"},
        },
    )
    assert status == 200
    ix = next(i for i in world.discord.interactions if str(i.id) == answer["interaction_id"])
    await world.discord.wait_for(
        lambda: any("out of credits" in m.content for m in world.discord._state.messages.values()),
        timeout=20,
        description="the out-of-credits error",
    )

    # /jobs answers alice alone: the page shows an ephemeral message to its member only.
    status, answer = await post(url, {"action": "invoke", "user_id": alice, "command": "jobs"})
    jobs = next(i for i in world.discord.interactions if str(i.id) == answer["interaction_id"])
    await jobs.wait_for_response(timeout=10)
    await world.discord.wait_for(lambda: jobs.response_content, timeout=10)
    shown = box.snapshot()["messages"][str(world.channel_id)]
    private = [m for m in shown if m.get("visible_to")]
    assert private and all(m["visible_to"] == alice for m in private)
    assert bob not in {m.get("visible_to") for m in shown}
    assert ix.user_id == world.users["alice"]

    # A moderator's command with a user option: ids travel as strings from the page.
    mod = str(world.users["mod"])
    status, answer = await post(
        url,
        {
            "action": "invoke",
            "user_id": mod,
            "command": "quota set",
            "options": {"user": bob, "limit": 3},
        },
    )
    assert status == 200, answer
    quota = next(i for i in world.discord.interactions if str(i.id) == answer["interaction_id"])
    assert "3" in await quota.wait_for_content("3", timeout=10)

    # Autocomplete goes to the bot and comes back.
    status, answer = await post(
        url,
        {
            "action": "autocomplete",
            "user_id": alice,
            "command": "animate",
            "focused": "model",
            "options": {"prompt": "x", "provider": "hiapi", "model": ""},
        },
    )
    assert status == 200 and answer["choices"], answer

    status, _ = await post(url, {"action": "reset"})
    assert status == 200
    fresh = box.world
    assert fresh is not None and fresh is not world and box.generation == 2
    snap = box.snapshot()
    assert snap["messages"][str(fresh.channel_id)] == []
    assert set(snap["providers"].values()) == {"normal"}
    assert any(c["name"] == "animate" for c in snap["commands"])


async def test_buttons_containers_galleries_and_modals_go_through_the_double(
    browser: Any, sandbox: tuple[Sandbox, str]
) -> None:
    """Components Reelbot does not send (a Components V2 message, a modal answer) are
    played over the double's REST as the bot's side; the visitor's side in the page."""
    import aiohttp

    box, url = sandbox
    world = box.world
    assert world is not None
    alice = str(world.users["alice"])
    api = world.discord.api_base
    auth = {"Authorization": f"Bot {world.discord.token}"}
    message = {
        "flags": 1 << 15,  # IS_COMPONENTS_V2
        "components": [
            {
                "type": 17,
                "accent_color": 0x5865F2,
                "components": [
                    {"type": 10, "content": "**Your video** is ready"},
                    {"type": 12, "items": [{"media": {"url": "attachment://frame.png"}}]},
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "Vary", "custom_id": "vary:1"}
                        ],
                    },
                ],
            }
        ],
        "attachments": [{"id": 0, "filename": "frame.png"}],
    }
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(message), content_type="application/json")
    png = (ROOT / "doubles" / "media" / "input.png").read_bytes()
    form.add_field("files[0]", png, filename="frame.png", content_type="image/png")
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(f"{api}/channels/{world.channel_id}/messages", data=form) as r:
            assert r.status == 200, await r.text()
            sent = await r.json()

        page = await browser.new_page()
        await page.goto(url)
        await page.select_option("#as-user", alice)
        posted = page.locator(f'[data-message-id="{sent["id"]}"]')
        await posted.locator(".container strong", has_text="Your video").wait_for()
        await page.wait_for_function(
            """id => { const img = document.querySelector(
                `[data-message-id="${id}"] .gallery img`);
                return img && img.complete && img.naturalWidth > 0; }""",
            arg=sent["id"],
        )
        await posted.locator("button[data-custom-id='vary:1']").click()
        click = await world.discord.wait_for(
            lambda: next((i for i in world.discord.interactions if i.type == 3), None),
            timeout=10,
        )
        assert click.payload["data"] == {"custom_id": "vary:1", "component_type": 2}
        assert click.user_id == world.users["alice"]

        modal = {
            "type": 9,
            "data": {
                "custom_id": "vary-modal",
                "title": "Vary the prompt",
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {
                                "type": 4,
                                "custom_id": "prompt",
                                "label": "Prompt",
                                "style": 2,
                                "value": "a cat",
                            }
                        ],
                    }
                ],
            },
        }
        callback = f"{api}/interactions/{click.id}/{click.token}/callback"
        async with session.post(callback, json=modal) as r:
            assert r.status in (200, 204), await r.text()

    await page.locator(".modal textarea[name=prompt]").fill("a cat, at night")
    await page.click(".modal .submit")
    submit = await world.discord.wait_for(
        lambda: next((i for i in world.discord.interactions if i.type == 5), None), timeout=10
    )
    assert submit.payload["data"]["custom_id"] == "vary-modal"
    [row] = submit.payload["data"]["components"]
    assert row["components"] == [{"type": 4, "custom_id": "prompt", "value": "a cat, at night"}]
    await page.wait_for_selector(".modal", state="detached")


async def test_a_stopped_provider_fails_over_in_the_sandbox(sandbox: tuple[Sandbox, str]) -> None:
    """The operator's story (issue 16): stop hiapi's double in the controls, keep asking
    without a provider, and the videos arrive from foxapi; /providers says why."""
    box, url = sandbox
    world = box.world
    assert world is not None
    alice = str(world.users["alice"])
    status, _ = await post(url, {"action": "provider", "provider": "hiapi", "behaviour": "stopped"})
    assert status == 200 and box.snapshot()["providers"]["hiapi"] == "stopped"
    status, _ = await post(
        url,
        {
            "action": "invoke",
            "user_id": alice,
            "command": "animate",
            "options": {"prompt": "a lighthouse in a storm"},
        },
    )
    assert status == 200
    await world.discord.wait_for(
        lambda: videos_delivered(world), timeout=30, description="a video from foxapi"
    )
    notes = [
        m.content
        for m in world.discord._state.messages.values()
        if "hiapi is unavailable: sent to foxapi" in m.content
    ]
    assert notes, "the status message says where the request went"
    assert world.providers["hiapi"].created_ids() == []
    assert len(world.providers["foxapi"].created_ids()) == 1
    status, answer = await post(url, {"action": "invoke", "user_id": alice, "command": "providers"})
    shown = next(i for i in world.discord.interactions if str(i.id) == answer["interaction_id"])
    text = await shown.wait_for_content("hiapi", timeout=10)
    assert "degraded" in text or "down since" in text, text
    # Back to normal: the double listens again on its old address.
    status, _ = await post(url, {"action": "provider", "provider": "hiapi", "behaviour": "normal"})
    assert status == 200 and world.providers["hiapi"]._runner is not None


async def test_the_action_bar_and_the_animate_context_menu_in_the_browser(
    browser: Any, sandbox: tuple[Sandbox, str]
) -> None:
    """Reelbot's own buttons, modals and message command, driven from the page."""
    from doubles.harness import input_png
    from tests.helpers import final_message, started

    box, url = sandbox
    world = box.world
    assert world is not None
    alice = str(world.users["alice"])
    thread_id, task_id = await started(
        world, await world.animate("alice", prompt="a paper boat", provider="gptge")
    )
    await final_message(world, thread_id, task_id, timeout=30)

    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await page.select_option("#as-user", alice)
    await page.click(f'#channels [data-channel="{thread_id}"]')
    again = page.locator(f"button[data-custom-id='reelbot:again:{task_id}']")
    await again.wait_for()
    remix = page.locator(f"button[data-custom-id='reelbot:remix:{task_id}']")
    await remix.click()
    await page.wait_for_selector(".modal textarea[name=prompt]")
    assert await page.locator(".modal textarea[name=prompt]").input_value() == "a paper boat"
    await page.locator(".modal textarea[name=prompt]").fill("a paper boat at night")
    await page.click(".modal .submit")
    await final_message(world, thread_id, task_id + 1, timeout=30)
    remixed = await world.bot.store.get_task(task_id + 1)
    assert remixed is not None and remixed.request["prompt"] == "a paper boat at night"

    # Apps ▸ Animate on a member's picture in #videos.
    posted = await world.discord.post_user_message(
        world.channel_id, world.users["bob"], "my cat", [("cat.png", input_png(), "image/png")]
    )
    await page.click(f'#channels [data-channel="{world.channel_id}"]')
    message = page.locator(f'[data-message-id="{posted}"]')
    await message.hover()
    await message.locator("[data-message-command='Animate']").click()
    await page.wait_for_selector(".modal textarea[name=prompt]")
    await page.locator(".modal textarea[name=prompt]").fill("the cat waves")
    await page.locator(".modal input[name=provider]").fill("hiapi")
    await page.click(".modal .submit")
    submitted = await world.discord.wait_for(
        lambda: next(
            (
                i
                for i in world.discord.interactions
                if i.type == 5 and "animate-modal" in i.payload["data"]["custom_id"]
            ),
            None,
        ),
        timeout=10,
    )
    thread2, made = await started(world, submitted)
    await final_message(world, thread2, made, timeout=30)
    assert errors == []
