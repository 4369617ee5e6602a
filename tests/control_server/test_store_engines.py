"""The store behaves the same on SQLite and on PostgreSQL: every test here runs on both."""

from __future__ import annotations

import pytest

from control_server.store import (
    AdminStore,
    DirectoryStore,
    HistoryQuery,
    NameTaken,
    StateStore,
    StoreError,
    UnknownName,
)
from control_server.store.write_behind import PendingWrites

from .store_engines import binding, open_store, session  # noqa: F401  (open_store: a fixture)


@pytest.fixture
def directory(open_store):
    directory = DirectoryStore(open_store())
    directory.add_user("alice", "pw")
    directory.add_user("bob", "pw")
    directory.add_device("alice", "phone")
    return directory


def test_users_are_listed_with_their_device_counts_and_a_taken_name_is_refused(directory):
    assert [(u.name, u.devices, u.disabled) for u in directory.users()] == [
        ("alice", 1, False), ("bob", 0, False)]
    with pytest.raises(NameTaken):
        directory.add_user("alice", "again")


def test_an_import_replaces_digests_of_known_users_and_adds_new_ones(directory):
    before = {name: md5 for name, md5, _, _ in directory.credentials()}
    assert directory.import_users([("alice", "new"), ("carol", "pw")]) == 2
    after = {name: md5 for name, md5, _, _ in directory.credentials()}
    assert after["alice"] != before["alice"] and after["bob"] == before["bob"]
    assert sorted(after) == ["alice", "bob", "carol"]


def test_a_device_of_an_unknown_user_and_a_device_twice_are_refused_by_name(directory):
    with pytest.raises(UnknownName, match="no user 'ghost'"):
        directory.add_device("ghost", "phone")
    with pytest.raises(NameTaken, match="alice/phone exists"):
        directory.add_device("alice", "phone")


def test_a_share_twice_is_taken_and_a_share_of_an_unknown_device_is_unknown(directory):
    directory.add_share("alice", "phone", "bob")
    with pytest.raises(NameTaken):
        directory.add_share("alice", "phone", "bob")
    with pytest.raises(UnknownName):
        directory.add_share("alice", "tablet", "bob")
    assert [(s.owner, s.device, s.grantee) for s in directory.shares()] == [
        ("alice", "phone", "bob")]


def test_removing_a_user_takes_its_devices_shares_and_bindings(directory):
    state = StateStore(directory.database)
    directory.add_share("alice", "phone", "bob")
    state.write_batch([binding("alice", "phone")], [], [], [])
    directory.remove_user("alice")
    assert directory.devices() == [] and directory.shares() == []
    assert state.bindings() == []
    with pytest.raises(UnknownName):
        directory.remove_user("alice")


def test_disabled_flags_of_users_and_devices_are_kept(directory):
    directory.set_disabled("bob", True)
    directory.set_device_disabled("alice", "phone", True)
    assert {name: disabled for name, _, _, disabled in directory.credentials()} == {
        "alice": False, "bob": True}
    assert [d.disabled for d in directory.devices()] == [True]


def test_the_realm_is_fixed_by_the_first_caller_and_another_is_refused(open_store):
    directory = DirectoryStore(open_store())
    assert directory.realm("example.org") == "example.org"
    assert directory.realm() == "example.org"
    with pytest.raises(StoreError, match="realm 'example.org', not 'other'"):
        directory.realm("other")


def test_every_connection_to_one_store_gets_the_same_nonce_secret(open_store):
    first, second = open_store(), open_store()
    assert len(first.nonce_secret()) == 32
    assert first.nonce_secret() == second.nonce_secret()


def test_bindings_come_back_with_the_node_holding_them_and_expired_ones_only_on_request(
        directory):
    state = StateStore(directory.database)
    directory.add_device("bob", "laptop")
    state.write_batch([binding("alice", "phone", expires=5.0), binding("bob", "laptop")], [], [],
                      [], node="one")
    assert [(b.key, b.node) for b in state.bindings()] == [
        (("alice", "phone"), "one"), (("bob", "laptop"), "one")]
    assert [b.key for b in state.bindings(10.0)] == [("bob", "laptop")]
    assert state.bindings()[0].source.port == 5070


