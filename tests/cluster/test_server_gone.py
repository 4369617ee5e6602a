"""Servers on one PostgreSQL store behind the real Kamailio dispatcher notice a server that was
killed: its heartbeat stops, another server ends its sessions in the store within the timeout
(history says why), and every admin API stops showing them; back, it takes its place again
without ending anything twice. A server only cut off from the store is taken for gone too, and
loses nothing: back, it writes again what it runs."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager

import pytest

from ..integration.conftest import free_port
from ..waiting import wait_until
from .sipp_devices import call, query, register_device, start_callee
from .store_proxy import StoreProxy

pytestmark = pytest.mark.sipp

INTERVAL = 0.5
MISSED = 3
HEARTBEAT = ("--heartbeat-interval", str(INTERVAL), "--heartbeats-missed", str(MISSED))
# The silence that makes a server gone, a sweep interval to notice it, and room for a loaded
# machine: past this, the test fails.
NOTICED_WITHIN = INTERVAL * MISSED + INTERVAL + 3.0
# The killed-server test runs the defaults (a heartbeat each second, three missed), close to
# what the balancer in front is given (an OPTIONS each second, 3 s to answer): it prints when
# each noticed the death.
DEFAULT_INTERVAL, DEFAULT_MISSED = 1.0, 3
DEFAULT_NOTICED_WITHIN = DEFAULT_INTERVAL * DEFAULT_MISSED + DEFAULT_INTERVAL + 3.0

# Long enough for the cut, the other server noticing, and the way back.
CUT_OFF_CALL_SECONDS = 20.0

SESSIONS = "SELECT call_id, state, reason, ended_at, node FROM sessions"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def held_call(servers, tmp_path, postgres_url):
    """carol's phone answering a call that lasts a minute, established in the store: yields
    its row, the server holding it and the other, both of which show it."""
    uas_port = free_port()
    register_device(servers.port, tmp_path, "carol", "carol-pw", "phone", uas_port)
    callee = start_callee(servers.port, tmp_path, uas_port)
    caller = call(servers.port, tmp_path, ("carol", "carol-pw"), "carol", "phone", hold=60,
                  background=True)
    try:
        session = wait_until(
            lambda: [r for r in query(postgres_url, SESSIONS) if r["state"] == "established"],
            what="the call established in the store")[0]
        by_name = {server.data_dir.name: server for server in servers.servers}
        home = by_name[session["node"]]
        other = next(server for server in servers.servers if server is not home)
        # The other server shows the session it heard of over the feed.
        wait_until(lambda: [s for s in other.api("/api/sessions")
                            if s["call_id"] == session["call_id"]],
                   what="the session in the other server's admin API")
        yield session, home, other
    finally:
        _stop(caller)
        _stop(callee)


def test_a_killed_servers_session_is_ended_in_the_store_and_the_others_api_with_the_reason(
        cluster, tmp_path, postgres_url):
    servers = cluster([("carol", "carol-pw")], store_url=postgres_url)
    with held_call(servers, tmp_path, postgres_url) as (session, home, other):
        call_id = session["call_id"]
        assert other.api("/api/status")["counts"]["active_sessions"] == 1  # counted there too
        before = {r["node"]: r for r in query(postgres_url, "SELECT * FROM servers")}
        assert before[home.data_dir.name]["gone_at"] is None

        home.kill()
        killed_at = time.monotonic()
        noticed: dict[str, float] = {}

        def both_noticed() -> bool:
            if "store" not in noticed and any(r["ended_at"] is not None
                                              for r in query(postgres_url, SESSIONS)):
                noticed["store"] = time.monotonic() - killed_at
            if ("balancer" not in noticed
                    and not servers.balancer.destinations()[home.port].active):
                noticed["balancer"] = time.monotonic() - killed_at
            return len(noticed) == 2

        wait_until(both_noticed, what="the death noticed by the servers and the balancer",
                   timeout=DEFAULT_NOTICED_WITHIN + 10, interval=0.1)
        print(f"killed server noticed after: its session ended in the store "
              f"{noticed['store']:.2f} s, the balancer marked it down {noticed['balancer']:.2f} s")
        assert noticed["store"] <= DEFAULT_NOTICED_WITHIN
        # Not before it had been silent for its timeout, by the store's clock.
        gone = next(r for r in query(postgres_url, "SELECT * FROM servers")
                    if r["node"] == home.data_dir.name)
        assert gone["gone_at"] - gone["alive_at"] > DEFAULT_INTERVAL * DEFAULT_MISSED
        ended = next(r for r in query(postgres_url, SESSIONS) if r["ended_at"] is not None)
        reason = f"server {home.data_dir.name} stopped"
        assert (ended["call_id"], ended["state"], ended["reason"]) == (call_id, "failed", reason)

        wait_until(lambda: other.api("/api/sessions") == [], timeout=5,
                   what="the session gone from the other server's admin API")
        history = other.api("/api/sessions/history")["sessions"]
        assert [(s["call_id"], s["state"], s["reason"]) for s in history] == [
            (call_id, "failed", reason)]
        assert "taken for gone" in other.logs()

        # Back: a new incarnation, and the session it had is not ended a second time.
        home.start()
        rows = wait_until(
            lambda: [r for r in query(postgres_url, "SELECT * FROM servers")
                     if r["node"] == home.data_dir.name and r["gone_at"] is None],
            what="the restarted server's row alive again")
        assert rows[0]["incarnation"] != before[home.data_dir.name]["incarnation"]
        assert query(postgres_url, SESSIONS) == [ended]
        assert "closed 1 session(s) left open" not in home.logs()


@pytest.mark.parametrize("options_each", [((), ("--workers", "2")), (("--workers", "2"), ())],
                         ids=["workers-second", "workers-first"])
def test_a_killed_server_beside_a_server_of_workers_is_taken_for_gone(
        cluster, tmp_path, postgres_url, options_each):
    """One server runs two workers (its supervisor speaks for it in the cluster); whichever of
    the two holds the call and is killed, the other shows its session, then ends it in the
    store and stops showing it, and its own row beats on."""
    servers = cluster([("carol", "carol-pw")], store_url=postgres_url,
                      options_each=options_each)
    with held_call(servers, tmp_path, postgres_url) as (session, home, other):
        home.kill()
        ended = wait_until(
            lambda: [r for r in query(postgres_url, SESSIONS) if r["state"] == "failed"],
            what="the killed server's session ended in the store", timeout=20)[0]
        assert ended["reason"] == f"server {home.data_dir.name} stopped"
        wait_until(lambda: other.api("/api/sessions") == [], timeout=5,
                   what="the session gone from the other server's admin API")
        rows = {r["node"]: r for r in query(postgres_url, "SELECT * FROM servers")}
        assert rows[other.data_dir.name]["gone_at"] is None


def test_a_server_cut_off_from_the_store_is_taken_for_gone_and_back_loses_nothing(
        cluster, tmp_path, postgres_url):
    """Its store connections cut while it keeps serving SIP: the other server ends its session
    in the store; once the store is reachable again it comes back as a new incarnation, the
    session is active again everywhere, and its BYE is what the history keeps."""
    relays = [StoreProxy(postgres_url).start() for _ in range(2)]
    try:
        servers = cluster([("carol", "carol-pw")], server_options=HEARTBEAT,
                          store_url=postgres_url, store_urls=tuple(r.url for r in relays))
        uas_port = free_port()
        register_device(servers.port, tmp_path, "carol", "carol-pw", "phone", uas_port)
        callee = start_callee(servers.port, tmp_path, uas_port)
        caller = call(servers.port, tmp_path, ("carol", "carol-pw"), "carol", "phone",
                      hold=CUT_OFF_CALL_SECONDS, background=True)
        try:
            session = wait_until(
                lambda: [r for r in query(postgres_url, SESSIONS)
                         if r["state"] == "established"],
                what="the call established in the store")[0]
            index = [s.data_dir.name for s in servers.servers].index(session["node"])
            home, other = servers.servers[index], servers.servers[1 - index]
            call_id = session["call_id"]
            before = _incarnation(postgres_url, home)

            relays[index].cut()
            presumed = wait_until(
                lambda: [r for r in query(postgres_url, SESSIONS) if r["ended_at"] is not None],
                what="the cut-off server's session ended in the store", timeout=NOTICED_WITHIN,
                interval=0.1)[0]
            assert presumed["reason"] == f"server {home.data_dir.name} stopped"
            wait_until(lambda: other.api("/api/sessions") == [], timeout=5,
                       what="the session gone from the other server's admin API")

            relays[index].restore()
            back = wait_until(
                lambda: [r for r in query(postgres_url, SESSIONS) if r["ended_at"] is None],
                what="the session active again in the store", timeout=15)[0]
            assert (back["call_id"], back["state"]) == (call_id, "established")
            assert _incarnation(postgres_url, home) != before
            wait_until(lambda: [s for s in other.api("/api/sessions") if s["call_id"] == call_id],
                       what="the session in the other server's admin API again", timeout=5)
            assert "taken for gone while the store was away" in home.logs()

            # The call goes on through its server, which never stopped, and ends by its BYE.
            assert caller.wait(timeout=CUT_OFF_CALL_SECONDS + 30) == 0, caller.stdout.read()
            ended = wait_until(
                lambda: [r for r in query(postgres_url, SESSIONS) if r["ended_at"] is not None],
                what="the session ended by its BYE in the store")[0]
            assert (ended["state"], ended["reason"]) == ("ended", "ended by BYE")
        finally:
            _stop(caller)
            _stop(callee)
    finally:
        for relay in relays:
            relay.stop()


def _incarnation(store_url: str, server) -> int:
    rows = query(store_url, "SELECT node, incarnation FROM servers")
    return next(r["incarnation"] for r in rows if r["node"] == server.data_dir.name)
