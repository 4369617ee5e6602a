"""The servers' rows in a real store (PostgreSQL, and SQLite for the same SQL): heartbeats, the
one transaction that ends a gone server's work, and a server taking its place again."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import pytest

from control_server.liveness import Member
from control_server.location import Binding
from control_server.sessions import SessionRecord
from control_server.store import StateStore, open_database
from control_server.store.membership import MembershipStore
from protocols.sip.endpoint import Endpoint

REASON = "server a stopped"


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:{tmp_path}"
    return request.getfixturevalue("postgres_url")


def session(call_id: str, ended: bool = False) -> SessionRecord:
    return SessionRecord(call_id, "ann/laptop", "ann/phone", "files", "rsync", "photos",
                         "ended" if ended else "established", 200,
                         "ended by BYE" if ended else "", 1.0, 2.0, 3.0 if ended else None)


def binding(device: str, transport: str) -> Binding:
    return Binding("ann", device, f"sip:ann@127.0.0.1:5070", Endpoint(transport, "127.0.0.1", 5070),
                   "phone", 1.0, 1.0, 4e9, "c1", 1, node="a")


def seeded(url: str) -> tuple[MembershipStore, StateStore]:
    """Server a's work in the store: an active session, one in history, a subscription, a
    binding over UDP and one over TCP; server b's active session beside it."""
    members = MembershipStore(open_database("", url))
    state = StateStore(open_database("", url))
    state.write_batch([binding("phone", "udp"), binding("laptop", "tcp")], [],
                      [session("a-open"), session("a-done", ended=True)], [], "a")
    state.write_batch([], [], [session("b-open")], [], "b")
    state.write_subscriptions([("sub-a", "{}", 4e9)], [], "a")
    state.write_subscriptions([("sub-b", "{}", 4e9)], [], "b")
    return members, state


def silent_for(members: MembershipStore, node: str, seconds: float) -> tuple[Member, float]:
    """The row of `node` as another server reads it now, its last heartbeat made `seconds`
    old (by the store's clock)."""
    with members.db:
        members.db.execute("UPDATE servers SET alive_at = alive_at - ? WHERE node = ?",
                           (seconds, node))
    now, rows = members.members()
    return next(row for row in rows if row.node == node), now


def test_a_gone_servers_open_sessions_end_with_the_reason_and_its_history_stays(store_url):
    members, state = seeded(store_url)
    members.join("a", 1, 3.0)
    row, now = silent_for(members, "a", 3.5)

    ended = members.declare_gone(row, now, REASON)

    assert [(r.call_id, r.state, r.reason, r.ended_at) for r in ended.sessions] == [
        ("a-open", "failed", REASON, now)]
    # What its subscribers are told: the subscription's state, to reach them by.
    assert ended.subscriptions == [("sub-a", "{}")]
    history = {r.call_id: r for r in state.sessions(history=True)}
    assert (history["a-done"].state, history["a-done"].reason) == ("ended", "ended by BYE")
    assert [r.call_id for r in state.sessions(history=False)] == ["b-open"]  # b's own stays
    assert members.member("a").gone_at == now
    # Its subscriptions are gone from the store, the other server's are not.
    assert [row[0] for row in state.db.execute("SELECT id FROM subscriptions")] == ["sub-b"]
    # A device over UDP is reachable through any server; its TCP connection went with a.
    assert [b.device for b in state.bindings()] == ["phone"]


def test_a_server_stopping_cleanly_ends_its_own_work_at_once_and_only_once(store_url):
    members, state = seeded(store_url)
    members.join("a", 1, 3.0)
    ended = members.leave("a", 1, REASON)  # no silence needed: it says so itself
    assert [(r.call_id, r.state) for r in ended.sessions] == [("a-open", "failed")]
    assert ended.subscriptions == [("sub-a", "{}")]
    assert members.member("a").gone_at is not None
    assert [b.device for b in state.bindings()] == ["phone"]
    assert [r.call_id for r in state.sessions(history=False)] == ["b-open"]
    assert members.leave("a", 1, REASON) is None  # left already
    row, now = silent_for(members, "a", 3.5)
    assert members.declare_gone(row, now, REASON) is None  # nobody ends it again


