"""sipp devices in front of the cluster, and what the servers stored about them: the steps the
cluster tests are made of."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg

from ..integration.conftest import run_sipp, write_users_csv
from ..waiting import wait_until


def numbered_users(count: int) -> list[tuple[str, str]]:
    return [(f"user{i}", f"pw{i}") for i in range(1, count + 1)]


def register(port: int, users: list[tuple[str, str]], tmp_path: Path, rate: int = 200,
             transport: str = "u1", local_port: int | None = None) -> None:
    """Every user registers once through `port`; sipp stops after that many, or 60 s. The
    same `local_port` again is the same devices refreshing their registrations."""
    csv = write_users_csv(tmp_path / "users.csv", users)
    code, output = run_sipp("register.xml", port, "-inf", str(csv), "-r", str(rate),
                            "-m", str(len(users)), cwd=tmp_path, transport=transport,
                            local_port=local_port)
    assert code == 0, output


def register_device(port: int, tmp_path: Path, user: str, password: str, device: str,
                    local_port: int) -> None:
    csv = write_users_csv(tmp_path / f"{user}-{device}.csv", [(user, password)], extra=[device])
    code, output = run_sipp("register_device.xml", port, "-inf", str(csv), "-m", "1",
                            cwd=tmp_path, local_port=local_port)
    assert code == 0, output


def start_callee(port: int, tmp_path: Path, local_port: int) -> subprocess.Popen:
    return run_sipp("uas.xml", port, "-m", "1", cwd=tmp_path, local_port=local_port,
                    background=True, timeout=30)


def call(port: int, tmp_path: Path, caller: tuple[str, str], callee: str, device: str,
         *, hold: float = 0.2, background: bool = False):
    """A call that ends by the caller's BYE `hold` seconds after it is set up; in the
    `background`, the running sipp."""
    csv = write_users_csv(tmp_path / "caller.csv", [caller], extra=[f"{callee};{device}"])
    return run_sipp("uac_other_user.xml", port, "-inf", str(csv), "-m", "1",
                    "-d", str(int(hold * 1000)), cwd=tmp_path, timeout=30 + hold,
                    background=background)


def query(store_url: str, sql: str) -> list[dict]:
    """Rows of the PostgreSQL store, read as an admin would."""
    async def read() -> list[dict]:
        connection = await asyncpg.connect(store_url)
        try:
            return [dict(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(read())


def _stored_nodes(store_url: str) -> list[tuple[str, str]]:
    return [(row["user"], row["node"])
            for row in query(store_url, 'SELECT "user", node FROM bindings')]


def stored(data_dir: Path, *args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir), *args,
         "--json"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def homes(servers, users: list[tuple[str, str]]) -> dict[str, int]:
    """Which server (its index) each user's devices registered with, from their stores (or
    from the node of each binding in the store they share)."""
    def all_written() -> dict[str, int] | None:
        if servers.store_url:
            names = {server.data_dir.name: index for index, server in enumerate(servers.servers)}
            found = {user: names[node] for user, node in _stored_nodes(servers.store_url)
                     if node in names}
        else:
            found = {row["user"]: index for index, server in enumerate(servers.servers)
                     for row in stored(server.data_dir, "online")}
        return found if set(found) == {name for name, _ in users} else None

    return wait_until(all_written, what="every user's binding in a server's store")


def users_on_two_servers(servers, tmp_path, users) -> tuple[str, str]:
    """A caller registered with the first server and a callee with the second."""
    register(servers.port, users, tmp_path)
    placed = homes(servers, users)
    caller = next(name for name, index in placed.items() if index == 0)
    callee = next(name for name, index in placed.items() if index == 1)
    return caller, callee
