"""The admin API with real SIP traffic from sipp: the event stream, session progress and history,
Prometheus metrics, and `sipsync-admin --url` printing what `--data-dir` prints."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..waiting import wait_until
from .traffic import progress_session, register

pytestmark = pytest.mark.sipp


class EventReader:
    """Reads the server-sent event stream on a thread, so a test can wait with a timeout."""

    def __init__(self, server) -> None:
        self.events: queue.Queue = queue.Queue()
        self._client = server.client(server.admin_token)
        self._response = self._client.stream("GET", "/api/events")
        assert self._response.status_code == 200
        assert self._response.headers["content-type"].startswith("text/event-stream")
        self._closing = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind = None
        try:
            for line in self._response.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    self.events.put((kind, json.loads(line[6:])))
                    kind = None
        except Exception as exc:
            if not self._closing.is_set():
                self.events.put((None, exc))  # the test's thread raises it

    def next_of(self, kind: str, timeout: float = 15.0, where=lambda data: True) -> dict:
        """The next event of `kind` whose data satisfies `where`, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got, data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout:g} s") from None
            if got is None:
                raise AssertionError("reading the event stream failed") from data
            if got == kind and where(data):
                return data

    def close(self) -> None:
        self._closing.set()
        self._response.close()
        self._client.close()


def metrics(server) -> dict[str, float]:
    with server.client(server.viewer_token) as http:
        text = http.get("/metrics").text
    return {sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_event_stream_shows_a_device_online_and_a_session_progressing_to_its_end(
        admin_server, tmp_path):
    reader = EventReader(admin_server)
    try:
        callee_port = register(admin_server.sip_port, tmp_path, "ev", "ev-pw", "phone")
        online = reader.next_of("device.online", where=lambda d: d["user"] == "ev")
        assert online["device"] == "phone" and online["user_agent"] == "sipp-uas"
        assert online["address"] == f"udp:127.0.0.1:{callee_port}"
        progress_session(admin_server.sip_port, tmp_path, "ev", "ev-pw", "phone", callee_port)
        started = reader.next_of("session.started", where=lambda d: d["callee"] == "ev/phone")
        seen = []
        while True:
            update = reader.next_of("session.progress", where=lambda d: d["call_id"] == started["call_id"])
            if update["progress"]:
                seen.append(update["progress"]["bytes"])
            if update["progress"].get("phase") == "done":
                break
        assert seen == [262144, 524288, 786432, 1048576]
        ended = reader.next_of("session.ended", where=lambda d: d["call_id"] == started["call_id"])
        assert ended["state"] == "ended" and ended["progress"]["phase"] == "done"
        assert ended["rate"] > 0
    finally:
        reader.close()
    with admin_server.client(admin_server.admin_token) as http:
        history = http.get("/api/sessions/history", params={"device": "ev/phone"}).json()
        assert history["total"] == 1
        assert history["sessions"][0]["progress"]["bytes_total"] == 1048576
        assert http.get("/api/sessions/history", params={"user": "ev", "outcome": "failed"}).json()[
            "total"] == 0
        online_now = http.get("/api/devices", params={"online": "1"}).json()
        assert [(d["user"], d["device"], d["transport"]) for d in online_now
                if d["user"] == "ev"] == [("ev", "phone", "udp")]
        assert 3500 < [d for d in online_now if d["user"] == "ev"][0]["expires_in"] <= 3600


def test_metrics_parse_and_count_real_registrations_sessions_and_failures(admin_server, tmp_path):
    before = metrics(admin_server)
    callee_port = register(admin_server.sip_port, tmp_path, "mx", "mx-pw", "phone")
    progress_session(admin_server.sip_port, tmp_path, "mx", "mx-pw", "phone", callee_port)
    ended = 'sipsync_sessions_total{"outcome": "ended", "status": "200"}'

    def counted() -> dict[str, float] | None:
        now = metrics(admin_server)
        return now if now.get(ended, 0) > before.get(ended, 0) else None

    after = wait_until(counted, what="the ended session counted")
    assert after["sipsync_registrations_total{}"] >= before["sipsync_registrations_total{}"] + 1
    assert after['sipsync_sip_requests_total{"method": "INFO"}'] >= \
        before.get('sipsync_sip_requests_total{"method": "INFO"}', 0) + 4
    assert after["sipsync_register_seconds_count{}"] >= before["sipsync_register_seconds_count{}"] + 2
    assert after["sipsync_session_setup_seconds_count{}"] >= \
        before["sipsync_session_setup_seconds_count{}"] + 1
    assert after["sipsync_online_devices{}"] >= 1
    # The first REGISTER of each device is challenged; that is not an auth failure.
    assert after["sipsync_auth_failures_total{}"] == before["sipsync_auth_failures_total{}"]


def admin_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "control_server.admin.cli", *args],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("command", [["users", "list", "--json"], ["devices", "list", "--json"],
                                     ["shares", "list", "--json"], ["online", "--json"],
                                     ["sessions", "--history", "--json"], ["users", "list"],
                                     ["admins", "list", "--json"], ["tokens", "list"]])
