"""The store's device flags, and a database made before devices could be disabled."""

from __future__ import annotations

import sqlite3

import pytest

from control_server.store import DB_NAME, DirectoryStore, UnknownName

# The devices table as it was before the `disabled` column.
_OLD_DEVICES = """
CREATE TABLE users (name TEXT PRIMARY KEY, ha1_md5 TEXT NOT NULL, ha1_sha256 TEXT NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE devices (user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
                      name TEXT NOT NULL, created_at REAL NOT NULL, last_seen REAL,
                      PRIMARY KEY (user, name));
INSERT INTO users VALUES ('alice', 'm', 's', 0, 1.0);
INSERT INTO devices VALUES ('alice', 'phone', 2.0, 3.0);
"""


@pytest.fixture
def store(tmp_path):
    store = DirectoryStore.open(tmp_path)
    store.add_user("alice", "pw")
    store.add_device("alice", "phone")
    yield store
    store.close()


def test_a_new_device_is_enabled(store):
    assert [d.disabled for d in store.devices()] == [False]


def test_a_device_is_disabled_and_enabled_again(store):
    store.set_device_disabled("alice", "phone", True)
    assert [d.disabled for d in store.devices()] == [True]
    store.set_device_disabled("alice", "phone", False)
    assert [d.disabled for d in store.devices()] == [False]


def test_disabling_an_unknown_device_names_it(store):
    with pytest.raises(UnknownName, match="no device alice/ghost"):
        store.set_device_disabled("alice", "ghost", True)


def test_an_old_database_gains_the_disabled_column_and_keeps_its_devices(tmp_path):
    with sqlite3.connect(tmp_path / DB_NAME) as old:
        old.executescript(_OLD_DEVICES)
    old.close()
    store = DirectoryStore.open(tmp_path)
    try:
        (row,) = store.devices()
        assert (row.user, row.name, row.last_seen, row.disabled) == ("alice", "phone", 3.0, False)
        store.set_device_disabled("alice", "phone", True)
        assert store.devices()[0].disabled
    finally:
        store.close()
    # Opening it again finds the column there and leaves it be.
    DirectoryStore.open(tmp_path).close()


def test_write_behind_on_any_connection_leaves_the_directory_version_and_an_admins_change_moves_it(tmp_path):
    from control_server.location import Binding
    from control_server.store import Database, StateStore
    from protocols.sip.endpoint import Endpoint

    database = Database(tmp_path)
    directory, state = DirectoryStore(database), StateStore(database)
    other_worker = StateStore.open(tmp_path)
    try:
        directory.add_user("bob", "pw")
        before = state.directory_version()
        assert before > 0
        for store, device in ((state, "phone"), (other_worker, "laptop")):
            binding = Binding(user="bob", device=device, contact="sip:bob@127.0.0.1:5070",
                              source=Endpoint("udp", "127.0.0.1", 5070), user_agent="ua",
                              registered_at=1.0, last_seen=1.0, expires_at=61.0, call_id=device,
                              cseq=1)
            store.write_batch([binding], [], [], [("bob", device, 1.0)])
        assert state.directory_version() == before
        assert {b.key for b in state.bindings(2.0)} == {("bob", "phone"), ("bob", "laptop")}
        admin = DirectoryStore.open(tmp_path)
        admin.set_device_disabled("bob", "phone", True)
        admin.close()
        assert state.directory_version() != before
    finally:
        other_worker.close()
        database.close()


# The sessions table as it was before sessions were marked by who started them.
_OLD_SESSIONS = """
CREATE TABLE sessions (call_id TEXT PRIMARY KEY, caller TEXT NOT NULL, callee TEXT NOT NULL,
                       data_type TEXT, protocol TEXT, dataset TEXT, state TEXT NOT NULL,
                       status INTEGER, reason TEXT NOT NULL DEFAULT '', started_at REAL NOT NULL,
                       established_at REAL, ended_at REAL, progress TEXT);
INSERT INTO sessions VALUES ('c1', 'alice/laptop', 'alice/phone', 'files', 'rsync', 'photos',
                             'ended', 200, '', 1.0, 1.5, 2.0, NULL);
"""


def test_an_old_history_is_kept_and_read_as_sessions_that_were_asked_for(tmp_path):
    from control_server.store import StateStore

    with sqlite3.connect(tmp_path / DB_NAME) as old:
        old.executescript(_OLD_SESSIONS)
    old.close()
    store = StateStore.open(tmp_path)
    try:
        (record,) = store.sessions(history=True)
        assert (record.call_id, record.state, record.started_by) == ("c1", "ended", "")
    finally:
        store.close()


# The bindings table as it was before servers of a cluster marked theirs.
_OLD_BINDINGS = """
CREATE TABLE bindings (user TEXT NOT NULL, device TEXT NOT NULL, contact TEXT NOT NULL,
                       transport TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
                       user_agent TEXT NOT NULL, registered_at REAL NOT NULL,
                       last_seen REAL NOT NULL, expires_at REAL NOT NULL, call_id TEXT NOT NULL,
                       cseq INTEGER NOT NULL, PRIMARY KEY (user, device));
INSERT INTO bindings VALUES ('alice', 'phone', 'sip:alice@h', 'udp', '127.0.0.1', 5070, 'ua',
                             1.0, 1.0, 61.0, 'c', 1);
"""


def test_an_old_database_keeps_its_bindings_held_by_no_named_server(tmp_path):
    from control_server.store import StateStore

    with sqlite3.connect(tmp_path / DB_NAME) as old:
        old.executescript(_OLD_BINDINGS)
    old.close()
    store = StateStore.open(tmp_path)
    try:
        (binding,) = store.bindings()
        assert (binding.key, binding.node, binding.source.port) == (("alice", "phone"), "", 5070)
        # Its first server takes it offline although that server now has a name.
        store.write_batch([], [("alice", "phone")], [], [], node="host:5060")
        assert store.bindings() == []
    finally:
        store.close()
