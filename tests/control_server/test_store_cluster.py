"""Servers on PostgreSQL: they keep answering from memory while it is away and write what they kept
when it is back; servers sharing one database hear each other's admin changes, and a restart
closes only its own sessions. And any server's restart: its nonces are its own run's."""

from __future__ import annotations

import logging
import time

import pytest

from control_server.store import DirectoryStore, PostgresDatabase, StateStore

from ..waiting import wait_until_async
from .in_process import PHONE, answered, register, register_answer, running_server, server_on
from .sip_client import answer, build
from .store_engines import session

@pytest.fixture
def alice(postgres_url):
    admin = DirectoryStore(PostgresDatabase(postgres_url))
    admin.add_user("alice", "pw")
    yield admin
    admin.close()


async def test_postgresql_away_the_server_answers_from_memory_and_writes_what_it_kept_after(
        postgres, postgres_url, alice, tmp_path, caplog):
    server = server_on(postgres_url, tmp_path, "one")
    await server.start()
    try:
        postgres.stop()
        caplog.set_level(logging.WARNING, logger="sipsync.store")
        assert register(server) == 200
        await wait_until_async(lambda: not server.metrics.store_up, what="the store seen away")
        server.sessions.changed.append(session("c1"))  # a session ended: history to keep
        postgres.start()
        await wait_until_async(lambda: server.metrics.store_up, what="the store seen back")
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and "unavailable" in lines[0] and "is back" in lines[1]
        state = StateStore(alice.database)
        assert [(b.key, b.node) for b in state.bindings()] == [(("alice", "phone"), "one")]
        assert [r.call_id for r in state.sessions(history=True)] == ["c1"]
    finally:
        if not postgres.running:  # the cluster serves the tests after this one
            postgres.start()
        await server.stop()


async def test_an_admins_change_on_one_database_reaches_every_server_within_a_second(
        postgres_url, alice, tmp_path):
    async with (running_server(postgres_url, tmp_path, "one") as one,
                running_server(postgres_url, tmp_path, "two") as two):
        # One realm and one nonce secret: a challenge of one server, answered at the other,
        # is read there (a stale nonce, to ask again, not a foreign one), and its answer is 200.
        assert one.realm == two.realm
        elsewhere = register_answer(two, answer_to=one)
        assert elsewhere.status_code == 401
        assert "stale=true" in elsewhere.headers.get("www-authenticate")[0]
        assert register(one) == 200
        alice.set_disabled("alice", True)
        started = time.monotonic()
        await wait_until_async(
            lambda: one.directory.is_disabled("alice") and two.directory.is_disabled("alice"),
            what="both servers reloaded the directory", timeout=5)
        assert time.monotonic() - started < 1.5
        assert one.location.get("alice", "phone") is None  # taken offline by the change


async def test_a_restarted_server_closes_its_own_sessions_and_leaves_the_others(
        postgres_url, alice, tmp_path):
    state = StateStore(alice.database)
    state.write_batch([], [], [session("mine", ended=None, state="established")], [], node="one")
    state.write_batch([], [], [session("theirs", ended=None, state="established")], [],
                      node="two")
    async with running_server(postgres_url, tmp_path, "one"):
        pass
    assert [r.call_id for r in state.sessions(history=False)] == ["theirs"]
    assert [r.call_id for r in state.sessions(history=True)] == ["mine"]


async def test_a_restarted_server_answers_its_earlier_runs_nonce_as_stale(tmp_path):
    """The replay guard's counts die with a run: a REGISTER answered before a restart, sent
    again after it, is asked to authenticate afresh rather than counted as new."""
    directory = DirectoryStore.open(tmp_path / "one")
    directory.add_user("alice", "pw")
    directory.close()
    to = "<sip:alice@sipsync;device=phone>"
    headers = ["Contact: <sip:alice@127.0.0.1:5071>", "Expires: 60"]
    async with running_server("", tmp_path, "one") as first:
        challenge = answered(first.request_received(
            build("REGISTER", "sip:sipsync", user="alice", to=to, headers=headers), PHONE,
            time.time()))
        credentials = answer(challenge.headers.get("www-authenticate")[0], user="alice",
                             password="pw", method="REGISTER", uri="sip:sipsync")
        captured = build("REGISTER", "sip:sipsync", user="alice", to=to,
                         headers=headers + [credentials], cseq=2)
        assert answered(first.request_received(captured, PHONE, time.time())).status_code == 200
    async with running_server("", tmp_path, "one") as second:
        replayed = answered(second.request_received(captured, PHONE, time.time()))
        assert replayed.status_code == 401
        assert "stale=true" in replayed.headers.get("www-authenticate")[0]
