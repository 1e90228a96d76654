"""A throwaway PostgreSQL server for tests, from Debian's ``postgresql`` binaries.

Use it from a test module::

    from postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

``postgres_server`` (session-scoped) yields a :class:`PostgresServer` that a
test may :meth:`~PostgresServer.stop` and :meth:`~PostgresServer.start`
again (it is running again for the next test); ``postgres_url`` yields its
SQLAlchemy URL (``postgresql+psycopg://``).  Both skip with the install
step when the binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

INSTALL_HINT = "PostgreSQL binaries not found: apt-get install postgresql"


def _bin_dir() -> str | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return os.path.dirname(candidates[-1])
    found = shutil.which("pg_ctl")
    return os.path.dirname(found) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A cluster in a temporary directory, listening on a loopback port, trusting local users."""

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.port = _free_port()
        self.root = tempfile.mkdtemp(prefix="otel-monitor-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        # initdb refuses to run as root: run the binaries as the postgres OS user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, user="postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr or result.stdout}")

    def init(self) -> None:
        self._run(
            os.path.join(self.bin_dir, "initdb"),
            "-D",
            self.data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            os.path.join(self.bin_dir, "pg_ctl"),
            "-D",
            self.data,
            "-l",
            self.log,
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        self._run(os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")

    def is_running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def destroy(self) -> None:
        if self.is_running():
            try:
                self.stop()
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL server; tests may stop and start it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip(INSTALL_HINT)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('psycopg not installed: pip install -e ".[dev]"')
    server = PostgresServer(bin_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of the running test server (restarted if a previous test stopped it)."""
    if not postgres_server.is_running():
        postgres_server.start()
    yield postgres_server.url
