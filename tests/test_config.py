"""Configuration: defaults, validation, and the one clear line on bad config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reelbot.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_follow_the_spec() -> None:
    config = load_config({"DISCORD_TOKEN": "t"})
    assert config.discord_api_base == "https://discord.com/api/v10"
    assert config.database_url == "sqlite:///data/reelbot.db"
    assert config.sqlite_path == "data/reelbot.db"
    assert (config.poll_interval, config.poll_max_interval) == (5.0, 60.0)
    assert (config.task_timeout, config.daily_quota) == (3600.0, 10)
    assert config.allow_local_urls is False and config.log_level == "INFO"
    assert config.providers == () and config.default_provider is None


def test_providers_need_a_key_and_the_first_configured_is_default() -> None:
    config = load_config(
        {
            "DISCORD_TOKEN": "t",
            "GPTGE_API_KEY": "k1",
            "HIAPI_API_KEY": "k2",
            "HIAPI_BASE_URL": "http://127.0.0.1:9/",
        }
    )
    assert config.provider_ids == ("hiapi", "gptge")
    assert config.default_provider == "hiapi"
    assert config.providers[0].base_url == "http://127.0.0.1:9"
    assert config.providers[1].base_url == "https://api.gpt.ge"
    assert "k1" not in repr(config) and "k2" not in repr(config)


def test_absolute_sqlite_url() -> None:
    config = load_config({"DISCORD_TOKEN": "t", "DATABASE_URL": "sqlite:////var/lib/rb.db"})
    assert config.sqlite_path == "/var/lib/rb.db"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "DISCORD_TOKEN"),
        ({"POLL_INTERVAL_SECONDS": "soon"}, "POLL_INTERVAL_SECONDS"),
        (
            {"POLL_INTERVAL_SECONDS": "30", "POLL_MAX_INTERVAL_SECONDS": "10"},
            "POLL_MAX_INTERVAL_SECONDS",
        ),
        ({"DAILY_QUOTA": "-1"}, "DAILY_QUOTA"),
        ({"MODERATOR_ROLE_IDS": "12,mods"}, "MODERATOR_ROLE_IDS"),
        ({"ALLOW_LOCAL_URLS": "maybe"}, "ALLOW_LOCAL_URLS"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DEFAULT_PROVIDER": "sora"}, "DEFAULT_PROVIDER"),
        ({"DEFAULT_PROVIDER": "hiapi"}, "HIAPI_API_KEY"),
        ({"HIGGSFIELD_FEED_API_KEY": "k"}, "HIGGSFIELD_FEED_BASE_URL"),
        ({"HIAPI_API_KEY": "k", "HIAPI_BASE_URL": "ftp://x"}, "HIAPI_BASE_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DISCORD_API_BASE": "discord.com"}, "DISCORD_API_BASE"),
    ],
)
def test_invalid_configuration_names_the_variable(env: dict[str, str], names: str) -> None:
    full = {"DISCORD_TOKEN": "t", **env} if names != "DISCORD_TOKEN" else env
    with pytest.raises(ConfigError, match=names):
        load_config(full)


def test_bot_without_token_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "TOKEN"))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "DISCORD_TOKEN" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("url", ["postgresql://rb:pw@db:5432/reelbot", "postgres://db/reelbot"])
def test_postgres_urls_are_accepted(url: str) -> None:
    config = load_config({"DISCORD_TOKEN": "t", "DATABASE_URL": url})
    assert config.database_url == url
    assert config.sqlite_path is None


def test_a_bad_database_url_names_both_backends_but_not_its_secrets() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"DISCORD_TOKEN": "t", "DATABASE_URL": "mysql://rb:hunter2@db/reelbot"})
    assert "sqlite:///" in str(info.value) and "postgresql://" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://reel:s3cr%23t@db:5432/reelbot", "postgresql://reel:***@db:5432/reelbot"),
        (
            "postgres://reel:s3cr%23t@db/reelbot?sslmode=require",
            "postgres://reel:***@db/reelbot?sslmode=require",
        ),
        (
            "postgresql://reel@db/reelbot?password=s3cr%23t&sslmode=require",
            "postgresql://reel@db/reelbot?password=***&sslmode=require",
        ),
    ],
)
def test_no_database_password_in_the_config_repr(url: str, shown: str) -> None:
    config = load_config({"DISCORD_TOKEN": "tok-en", "DATABASE_URL": url})
    assert config.database_url == url  # the store still gets the real URL
    for text in (repr(config), str(config), f"{config}"):
        assert "s3cr" not in text and "tok-en" not in text
        assert shown in text


def test_no_credentials_of_a_provider_base_url_in_the_config_repr() -> None:
    config = load_config(
        {
            "DISCORD_TOKEN": "t",
            "HIAPI_API_KEY": "key-1",
            "HIAPI_BASE_URL": "https://user:pa55@proxy.example/hiapi",
        }
    )
    text = repr(config)
    assert "pa55" not in text and "key-1" not in text
    assert "https://user:***@proxy.example/hiapi" in text


def test_a_bad_base_url_error_does_not_echo_its_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "DISCORD_TOKEN": "t",
                "HIAPI_API_KEY": "k",
                "HIAPI_BASE_URL": "ftp://u:hunter2@h/x",
            }
        )
    assert "HIAPI_BASE_URL" in str(info.value) and "hunter2" not in str(info.value)