def test_a_device_gone_offline_on_one_node_keeps_the_binding_another_node_took_since(directory):
    state = StateStore(directory.database)
    state.write_batch([binding("alice", "phone", at=1.0)], [], [], [], node="one")
    state.write_batch([binding("alice", "phone", at=2.0)], [], [], [], node="two")
    state.write_batch([], [("alice", "phone")], [], [], node="one")
    if directory.database.shared:
        assert [(b.node, b.registered_at) for b in state.bindings()] == [("two", 2.0)]
        state.write_batch([], [("alice", "phone")], [], [], node="two")
    # SQLite is one server's file: whatever name wrote a binding, going offline removes it.
    assert state.bindings() == []


def test_the_servers_batch_makes_devices_and_moves_their_last_seen(directory):
    state = StateStore(directory.database)
    state.write_batch([binding("bob", "tablet", at=7.0)], [], [], [("bob", "tablet", 7.0)])
    state.write_batch([binding("bob", "tablet", at=9.0)], [], [], [("bob", "tablet", 9.0)])
    assert [(d.user, d.name, d.last_seen) for d in directory.devices()] == [
        ("alice", "phone", None), ("bob", "tablet", 9.0)]


def test_a_restart_closes_only_its_own_nodes_sessions_and_those_from_before_nodes(open_store):
    state = StateStore(open_store())
    state.write_batch([], [], [session("old", ended=None, state="established")], [], node="")
    state.write_batch([], [], [session("mine", ended=None, state="established")], [], node="one")
    state.write_batch([], [], [session("theirs", ended=None, state="established")], [],
                      node="two")
    closed = state.end_interrupted_sessions(100.0, "one")
    assert all(r.state == "failed" and r.ended_at == 100.0 for r in closed)
    if state.database.shared:
        assert sorted(r.call_id for r in closed) == ["mine", "old"]
        assert [r.call_id for r in state.sessions(history=False)] == ["theirs"]
    else:  # one server's file: a restart under another name (a port picked anew) closes all
        assert sorted(r.call_id for r in closed) == ["mine", "old", "theirs"]


def test_a_session_written_again_keeps_its_latest_state_and_history_filters_match(open_store):
    state = StateStore(open_store())
    state.write_batch([], [], [session("c1", ended=None, state="established")], [])
    state.write_batch([], [], [session("c1", ended=5.0)], [])
    state.write_batch([], [], [session("c2", caller="a_b/x", callee="a_b/y", started=3.0,
                                       ended=4.0, state="failed")], [])
    (latest, _), total = state.session_history(HistoryQuery())
    assert total == 2 and latest.call_id == "c1" and latest.progress == {"files": 3}
    records, total = state.session_history(HistoryQuery(user="a_b"))
    assert total == 1 and records[0].call_id == "c2"
    assert state.session_history(HistoryQuery(user="a%"))[1] == 0
    assert [r.call_id for r in state.session_history(HistoryQuery(outcome="failed"))[0]] == ["c2"]
    assert state.session_history(HistoryQuery(since=2.0, until=3.5))[1] == 1


def test_subscriptions_are_replaced_by_id_and_ended(open_store):
    state = StateStore(open_store())
    state.write_subscriptions([("s1", "{}", 10.0), ("s2", "{}", 10.0)], [])
    state.write_subscriptions([("s1", '{"v": 2}', 20.0)], ["s2"])
    assert state.subscriptions(5.0) == [("s1", '{"v": 2}')]
    assert state.subscriptions(25.0) == []


def test_admins_and_tokens_are_kept_and_refused_twice(open_store):
    admins = AdminStore(open_store())
    admins.add_admin("root", "hash", "admin")
    admins.add_token("prometheus", "tokenhash", "viewer")
    with pytest.raises(NameTaken):
        admins.add_admin("root", "hash", "admin")
    with pytest.raises(NameTaken):
        admins.add_token("prometheus", "other", "viewer")
    assert admins.admin("root").role == "admin"
    assert admins.token("tokenhash").name == "prometheus"
    admins.remove_token("prometheus")
    with pytest.raises(UnknownName):
        admins.remove_admin("nobody")


def test_what_was_kept_while_the_store_was_away_is_written_at_once(directory):
    state = StateStore(directory.database)
    pending = PendingWrites()
    pending.add(bound=[binding("alice", "phone", at=1.0)], sessions=[session("c1", ended=None)])
    pending.add(bound=[binding("alice", "phone", at=3.0)], sessions=[session("c1", ended=4.0)],
                subscriptions=[("s1", "{}", 10.0)])
    state.write_pending(pending, "one")
    assert [(b.registered_at, b.node) for b in state.bindings()] == [(3.0, "one")]
    assert [r.ended_at for r in state.sessions(history=True)] == [4.0]
    assert state.subscriptions(5.0) == [("s1", "{}")]
