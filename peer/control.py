"""The daemon's local control socket (DATA_DIR/control.sock, mode 0600): the CLI of the same
device asks the running daemon for its status and to place sessions. One JSON object per line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the client side (`sipsync-peer invite`) starts without the daemon's imports
    from .peer import Peer
from .invite_client import SOCKET_NAME
from .sync_outcome import EXIT_UNREACHABLE

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


class ControlServer:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.path = socket_path(peer.config.data_dir)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        old_mask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                           limit=MAX_LINE)
        finally:
            os.umask(old_mask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(message: dict) -> None:
            writer.write(json.dumps(message).encode() + b"\n")

        try:
            line = await reader.readline()
            try:
                command = json.loads(line)
                if not isinstance(command, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                send({"event": "error", "reason": f"unreadable command: {exc}"})
                return
            if command.get("command") == "status":
                status = self.peer.status()
                status["live"] = [row.as_dict() for row in await self.peer.live.status()]
                send({"event": "status", "status": status})
            elif command.get("command") == "devices":
                while True:
                    send({"event": "devices", "at": time.time(), "devices": self.peer.devices()})
                    await writer.drain()
                    if not command.get("watch"):
                        break
                    await self.peer.presence.changed()
            elif command.get("command") == "reload":
                self.peer.reload()
                send({"event": "reloaded"})
            elif command.get("command") == "invite":
                def progress(report) -> None:
                    send({"event": "progress", "phase": report.phase.value,
                          "bytes": report.bytes_done, "bytes_total": report.bytes_total})

                target = str(command.get("target", ""))
                if command.get("wait_online") and not await self.peer.wait_for_device(
                        target, command.get("timeout")):
                    send({"event": "result", "ok": False, "exit_code": EXIT_UNREACHABLE,
                          "reason": f"{target} did not come online",
                          "line": f"failed: {target} did not come online"})
                    await writer.drain()
                    return
                outcome = await self.peer.invite(
                    target, str(command.get("dataset", "")),
                    protocol=command.get("protocol"), direction=command.get("direction") or "push",
                    mode=command.get("mode"), progress=progress,
                )
                send({"event": "result", **outcome.as_dict(), "line": outcome.line()})
            else:
                send({"event": "error", "reason": f"unknown command {command.get('command')!r}"})
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def ask(data_dir: Path, command: dict) -> AsyncIterator[dict]:
    """Send one command to the daemon of `data_dir` and yield what it answers."""
    path = socket_path(data_dir)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonNotRunning(
            f"no daemon is running for {data_dir}: start `sipsync-peer --data-dir {data_dir} daemon`"
        ) from None
    try:
        writer.write(json.dumps(command).encode() + b"\n")
        await writer.drain()
        while line := await reader.readline():
            yield json.loads(line)
    finally:
        writer.close()


class DaemonNotRunning(Exception):
    pass
