"""Debian's baresip (libre) as an ordinary SIP phone, headless: a config and accounts file
written per phone, a sine tone as its microphone, and its ctrl_tcp module (JSON in netstrings)
to dial, hang up and hear its call events."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from ..tools import require_tool
from ..waiting import wait_until
from .conftest import free_port

MODULES = Path("/usr/lib/baresip/modules")


class Baresip:
    def __init__(self, home: Path, user: str, password: str, server_port: int, *,
                 transport: str = "udp", auto_answer: bool = False) -> None:
        self.home = home
        self.user = user
        self.sip_port = free_port()
        self.control_port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        # ausine plays 48 kHz stereo only; baresip resamples it for PCMU.
        (home / "config").write_text("\n".join([
            "poll_method poll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            f"module_path {MODULES}",
            "module g711.so",
            "module ausine.so",
            "module aufile.so",
            "module_app account.so",
            "module_app menu.so",  # the dial and hangup commands
            "module ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.control_port}",
            "audio_source ausine,440",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            # Nothing to play into: 1.0.0's aufile is a source only, and a player that does not
            # open leaves the call up.
            "audio_player aufile,/dev/null",
            "audio_alert aufile,/dev/null",
            "",
        ]))
        answer = ";answermode=auto" if auto_answer else ""
        # No device name: an ordinary phone binds its user's default device.
        (home / "accounts").write_text(
            f"<sip:{user}@127.0.0.1:{server_port};transport={transport}>"
            f";auth_pass={password};regint=60{answer}\n"
        )
        self.process: subprocess.Popen | None = None
        self.control: socket.socket | None = None
        self._buffer = b""
        self.events: list[dict] = []

    def start(self) -> Baresip:
        self.log = open(self.home / "baresip.log", "w")
        self.process = subprocess.Popen(
            [require_tool("baresip", "baresip"), "-f", str(self.home)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )

        def connected() -> socket.socket | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"baresip exited: {self.logs()}")
            try:
                return socket.create_connection(("127.0.0.1", self.control_port), timeout=1)
            except OSError:
                return None

        self.control = wait_until(connected, what="baresip's control port", timeout=15)
        self.control.setblocking(False)
        return self

    def stop(self) -> None:
        if self.control is not None:
            self.control.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def logs(self) -> str:
        return (self.home / "baresip.log").read_text(errors="replace")

    def command(self, name: str, params: str = "") -> None:
        data = json.dumps({"command": name, "params": params, "token": name}).encode()
        self.control.sendall(str(len(data)).encode() + b":" + data + b",")

    def wait_for(self, event_type: str, *, timeout: float = 20.0) -> dict:
        """The first call event of this type seen so far or arriving within `timeout`."""

        def seen() -> dict | None:
            self._read()
            return next((e for e in self.events if e.get("type") == event_type), None)

        return wait_until(seen, what=f"{self.user}'s baresip event {event_type} "
                                     f"(log: {self.logs()[-600:]})", timeout=timeout)

    def _read(self) -> None:
        try:
            while chunk := self.control.recv(65536):
                self._buffer += chunk
        except BlockingIOError:
            pass
        # Netstrings: LENGTH ":" JSON ","
        while b":" in self._buffer:
            length, _, rest = self._buffer.partition(b":")
            size = int(length)
            if len(rest) < size + 1:
                return
            message = json.loads(rest[:size])
            self._buffer = rest[size + 1:]
            if message.get("event"):
                self.events.append(message)