def test_a_server_is_taken_for_gone_once_and_nothing_is_ended_twice(store_url):
    members, state = seeded(store_url)
    members.join("a", 1, 3.0)
    row, now = silent_for(members, "a", 3.5)
    assert members.declare_gone(row, now, REASON)
    # Another server that read the same row: nothing left to do, nothing rewritten.
    assert members.declare_gone(row, now + 1.0, "server a stopped, again") is None
    assert {r.call_id: r.reason for r in state.sessions(history=True)}["a-open"] == REASON


def test_a_heartbeat_since_the_reading_wins_over_the_silence_seen(store_url):
    members, state = seeded(store_url)
    members.join("a", 1, 3.0)
    row, now = silent_for(members, "a", 3.5)
    assert members.heartbeat("a", 1)  # after the other server's reading
    assert members.declare_gone(row, now, REASON) is None
    assert "a-open" in [r.call_id for r in state.sessions(history=False)]


def test_a_restarted_server_takes_its_place_and_its_old_incarnation_is_not_ended_again(
        store_url):
    members, state = seeded(store_url)
    members.join("a", 1, 3.0)
    old, now = silent_for(members, "a", 3.5)
    previous = members.join("a", 2, 3.0)  # back before anyone noticed
    assert (previous.incarnation, previous.gone_at) == (1, None)
    assert members.declare_gone(old, now, REASON) is None
    assert members.heartbeat("a", 2) and not members.heartbeat("a", 1)


def test_a_server_taken_for_gone_learns_it_from_its_next_heartbeat(store_url):
    """Cut off from the store, then back: its row says what the others did meanwhile."""
    members, _ = seeded(store_url)
    members.join("a", 1, 3.0)
    row, now = silent_for(members, "a", 3.5)
    members.declare_gone(row, now, REASON)
    assert not members.heartbeat("a", 1)
    assert members.member("a").gone_at == now
    assert members.join("a", 3, 3.0).gone_at == now
    assert members.heartbeat("a", 3)


def test_the_store_clock_moves_and_rows_carry_it(store_url):
    members = MembershipStore(open_database("", store_url))
    first = members.now()
    members.join("a", 1, 2.5)
    now, rows = members.members()
    assert first <= rows[0].alive_at <= now
    assert (rows[0].node, rows[0].incarnation, rows[0].timeout) == ("a", 1, 2.5)


def test_of_two_servers_racing_to_take_a_third_for_gone_exactly_one_does(postgres_url):
    first, _ = seeded(postgres_url)
    second = MembershipStore(open_database("", postgres_url))
    first.join("a", 1, 3.0)
    row, now = silent_for(first, "a", 3.5)
    results: list = []
    start = threading.Barrier(2)

    def race(members: MembershipStore) -> None:
        start.wait()
        results.append(members.declare_gone(row, now, REASON))

    threads = [threading.Thread(target=race, args=(m,)) for m in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r is None for r in results) == [False, True]
    assert [len(r.sessions) for r in results if r is not None] == [1]


def test_the_announcement_is_heard_only_from_the_server_that_ended_the_work(postgres_url):
    members, _ = seeded(postgres_url)
    other = MembershipStore(open_database("", postgres_url))
    members.join("a", 1, 3.0)
    row, now = silent_for(members, "a", 3.5)

    async def heard() -> list[str]:
        payloads: list[str] = []
        listener = await asyncpg.connect(postgres_url)
        await listener.add_listener("test_feed", lambda *args: payloads.append(args[3]))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, members.declare_gone, row, now, REASON,
                                       ("test_feed", "b NodeGone a"))
            await loop.run_in_executor(None, other.declare_gone, row, now, REASON,
                                       ("test_feed", "c NodeGone a"))
            async with asyncio.timeout(5):
                while not payloads:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # a second one, if sent, would be here by now
        finally:
            await listener.close()
        return payloads

    assert asyncio.run(heard()) == ["b NodeGone a"]


def test_a_server_reads_the_sessions_the_others_run_with_their_names(store_url):
    _, state = seeded(store_url)
    assert [(record.call_id, node) for record, node in state.open_sessions_elsewhere("a")] == [
        ("b-open", "b")]
    assert [r.call_id for r, _ in state.open_sessions_elsewhere("c")] == ["a-open", "b-open"]
