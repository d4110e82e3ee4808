"""Typed configuration read once from the environment (SPEC §2), validated at start.

A problem is reported as :class:`ConfigError` whose message is the one line the
operator sees: the variable, what is wrong, and what to do.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from providers import PROVIDER_IDS, provider_class

DEFAULT_API_BASE = "https://discord.com/api/v10"


class ConfigError(Exception):
    """Invalid or missing configuration; ``str(exc)`` is the operator-facing line."""


_SECRET_QUERY = re.compile(r"(?i)((?:^|&)(?:password|passwd|pass|secret|token|key)=)[^&]*")


def redact_url(url: str) -> str:
    """``url`` without its secrets (a userinfo password, ``password=`` in the query),
    for reprs and logs: ``postgresql://reel:***@db/reelbot``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _safe_repr(obj: object, urls: tuple[str, ...]) -> str:
    """A dataclass repr with secret fields left out and URL fields redacted."""
    shown = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        if f.name in urls and isinstance(value, str):
            value = redact_url(value)
        shown.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


@dataclass(frozen=True, slots=True, repr=False)
class ProviderConfig:
    id: str
    api_key: str = field(repr=False)
    base_url: str

    def __repr__(self) -> str:
        return _safe_repr(self, ("base_url",))


@dataclass(frozen=True, slots=True, repr=False)
class Config:
    discord_token: str = field(repr=False)
    discord_api_base: str = DEFAULT_API_BASE
    guild_ids: tuple[int, ...] = ()
    database_url: str = "sqlite:///data/reelbot.db"
    providers: tuple[ProviderConfig, ...] = ()
    default_provider: str | None = None
    poll_interval: float = 5.0
    poll_max_interval: float = 60.0
    task_timeout: float = 3600.0
    # How long a worker's claim on a task lasts without renewal: a crashed worker's
    # tasks wait at most this long before another worker takes them over.
    task_lease: float = 120.0
    daily_quota: int = 10
    moderator_role_ids: frozenset[int] = frozenset()
    allow_local_urls: bool = False
    log_level: str = "INFO"
    # Abuse limits (issue 4): seconds between one user's submissions, and how many
    # of one user's tasks may be in flight at once (0 = no limit).
    user_cooldown: float = 10.0
    max_user_in_flight: int = 3
    max_download_bytes: int = 512 * 1024 * 1024
    # A character training costs more than one video; it takes this many quota units.
    character_training_weight: int = 5
    data_dir: Path = Path("data")
    # First-frame images no task created within this many days uses are removed from
    # DATA_DIR/inputs (🔁 on such an old task then asks for a new /animate).
    input_retention_days: int = 30
    log_format: str = "text"  # text | json
    health_port: int = 0  # 0 = no health endpoint
    health_host: str = "127.0.0.1"
    # Provider callbacks (SPEC §6): empty public_base_url = polling only.
    public_base_url: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8088
    hiapi_webhook_secret: str = field(default="", repr=False)
    # Failover (SPEC §4): where a request that named no provider goes when its own
    # cannot take it, in order; empty = no failover. The first cool-off of a provider
    # that went down (it doubles while the provider stays down).
    failover_providers: tuple[str, ...] = ()
    provider_cooloff: float = 30.0

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.public_base_url)

    def __repr__(self) -> str:
        # A PostgreSQL DATABASE_URL may carry a password; the token is never shown.
        return _safe_repr(self, ("database_url", "discord_api_base"))

    @property
    def provider_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.providers)

    @property
    def sqlite_path(self) -> str | None:
        """The database file, or None when DATABASE_URL is a PostgreSQL URL."""
        if database_backend(self.database_url) != "sqlite":
            return None
        return sqlite_path_from_url(self.database_url)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL_FORMS = "sqlite:///<file> or postgresql://<user>@<host>/<database>"


def database_backend(url: str) -> str:
    """``sqlite`` or ``postgres`` for a valid DATABASE_URL; ConfigError otherwise."""
    if url.startswith(POSTGRES_SCHEMES):
        # The rest is libpq's URL syntax (several hosts, socket dirs, query options):
        # asyncpg parses it when the store opens and names what is wrong.
        return "postgres"
    sqlite_path_from_url(url)
    return "sqlite"


