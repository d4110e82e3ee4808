"""What one process does: the gateway (commands, reactions), the worker (poll, deliver), or both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Role:
    gateway: bool = True
    worker: bool = True
    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None

    @property
    def name(self) -> str:
        if self.gateway and self.worker:
            return "all-in-one"
        return "gateway" if self.gateway else "worker"

    @property
    def syncs_commands(self) -> bool:
        """One process syncs slash commands: the one holding shard 0 (or the only one)."""
        return self.gateway and (self.shard_ids is None or 0 in self.shard_ids)


ALL_IN_ONE = Role()
WORKER = Role(gateway=False, worker=True)


def parse_shards(spec: str, count: int | None) -> Role:
    """``--shards 0,1 --shard-count 4`` → a gateway-only role for those shards."""
    try:
        ids = tuple(sorted({int(part) for part in spec.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"--shards takes comma-separated shard numbers (got {spec!r})") from None
    if not ids:
        raise ValueError("--shards needs at least one shard number")
    if count is None or count < 1:
        raise ValueError("--shards needs --shard-count (the total number of shards)")
    if ids[0] < 0 or ids[-1] >= count:
        raise ValueError(f"shard numbers must be between 0 and {count - 1}")
    return Role(gateway=True, worker=False, shard_ids=ids, shard_count=count)
