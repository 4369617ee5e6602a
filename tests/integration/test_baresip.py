"""Debian's baresip, a common SIP phone that gives up on a 401 carrying any challenge but MD5,
registers with the server's defaults and calls another baresip through the proxy, over UDP and
TCP; the call lands in the history."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from control_server.store import DirectoryStore

from ..waiting import wait_until
from .baresip_phone import Baresip
from .conftest import ServerProcess

pytestmark = pytest.mark.baresip


def admin_json(data_dir, *args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir), *args,
         "--json"], capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers_with_the_defaults_and_calls_another_phone(
        data_dir, tmp_path, transport):
    store = DirectoryStore.open(data_dir)
    store.add_user("alice", "alice-pw")
    store.add_user("bob", "bob-pw")
    store.close()
    server = ServerProcess(data_dir).start()
    phones = [Baresip(tmp_path / "alice", "alice", "alice-pw", server.port, transport=transport),
              Baresip(tmp_path / "bob", "bob", "bob-pw", server.port, transport=transport,
                      auto_answer=True)]
    try:
        caller, callee = (phone.start() for phone in phones)
        # Each may register before its control connection is up: the store tells instead.
        bound = wait_until(lambda: len(rows := admin_json(data_dir, "online")) == 2 and rows,
                           what="both phones online")
        # A plain phone names no device: it is named from its Contact (RFC 3261 10.3).
        assert {(row["user"], row["device"].split("-")[0], row["transport"]) for row in bound} == {
            ("alice", "contact", transport), ("bob", "contact", transport)}
        assert all(row["user_agent"].startswith("baresip") for row in bound)
        # Bob shares his phone (named at its first REGISTER) with alice; the server reloads.
        bobs = next(row["device"] for row in bound if row["user"] == "bob")
        subprocess.run([sys.executable, "-m", "control_server.admin.cli", "--data-dir",
                        str(data_dir), "shares", "add", f"bob/{bobs}", "alice"], check=True,
                       capture_output=True)
        wait_until(lambda: server.logs().count("reloaded users and devices") >= 1,
                   what="the server reloading the share")

        caller.command("dial", f"sip:bob@127.0.0.1:{server.port}")
        caller.wait_for("CALL_ESTABLISHED")
        callee.wait_for("CALL_ESTABLISHED")
        caller.command("hangup")
        callee.wait_for("CALL_CLOSED")

        def ended() -> list[dict]:
            return [s for s in admin_json(data_dir, "sessions", "--history")
                    if s["state"] == "ended"]

        (session,) = wait_until(ended, what="the call in the history")
        alices = next(row["device"] for row in bound if row["user"] == "alice")
        assert (session["caller"], session["callee"]) == (f"alice/{alices}", f"bob/{bobs}")
        assert session["status"] == 200
    finally:
        for phone in phones:
            if phone.process is not None:
                phone.stop()
        server.stop()