def sqlite_path_from_url(url: str) -> str:
    """``sqlite:///rel/path`` → ``rel/path``; ``sqlite:////abs/path`` → ``/abs/path``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        # Only the scheme is echoed: the rest of a URL may hold a password.
        raise ConfigError(
            f"DATABASE_URL must be {_URL_FORMS} (got {url.split(':', 1)[0]}:…); "
            "e.g. sqlite:///data/reelbot.db"
        )
    path = url[len(prefix) :]
    if not path:
        raise ConfigError("DATABASE_URL has no file path; e.g. sqlite:///data/reelbot.db")
    return path


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {raw!r})") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {value})")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (got {raw!r})") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g} (got {raw})")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {raw!r})")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (got {raw!r})")


def _id_list(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return ()
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise ConfigError(f"{name} must be comma-separated numeric ids (bad entry {part!r})")
        ids.append(int(part))
    return tuple(ids)


def _url(name: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL (got {redact_url(value)!r})")
    return value.rstrip("/")


def load_config(env: Mapping[str, str] | None = None, *, require_token: bool = True) -> Config:
    """Build the config from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env

    token = env.get("DISCORD_TOKEN", "").strip()
    if require_token and not token:
        raise ConfigError(
            "DISCORD_TOKEN is not set: put your bot token in .env (see .env.example) "
            "or the environment"
        )

    providers = []
    for pid in PROVIDER_IDS:
        key = env.get(f"{pid.upper()}_API_KEY", "").strip()
        if not key:
            continue
        base_name = f"{pid.upper()}_BASE_URL"
        base = env.get(base_name, "").strip() or (provider_class(pid).default_base_url or "")
        if not base:
            raise ConfigError(
                f"{base_name} is not set: {pid} has no public default base URL, "
                "set it to your aggregator's API base"
            )
        providers.append(ProviderConfig(pid, key, _url(base_name, base)))

    default_provider = env.get("DEFAULT_PROVIDER", "").strip() or None
    configured = [p.id for p in providers]
    if default_provider is not None:
        if default_provider not in PROVIDER_IDS:
            raise ConfigError(
                f"DEFAULT_PROVIDER must be one of {', '.join(PROVIDER_IDS)} "
                f"(got {default_provider!r})"
            )
        if default_provider not in configured:
            raise ConfigError(
                f"DEFAULT_PROVIDER is {default_provider} but {default_provider.upper()}_API_KEY "
                "is not set"
            )
    elif configured:
        default_provider = configured[0]

    failover: list[str] = []
    for pid in (p.strip() for p in env.get("FAILOVER_PROVIDERS", "").split(",")):
        if not pid or pid in failover:
            continue
        if pid not in PROVIDER_IDS:
            raise ConfigError(
                f"FAILOVER_PROVIDERS must list provider ids among {', '.join(PROVIDER_IDS)} "
                f"(got {pid[:40]!r})"
            )
        if pid not in configured:
            raise ConfigError(
                f"FAILOVER_PROVIDERS names {pid} but {pid.upper()}_API_KEY is not set"
            )
        failover.append(pid)

    poll = _float(env, "POLL_INTERVAL_SECONDS", 5.0, minimum=0.05)
    poll_max = _float(env, "POLL_MAX_INTERVAL_SECONDS", 60.0, minimum=0.05)
    if poll_max < poll:
        raise ConfigError(
            f"POLL_MAX_INTERVAL_SECONDS ({poll_max:g}) must not be below "
            f"POLL_INTERVAL_SECONDS ({poll:g})"
        )
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL (got {log_level!r})"
        )

    database_url = env.get("DATABASE_URL", "").strip() or "sqlite:///data/reelbot.db"
    database_backend(database_url)  # validate early: one clear line

    public_base_url = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
    allow_local_urls = _bool(env, "ALLOW_LOCAL_URLS", False)
    if public_base_url:
        scheme = "http" if allow_local_urls else "https"
        if not public_base_url.startswith(("https://", f"{scheme}://")) or "?" in public_base_url:
            raise ConfigError(
                "PUBLIC_BASE_URL must be the https:// URL at which providers reach this bot "
                f"(no query; got {redact_url(public_base_url)!r}); plain http only with "
                "ALLOW_LOCAL_URLS=true"
            )
    hiapi_secret = env.get("HIAPI_WEBHOOK_SECRET", "").strip()
    if hiapi_secret and not 16 <= len(hiapi_secret) <= 256:
        raise ConfigError(
            "HIAPI_WEBHOOK_SECRET must be hiapi's webhook signing key, 16-256 characters "
            f"(got {len(hiapi_secret)})"
        )

    return Config(
        discord_token=token,
        discord_api_base=_url(
            "DISCORD_API_BASE", env.get("DISCORD_API_BASE", "").strip() or DEFAULT_API_BASE
        ),
        guild_ids=_id_list(env, "DISCORD_GUILD_IDS"),
        database_url=database_url,
        providers=tuple(providers),
        default_provider=default_provider,
        poll_interval=poll,
        poll_max_interval=poll_max,
        task_timeout=_float(env, "TASK_TIMEOUT_SECONDS", 3600.0, minimum=1.0),
        task_lease=_float(env, "TASK_LEASE_SECONDS", 120.0, minimum=1.0),
        daily_quota=_int(env, "DAILY_QUOTA", 10),
        moderator_role_ids=frozenset(_id_list(env, "MODERATOR_ROLE_IDS")),
        allow_local_urls=allow_local_urls,
        log_level=log_level,
        user_cooldown=_float(env, "USER_COOLDOWN_SECONDS", 10.0, minimum=0.0),
        max_user_in_flight=_int(env, "MAX_USER_IN_FLIGHT", 3),
        max_download_bytes=_int(env, "MAX_DOWNLOAD_MB", 512, minimum=1) * 1024 * 1024,
        character_training_weight=_int(env, "CHARACTER_TRAINING_WEIGHT", 5, minimum=0),
        data_dir=Path(env.get("DATA_DIR", "").strip() or "data"),
        input_retention_days=_int(env, "INPUT_RETENTION_DAYS", 30, minimum=1),
        log_format=_choice(env, "LOG_FORMAT", ("text", "json")),
        health_port=_int(env, "HEALTH_PORT", 0),
        health_host=env.get("HEALTH_HOST", "").strip() or "127.0.0.1",
        public_base_url=public_base_url,
        webhook_host=env.get("WEBHOOK_HOST", "").strip() or "127.0.0.1",
        webhook_port=_int(env, "WEBHOOK_PORT", 8088),
        hiapi_webhook_secret=hiapi_secret,
        failover_providers=tuple(failover),
        provider_cooloff=_float(env, "PROVIDER_COOLOFF_SECONDS", 30.0, minimum=0.01),
    )
