"""A throwaway PostgreSQL cluster for the store tests and CI.

Uses the server binaries of Debian's ``postgresql`` package (``initdb``/``pg_ctl``
from ``/usr/lib/postgresql/<version>/bin``), a data directory in a fresh temp dir
and a free port on 127.0.0.1. PostgreSQL refuses to run as root, so as root every
server command runs as the ``postgres`` user (``runuser``), which owns the temp dir.
Durability is switched off: the cluster lives for one test run.

From the shell (what ``.ci/run`` does)::

    url=$(python -m tests.pg start /tmp/somewhere)   # prints the connection URL
    python -m tests.pg stop /tmp/somewhere
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

SERVER_USER = "postgres"
_SPEED_OVER_SAFETY = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
)


class PostgresUnavailable(Exception):
    """No server can be started here; ``str(exc)`` says why."""


def find_bin_dir() -> Path:
    """The newest installed server's bin dir (``initdb`` is not on PATH on Debian)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise PostgresUnavailable("no initdb/pg_ctl (install Debian's postgresql package)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root and there is no {SERVER_USER!r} user") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root and runuser is missing")
    return [runuser, "-u", SERVER_USER, "--", *argv]


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(
        _as_server_user(argv), capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PostgresUnavailable(f"{what} failed: {' | '.join(detail)}")


def _hand_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


class Cluster:
    """One initdb'd, started cluster in ``root``; ``url`` connects as superuser."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port

    @property
    def url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @classmethod
    def start(cls, root: Path | None = None) -> Cluster:
        bin_dir = find_bin_dir()
        if root is None:
            # Not pytest's tmp_path nor $TMPDIR as root: their parents may be root-only,
            # and the server user must reach the folder.
            where = "/tmp" if os.geteuid() == 0 else None
            root = Path(tempfile.mkdtemp(prefix="reelbot-pg-", dir=where))
        root.mkdir(parents=True, exist_ok=True)
        _hand_to_server_user(root)
        cluster = cls(root, _free_port())
        try:
            cluster._init(bin_dir)
            cluster._launch_on_a_free_port(bin_dir)
        except BaseException:
            cluster.stop()
            raise
        (root / "port").write_text(str(cluster.port))
        return cluster

    def _init(self, bin_dir: Path) -> None:
        _run(
            [str(bin_dir / "initdb"), "-D", str(self.data), "-U", SERVER_USER,
             "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"],
            "initdb",
        )  # fmt: skip

    def _launch_on_a_free_port(self, bin_dir: Path, attempts: int = 3) -> None:
        # The port was free when picked; a parallel test worker may take it first.
        for attempt in range(attempts):
            try:
                self._launch(bin_dir)
                return
            except PostgresUnavailable:
                if attempt == attempts - 1:
                    raise
                self.port = _free_port()

    def _launch(self, bin_dir: Path) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {_SPEED_OVER_SAFETY}"
        )
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
             "-o", options, "-w", "-t", "60", "start"],
            "pg_ctl start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is worth a checkpoint) and delete it."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                _run(
                    [str(find_bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                     "-w", "stop"],
                    "pg_ctl stop",
                )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def with_database(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` instead."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def with_search_path(database_url: str, schema: str) -> str:
    """``database_url`` whose connections use ``schema`` (asyncpg passes unknown query
    parameters on as server settings)."""
    parts = urlsplit(database_url)
    query = f"{parts.query}&search_path={schema}" if parts.query else f"search_path={schema}"
    return urlunsplit(parts._replace(query=query))


def _in_thread(work: Coroutine[Any, Any, None]) -> None:
    # Session fixtures may be set up from inside a test's running event loop, where
    # asyncio.run() is refused: give the coroutine a loop of its own in a thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, work).result()


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A new database for one test session (one per xdist worker), dropped after it:
    sessions sharing a server never see each other's rows, locks or notifications."""
    name = f"reelbot_test_{uuid.uuid4().hex[:16]}"
    # template0: never connected to, so parallel CREATE DATABASEs cannot collide.
    _in_thread(_admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield with_database(server_url, name)
    finally:
        _in_thread(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.asynccontextmanager
async def fresh_schema(database_url: str) -> AsyncIterator[str]:
    """An empty schema for one test (far cheaper than a database); the yielded URL
    makes it the only one on the search path."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await _admin(database_url, f'CREATE SCHEMA "{name}"')
    try:
        yield with_search_path(database_url, name)
    finally:
        await _admin(database_url, f'DROP SCHEMA "{name}" CASCADE')


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.pg start|stop DIR", file=sys.stderr)
        return 2
    command, root = argv[0], Path(argv[1])
    if command == "start":
        try:
            cluster = Cluster.start(root)
        except PostgresUnavailable as exc:
            print(f"PostgreSQL not available: {exc}", file=sys.stderr)
            return 1
        print(cluster.url)
        return 0
    port_file = root / "port"
    port = int(port_file.read_text()) if port_file.exists() else 0
    Cluster(root, port).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
