"""`sipsync-admin --store URL` works as `--data-dir` does; `init --realm` makes the order of the
admin's first user and the server's first start not matter; `migrate` copies a data directory
into PostgreSQL."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from control_server.admin.cli import main
from control_server.store import (
    SECRET_NAME,
    AdminStore,
    DirectoryStore,
    PostgresDatabase,
    StateStore,
    nonce_secret,
)

from ..control_server.in_process import register, running_server
from ..waiting import wait_until_async
from ..control_server.store_engines import open_store, session  # noqa: F401  (a fixture)


def admin_on(*where: str):
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, [*where, *args])
        return result

    return run


def test_the_admin_commands_work_on_a_postgresql_store_as_on_a_data_directory(postgres_url):
    admin = admin_on("--store", postgres_url)
    assert admin("users", "add", "alice", "--password", "pw").output == "added user alice\n"
    assert admin("devices", "add", "alice/phone").exit_code == 0
    assert admin("users", "add", "bob", "--password", "pw").exit_code == 0
    assert admin("shares", "add", "alice/phone", "bob").exit_code == 0
    taken = admin("users", "add", "alice", "--password", "pw")
    assert taken.exit_code == 1 and "exists" in taken.output
    listed = json.loads(admin("devices", "list", "--json").output)
    assert [(d["user"], d["device"], d["disabled"]) for d in listed] == [
        ("alice", "phone", False)]
    assert [s["user"] for s in json.loads(admin("shares", "list", "--json").output)] == ["bob"]


def test_the_store_and_a_server_url_are_not_both_given(postgres_url):
    refused = admin_on("--store", postgres_url, "--url", "http://127.0.0.1:1")("users", "list")
    assert refused.exit_code == 2 and "not both" in refused.output


def test_a_store_that_is_not_a_postgresql_url_is_refused(tmp_path):
    refused = admin_on("--store", "mysql://x/y")("users", "list")
    assert refused.exit_code == 1 and "postgresql://" in refused.output


def where(open_store) -> tuple[str, ...]:
    return ("--store", open_store.url) if open_store.url else (
        "--data-dir", str(open_store.data_dir))


async def test_init_then_users_then_a_server_with_that_realm_lets_the_user_register(
        open_store, tmp_path):
    admin = admin_on(*where(open_store))
    assert admin("init", "--realm", "example.org").output == "realm example.org\n"
    assert admin("users", "add", "alice", "--password", "pw").exit_code == 0
    async with running_server(open_store.store, tmp_path, "one", realm="example.org",
                              data_dir=open_store.data_dir) as server:
        assert server.realm == "example.org"
        assert register(server) == 200


async def test_a_server_with_a_realm_first_then_users_added_lets_them_register(
        open_store, tmp_path):
    async with running_server(open_store.store, tmp_path, "one", realm="example.org",
                              data_dir=open_store.data_dir) as server:
        admin = admin_on(*where(open_store))
        assert admin("users", "add", "alice", "--password", "pw").exit_code == 0
        await wait_until_async(lambda: "alice" in server.directory.accounts,
                               what="the server reloaded the directory", timeout=5)
        assert register(server) == 200


def test_init_with_another_realm_than_the_stores_is_refused(open_store):
    admin = admin_on(*where(open_store))
    assert admin("users", "add", "alice", "--password", "pw").exit_code == 0
    refused = admin("init", "--realm", "example.org")
    assert refused.exit_code == 1 and "belongs to realm 'sipsync'" in refused.output
    assert admin("init", "--realm", "sipsync").output == "realm sipsync\n"


def test_init_is_not_sent_to_a_server_url():
    refused = admin_on("--url", "http://127.0.0.1:1")("init", "--realm", "r")
    assert refused.exit_code == 2 and "--data-dir or --store" in refused.output


@pytest.fixture
def data_dir(tmp_path):
    """A data directory with a little of everything, as a server and its admins left it."""
    data = tmp_path / "data"
    admin = admin_on("--data-dir", str(data))
    for args in (("init", "--realm", "example.org"),
                 ("users", "add", "alice", "--password", "pw"),
                 ("users", "add", "bob", "--password", "pw"),
                 ("devices", "add", "alice/phone"),
                 ("devices", "add", "alice/laptop"),
                 ("devices", "disable", "alice/laptop"),
                 ("shares", "add", "alice/phone", "bob"),
                 ("admins", "add", "root", "--password", "secret-pw"),
                 ("tokens", "create", "--name", "prometheus", "--role", "viewer")):
        assert admin(*args).exit_code == 0, args
    nonce_secret(data)  # made by the server's first start
    state = StateStore.open(data)
    state.write_batch([], [], [session("c1"), session("c2", ended=None, state="established")],
                      [])
    state.close()
    return data


def test_migrate_copies_every_user_digest_device_share_admin_session_and_the_secret(
        data_dir, postgres_url):
    copied = admin_on("--data-dir", str(data_dir), "--store", postgres_url)("migrate")
    assert copied.exit_code == 0, copied.output
    assert copied.output.startswith("copied ")
    old = DirectoryStore.open(data_dir)
    new = DirectoryStore(PostgresDatabase(postgres_url))
    try:
        assert sorted(new.credentials()) == sorted(tuple(row) for row in old.credentials())
        assert new.devices() == old.devices() and new.shares() == old.shares()
        assert new.realm() == "example.org"
        assert new.database.nonce_secret() == (data_dir / SECRET_NAME).read_bytes()
        assert AdminStore(new.database).admins() == AdminStore(old.database).admins()
        assert AdminStore(new.database).tokens() == AdminStore(old.database).tokens()
        old_state, new_state = StateStore(old.database), StateStore(new.database)
        for history in (True, False):
            assert (new_state.sessions(history=history)
                    == old_state.sessions(history=history))
    finally:
        old.close()
        new.close()


def test_migrate_refuses_a_database_that_is_not_empty(data_dir, postgres_url):
    admin = admin_on("--store", postgres_url)
    assert admin("users", "add", "carol", "--password", "pw").exit_code == 0
    refused = admin_on("--data-dir", str(data_dir), "--store", postgres_url)("migrate")
    assert refused.exit_code == 1 and "not empty" in refused.output
    assert [u["name"] for u in json.loads(admin("users", "list", "--json").output)] == ["carol"]


def test_migrate_needs_a_data_directory_and_a_store(tmp_path):
    refused = admin_on("--data-dir", str(tmp_path))("migrate")
    assert refused.exit_code == 2 and "give both" in refused.output


def test_the_admin_api_of_a_server_on_postgresql_changes_the_shared_store(tmp_path, postgres_url):
    from .conftest import start_admin_server, stop_admin_server

    (tmp_path / "data").mkdir()
    server = start_admin_server(tmp_path / "data", postgres_url)
    try:
        with server.client(server.admin_token) as http:
            assert http.post("/api/users", json={"name": "uma", "password": "pw"}).status_code == 201
            assert http.patch("/api/users/uma", json={"disabled": True}).status_code == 200
        listed = json.loads(admin_on("--store", postgres_url)("users", "list", "--json").output)
        assert [u["disabled"] for u in listed if u["name"] == "uma"] == [True]
        assert "data in postgresql://sipsync@127.0.0.1" in server.logs()
    finally:
        stop_admin_server(server)
