"""Admin accounts and API tokens: what a login and a token are checked against; no sockets."""

from __future__ import annotations

import pytest

from control_server.admin.accounts import AdminAccounts
from control_server.store import DB_NAME, AdminStore, StoreError


@pytest.fixture
def accounts(tmp_path):
    store = AdminStore.open(tmp_path)
    yield AdminAccounts(store)
    store.close()


def test_a_login_with_the_right_password_finds_the_admin_and_a_wrong_one_does_not(accounts):
    accounts.add_admin("root", "root-pw", "viewer")
    admin = accounts.login("root", "root-pw")
    assert admin is not None and (admin.name, admin.role) == ("root", "viewer")
    assert accounts.login("root", "wrong") is None
    assert accounts.login("nobody", "root-pw") is None


def test_an_empty_password_is_refused(accounts):
    with pytest.raises(StoreError, match="empty password"):
        accounts.add_admin("root", "", "admin")


def test_a_token_is_found_by_itself_never_by_what_is_stored(accounts, tmp_path):
    token = accounts.create_token("prom", "viewer")
    found = accounts.token(token)
    assert found is not None and (found.name, found.role) == ("prom", "viewer")
    assert accounts.token(token + "x") is None
    assert (tmp_path / DB_NAME).exists()
    # Neither the database nor its write-ahead log holds the token.
    assert token.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    accounts.revoke_token("prom")
    assert accounts.token(token) is None
