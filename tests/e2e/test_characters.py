"""Characters end to end: photos in a thread → Soul ID training → /animate with that person."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from doubles.harness import World
from doubles.providers import Step
from tests.helpers import TIMEOUT, bot_messages, refused, started, video_lands

pytestmark = pytest.mark.timeout(90)


def png(seed: int) -> bytes:
    """A distinct, valid 2×2 PNG per seed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    pixel = bytes([seed % 256, (seed * 7) % 256, (seed * 13) % 256])
    raw = b"".join(b"\x00" + pixel * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def create(world: World, user: str, name: str) -> int:
    ix = await world.command("character create", user, name=name)
    text = await ix.wait_for_content("Post 20", timeout=TIMEOUT)
    assert ix.ephemeral
    thread_id = int(text.split("<#")[1].split(">")[0])
    return thread_id


async def post_photos(world: World, thread_id: int, user: str, photos: list[bytes]) -> None:
    """Several messages, up to 10 files each, like a member would post them."""
    for start in range(0, len(photos), 7):
        batch = photos[start : start + 7]
        before = len(bot_messages(world, thread_id))
        await world.discord.post_user_message(
            thread_id,
            world.users[user],
            "",
            attachments=[(f"p{start + i}.png", data, "image/png") for i, data in enumerate(batch)],
        )
        await world.discord.wait_for(lambda b=before: len(bot_messages(world, thread_id)) > b)


async def train_until_ready(world: World, user: str, name: str, thread_id: int) -> None:
    ix = await world.command("character train", user, name=name)
    await ix.wait_for_content("Training", timeout=TIMEOUT)
    await world.discord.wait_for(
        lambda: any("is ready" in m.content for m in bot_messages(world, thread_id)),
        timeout=TIMEOUT,
        description=f"character {name} ready",
    )


async def test_photos_to_training_to_a_video_with_that_person(world: World) -> None:
    thread_id = await create(world, "alice", "Ava")
    await post_photos(world, thread_id, "alice", [png(i) for i in range(20)])
    panel = bot_messages(world, thread_id)[0]
    assert "**20**" in panel.content and "Ready to train" in panel.content

    await train_until_ready(world, "alice", "Ava", thread_id)
    double = world.providers["higgsfield"]
    [training] = double.trainings.values()
    assert training.name == "Ava" and len(training.images) == 20
    # The provider gets the photos' Discord URLs, one per distinct photo.
    assert len(set(training.images)) == 20

    ix = await world.animate("alice", prompt="Ava waves at the camera", character="Ava")
    thread2, task_id = await started(world, ix)
    await video_lands(world, thread2, task_id)
    submission = double.submissions[-1]["json"]
    [character] = await world.bot.store.guild_characters(world.guild_id)
    assert character.state == "ready" and character.provider_model_id == training.id
    assert submission["model_id"] == training.id


async def test_too_few_photos_and_wrong_types_are_refused(world: World) -> None:
    thread_id = await create(world, "alice", "Bo")
    await world.discord.post_user_message(
        thread_id,
        world.users["alice"],
        "",
        attachments=[
            ("notes.txt", b"hello", "text/plain"),
            ("a.png", png(1), "image/png"),
            ("dup.png", png(1), "image/png"),
        ],
    )
    reply = await world.discord.wait_for(
        lambda: next((m for m in bot_messages(world, thread_id) if "Got " in m.content), None)
    )
    assert "1 new photo" in reply.content and "duplicate" in reply.content
    assert "notes.txt" in reply.content
    await refused(
        await world.command("character train", "alice", name="Bo"), "has 1 photo", "at least 20"
    )
    assert not [r for r in world.providers["higgsfield"].requests if "soul" in r[1]]


async def test_a_zip_of_photos_is_accepted(world: World) -> None:
    thread_id = await create(world, "alice", "Zed")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i in range(20):
            archive.writestr(f"photos/{i}.png", png(100 + i))
        archive.writestr("readme.txt", "not a photo")
    await world.discord.post_user_message(
        thread_id,
        world.users["alice"],
        "",
        attachments=[("photos.zip", buf.getvalue(), "application/zip")],
    )
    reply = await world.discord.wait_for(
        lambda: next((m for m in bot_messages(world, thread_id) if "Got " in m.content), None)
    )
    assert "20 new photo" in reply.content and "readme.txt" in reply.content
    await train_until_ready(world, "alice", "Zed", thread_id)


async def test_strangers_cannot_use_or_delete_until_shared(world: World) -> None:
    thread_id = await create(world, "alice", "Cy")
    await post_photos(world, thread_id, "alice", [png(200 + i) for i in range(20)])
    await train_until_ready(world, "alice", "Cy", thread_id)

    await refused(
        await world.animate("bob", prompt="Cy dances", character="Cy"), "no character called"
    )
    await refused(await world.command("character delete", "bob", name="Cy"), "no character called")
    await refused(await world.command("character share", "bob", name="Cy"), "only moderators")

    await refused(await world.command("character share", "mod", name="Cy"), "everyone here")
    ix = await world.animate("bob", prompt="Cy dances", character="Cy")
    thread2, task_id = await started(world, ix)
    await video_lands(world, thread2, task_id)
    listed = await refused(await world.command("character list", "bob"), "Cy")
    assert "shared" in listed


async def test_a_character_only_works_on_its_provider(world: World) -> None:
    thread_id = await create(world, "alice", "Dee")
    await post_photos(world, thread_id, "alice", [png(300 + i) for i in range(20)])
    await train_until_ready(world, "alice", "Dee", thread_id)
    await refused(
        await world.animate("alice", prompt="x", character="Dee", provider="hiapi"),
        "trained on `higgsfield`",
    )


async def test_training_survives_a_restart(world: World) -> None:
    double = world.providers["higgsfield"]
    double.script_next_training([Step.queued(), Step.running(polls=3), Step.succeed()])
    thread_id = await create(world, "alice", "Eve")
    await post_photos(world, thread_id, "alice", [png(400 + i) for i in range(20)])
    ix = await world.command("character train", "alice", name="Eve")
    await ix.wait_for_content("Training", timeout=TIMEOUT)
    await world.discord.wait_for(lambda: any(r[1].endswith("/soul/train") for r in double.requests))
    await world.stop_bot()
    await world.start_bot()
    await world.discord.wait_for(
        lambda: any("is ready" in m.content for m in bot_messages(world, thread_id)),
        timeout=TIMEOUT,
    )
    assert len([r for r in double.requests if r[1].endswith("/soul/train")]) == 1


async def test_delete_removes_photos_and_the_provider_model(world: World, tmp_path: Path) -> None:
    thread_id = await create(world, "alice", "Fin")
    await post_photos(world, thread_id, "alice", [png(500 + i) for i in range(20)])
    await train_until_ready(world, "alice", "Fin", thread_id)
    [character] = await world.bot.store.guild_characters(world.guild_id)
    photo_dir = world.data_dir / "characters" / str(character.id)
    assert len(list(photo_dir.iterdir())) == 20
    ix = await world.command("character delete", "alice", name="Fin")
    text = await ix.wait_for_content("Deleted", timeout=TIMEOUT)
    assert "provider's model" in text
    assert not photo_dir.exists()
    assert await world.bot.store.guild_characters(world.guild_id) == []
    assert await world.bot.store.character_images(character.id) == []
    assert any(
        r[0] == "DELETE" and "/soul/models/" in r[1] for r in world.providers["higgsfield"].requests
    )


async def test_a_share_and_a_moderator_s_delete_are_audited_an_owner_s_own_is_not(
    world: World,
) -> None:
    await create(world, "alice", "Gus")
    await create(world, "alice", "Hal")

    async def offered(command: str, user: str) -> list[str]:
        found = await world.discord.autocomplete(
            command,
            focused="name",
            guild_id=world.guild_id,
            channel_id=world.channel_id,
            user_id=world.users[user],
            options={"name": "g"},
        )
        return [c["name"] for c in found]

    # Moderators are offered anyone's character to share; members only their own.
    assert await offered("character share", "mod") == ["Gus (collecting)"]
    assert await offered("character share", "bob") == []
    assert await offered("character train", "alice") == ["Gus (collecting)"]
    await refused(await world.command("character share", "mod", name="Gus"), "everyone here")
    assert await offered("character delete", "bob") == []  # shared is not bob's to delete
    ix = await world.command("character delete", "alice", name="Hal")
    await ix.wait_for_content("Deleted", timeout=TIMEOUT)
    ix = await world.command("character delete", "mod", name="Gus")
    await ix.wait_for_content("Deleted", timeout=TIMEOUT)
    assert await world.bot.store.guild_characters(world.guild_id) == []
    entries = await world.bot.store.audit_entries(world.guild_id)
    mod, alice = world.users["mod"], world.users["alice"]
    assert [(e["action"], e["actor_id"], e["target_id"]) for e in entries] == [
        ("character_delete", mod, alice),
        ("character_share", mod, alice),
    ]
    assert all(e["details"].startswith("character #") for e in entries)


async def test_no_thread_means_no_character(world: World) -> None:
    # Nobody could post photos for a character without its thread: none is left behind.
    world.discord.fail_next("POST", r"/channels/\d+/threads$", status=403)
    ix = await world.command("character create", "alice", name="Ivy")
    await refused(ix, "can't open a thread")
    assert await world.bot.store.guild_characters(world.guild_id) == []
    await create(world, "alice", "Ivy")  # the name is free again