def test_admin_cli_over_url_prints_what_it_prints_over_the_data_dir(admin_server, command):
    with admin_server.client(admin_server.admin_token) as http:
        http.post("/api/users", json={"name": "cli", "password": "pw"})
    remote = admin_cli("--url", admin_server.url, "--token", admin_server.admin_token, *command)
    local = admin_cli("--data-dir", str(admin_server.data_dir), *command)
    assert remote.returncode == 0, remote.stderr
    if command[0] == "online":
        # The countdown moves between the two calls; everything else must be equal.
        strip = lambda out: [{k: v for k, v in row.items() if k != "expires_in"}  # noqa: E731
                             for row in json.loads(out)]
        assert strip(remote.stdout) == strip(local.stdout)
    else:
        assert remote.stdout == local.stdout
    assert "cli" in remote.stdout or command[0] not in ("users",)


def test_admin_cli_over_url_changes_and_refuses_like_the_data_dir(admin_server):
    url = ["--url", admin_server.url, "--token", admin_server.admin_token]
    assert admin_cli(*url, "users", "add", "remo", "--password", "pw").stdout == "added user remo\n"
    assert admin_cli(*url, "devices", "add", "remo/pad").stdout == "added device remo/pad\n"
    assert admin_cli(*url, "devices", "disable", "remo/pad").stdout == "disabled device remo/pad\n"
    assert admin_cli(*url, "devices", "disable", "remo/pad", "--enable").stdout == \
        "enabled device remo/pad\n"
    assert admin_cli(*url, "users", "disable", "remo").stdout == "disabled user remo\n"
    refused = admin_cli(*url, "users", "add", "remo", "--password", "pw")
    assert refused.returncode == 1 and refused.stderr == "sipsync-admin: user 'remo' exists\n"
    missing = admin_cli(*url, "devices", "remove", "remo/nosuch")
    assert missing.returncode == 1 and missing.stderr == "sipsync-admin: no device remo/nosuch\n"
    viewer = admin_cli("--url", admin_server.url, "--token", admin_server.viewer_token,
                       "users", "remove", "remo")
    assert viewer.returncode == 1 and "viewer role" in viewer.stderr
    wrong = admin_cli("--url", admin_server.url, "--token", "nope", "users", "list")
    assert wrong.returncode == 1 and wrong.stderr == "sipsync-admin: invalid API token\n"


def test_tokens_create_prints_the_token_alone_on_its_last_line(tmp_path):
    data_dir = tmp_path / "data"
    result = admin_cli("--data-dir", str(data_dir), "tokens", "create", "--name", "prom")
    assert result.returncode == 0
    token = result.stdout.splitlines()[-1]
    assert token.startswith("ssk_") and " " not in token
    assert token not in (data_dir / "sipsync.db").read_bytes().decode("latin-1")
