"""`sipsync-peer invite` as a thin client: a plain command line reaches the daemon exactly as
the click command would send it and prints the same outcome, without loading click, asyncio
or ssl; anything it cannot read as plainly is left to the click command."""

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from peer import control, sync_outcome
from peer.cli import main
from peer.invite_client import read_plain_invite

REPO = Path(__file__).resolve().parents[2]
RESULT = {"event": "result", "ok": True, "exit_code": 0, "reason": "done", "status": 200,
          "call_id": "c1@laptop", "bytes": 376, "files": 0, "records": 0,
          "detail": "in sync already", "seconds": 0.2, "skipped": [],
          "line": "done: 0 file(s), 376 bytes in 0.20 s (session c1@laptop)"}


class FakeDaemon:
    """A control socket that records each command and answers a progress report, then the
    result: what a daemon says about a session."""

    def __init__(self, data_dir: Path, result: dict) -> None:
        self.commands: list[dict] = []
        self.errors: list[BaseException] = []
        self._listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listening.bind(str(data_dir / control.SOCKET_NAME))
        self._listening.listen()
        self._result = result
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listening.accept()
            except OSError:
                return  # closed
            try:
                with connection, connection.makefile("rwb") as stream:
                    self.commands.append(json.loads(stream.readline()))
                    progress = {"event": "progress", "phase": "delta", "bytes": 1, "bytes_total": 2}
                    for message in (progress, self._result):
                        stream.write(json.dumps(message).encode() + b"\n")
                    stream.flush()
            except BaseException as exc:  # noqa: BLE001 - the test reads it
                self.errors.append(exc)

    def close(self) -> None:
        self._listening.close()
        self._thread.join(timeout=10)
        assert not self.errors, self.errors


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "device"


def thin(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a script runs it (stderr is not a terminal there)."""
    return subprocess.run([sys.executable, "-m", "peer.cli", "--data-dir", str(data_dir), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


COMMAND_LINES = [
    ["invite", "alice/phone", "--dataset", "photos", "--json"],
    ["invite", "--dataset=photos", "alice/phone", "--direction", "mirror", "--json"],
    ["invite", "alice/phone", "--dataset", "notes", "--protocol", "syncml", "--mode", "slow",
     "--direction=two-way"],
    ["invite", "alice/phone", "--dataset", "photos", "--wait-online", "--timeout", "2.5",
     "--json"],
    ["invite", "alice/phone", "--timeout=3", "--dataset", "photos"],
]


@pytest.mark.parametrize("args", COMMAND_LINES)
def test_a_plain_invite_sends_what_the_click_command_sends_and_prints_the_same(data_dir, args):
    data_dir.mkdir()
    daemon = FakeDaemon(data_dir, RESULT)
    try:
        assert read_plain_invite(["--data-dir", str(data_dir), *args], {}) is not None
        fast = thin(data_dir, *args)
        full = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])
    finally:
        daemon.close()
    assert daemon.commands[0] == daemon.commands[1]
    assert (fast.returncode, fast.stdout) == (full.exit_code, full.output)
    assert fast.stderr == ""


def test_the_exit_code_and_reason_of_a_refusal_come_through(data_dir):
    data_dir.mkdir()
    refused = {"event": "result", "ok": False, "exit_code": 3, "reason": "Busy Here",
               "status": 486, "line": "refused: 486 Busy Here"}
    daemon = FakeDaemon(data_dir, refused)
    try:
        result = thin(data_dir, "invite", "alice/phone", "--dataset", "photos")
    finally:
        daemon.close()
    assert (result.returncode, result.stdout) == (3, "refused: 486 Busy Here\n")


def test_without_a_daemon_the_click_command_says_so(data_dir):
    data_dir.mkdir()
    result = thin(data_dir, "invite", "alice/phone", "--dataset", "photos", "--json")
    assert result.returncode == sync_outcome.EXIT_UNREACHABLE
    assert "no daemon is running for" in json.loads(result.stdout)["reason"]


@pytest.mark.parametrize("args", [
    ["invite", "--help"],
    ["-h", "invite", "alice/phone", "--dataset", "photos"],
    ["invite", "alice/phone"],  # --dataset is required
    ["invite", "alice/phone", "bob/laptop", "--dataset", "photos"],
    ["invite", "alice/phone", "--dataset", "photos", "--direction", "sideways"],
    ["invite", "alice/phone", "--dataset", "photos", "--dataset", "notes"],
    ["invite", "alice/phone", "--dataset", "photos", "--timeout", "-1"],
    ["invite", "alice/phone", "--dataset", "photos", "--timeout", "soon"],
    ["invite", "alice/phone", "--dataset", "photos", "--json=yes"],
    ["invite", "alice/phone", "--dataset", "photos", "--colour"],
    ["invite", "alice/phone", "--dataset"],
    ["--log-level", "LOUD", "invite", "alice/phone", "--dataset", "photos"],
    ["status", "--json"],
])
def test_anything_but_a_plain_invite_is_left_to_the_click_command(args):
    assert read_plain_invite(args, {}) is None


def test_a_usage_error_reads_as_it_always_did(data_dir):
    result = thin(data_dir, "invite", "alice/phone", "--dataset", "photos", "--mode", "fast")
    assert result.returncode == 2
    assert "Invalid value for '--mode'" in result.stderr


def test_a_progress_bar_is_left_to_the_click_command():
    args = ["invite", "alice/phone", "--dataset", "photos"]
    assert read_plain_invite(args, {"FORCE_COLOR": "1"}) is None
    assert read_plain_invite([*args, "--json"], {"FORCE_COLOR": "1"}) is not None


def test_the_data_folder_comes_from_the_environment_as_in_the_click_command():
    plain = read_plain_invite(["invite", "alice/phone", "--dataset", "photos", "--json"],
                              {"SIPSYNC_PEER_DATA_DIR": "/srv/phone"})
    assert plain is not None and plain.data_dir == "/srv/phone"


def test_the_client_knows_the_daemons_socket_and_exit_code():
    from peer import invite_client

    assert invite_client.SOCKET_NAME == control.SOCKET_NAME
    assert invite_client.EXIT_UNREACHABLE == sync_outcome.EXIT_UNREACHABLE


def test_a_plain_invite_loads_neither_click_nor_asyncio_nor_ssl(data_dir):
    data_dir.mkdir()
    daemon = FakeDaemon(data_dir, RESULT)
    probe = ("import runpy, sys\n"
             "try:\n"
             "    runpy.run_module('peer.cli', run_name='__main__')\n"
             "finally:\n"
             "    print(' '.join(m for m in ('click', 'asyncio', 'ssl') if m in sys.modules)"
             " or 'none', file=sys.stderr)\n")
    try:
        result = subprocess.run([sys.executable, "-c", probe, "--data-dir", str(data_dir),
                                 "invite", "alice/phone", "--dataset", "photos", "--json"],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        daemon.close()
    assert result.returncode == 0 and json.loads(result.stdout)["ok"]
    assert result.stderr.strip() == "none"
