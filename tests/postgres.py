"""A real PostgreSQL server for the tests that need one: Debian's `postgresql`, a fresh cluster in
a temporary directory on a loopback port the OS picks, stopped by its PID at the end.

`postgres` refuses to run as root, so where the tests run as root the cluster belongs to the
`postgres` system account that the Debian package creates."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .tools import require_tool
from .waiting import wait_until

SUPERUSER = "sipsync"


def _binaries() -> Path:
    """Debian keeps the server's programs outside PATH, under /usr/lib/postgresql/<major>/bin."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    require_tool("initdb", "postgresql")  # fails or skips with the message
    raise AssertionError("unreachable")


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One running cluster; `url` is what `--store` takes."""

    def __init__(self, root: Path, bin_dir: Path, port: int, run_as: str | None) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.port = port
        self.run_as = run_as
        self.process: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
             "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, user=self.run_as)

    def start(self) -> None:
        log = open(self.root / "postgres.log", "a")
        # Started as the account itself (not through su), so that the PID is the postmaster's.
        self.process = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off",
             "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, user=self.run_as, cwd=self.root)

        def accepting() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'postgres.log').read_text()}")
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(accepting, what="PostgreSQL accepting connections", timeout=30, interval=0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Fast shutdown by the postmaster's PID; it ends its own backends."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        """A new empty database on this cluster; its URL."""
        subprocess.run(
            [str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", SUPERUSER, name], check=True, capture_output=True)
        return self.url(name)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = _binaries()
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root needs the postgres account "
                               "(apt-get install postgresql)") from None
        run_as = "postgres"
    root = Path(tempfile.mkdtemp(prefix="sipsync-pg-"))
    if run_as is not None:
        shutil.chown(root, run_as, run_as)
    server = PostgresServer(root, bin_dir, _free_tcp_port(), run_as)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
