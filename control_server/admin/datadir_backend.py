"""`sipsync-admin --data-dir` (or `--store URL`): the admin commands straight on the server's store,
SQLite or PostgreSQL, safe while servers run (they write bindings and sessions through and reload
admin changes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import cached_property, wraps
from pathlib import Path

from ..store import AdminStore, DirectoryStore, StateStore, Store, StoreError, open_database
from .accounts import AdminAccounts
from .backend import AdminError
from .rows import account_row, device_row, online_row, session_row, share_row, user_row


def _refusals(method: Callable) -> Callable:
    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except StoreError as exc:
            raise AdminError(str(exc)) from None

    return wrapper


class DataDirBackend:
    def __init__(self, data_dir: Path, store: str = "") -> None:
        self.data_dir = data_dir
        self.store = store
        self._database: Store | None = None

    @property
    def database(self) -> Store:
        """Opened on first use: a command refused for its arguments touches no file."""
        if self._database is None:
            try:
                self._database = open_database(self.data_dir, self.store)
            except OSError as exc:
                raise AdminError(f"cannot open {self.data_dir}: {exc}") from None
            except StoreError as exc:
                raise AdminError(str(exc)) from None
        return self._database

    @cached_property
    def directory(self) -> DirectoryStore:
        return DirectoryStore(self.database)

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.database)

    @cached_property
    def accounts(self) -> AdminAccounts:
        return AdminAccounts(AdminStore(self.database))

    def close(self) -> None:
        if self._database is not None:
            self._database.close()

    @_refusals
    def init(self, realm: str) -> str:
        """Fix the realm before any user is added (or check that it is the one already fixed)."""
        return self.directory.realm(realm)

    def users(self) -> list[dict]:
        return [user_row(u) for u in self.directory.users()]

    @_refusals
    def add_user(self, name: str, password: str) -> None:
        self.directory.add_user(name, password)

    @_refusals
    def import_users(self, rows: Iterable[tuple[str, str]]) -> int:
        return self.directory.import_users(rows)

    @_refusals
    def set_password(self, name: str, password: str) -> None:
        self.directory.set_password(name, password)

    @_refusals
    def set_disabled(self, name: str, disabled: bool) -> None:
        self.directory.set_disabled(name, disabled)

    @_refusals
    def remove_user(self, name: str) -> None:
        self.directory.remove_user(name)

    def devices(self) -> list[dict]:
        online = {b.key: b for b in self.state.bindings(time.time())}
        return [device_row(d, online.get((d.user, d.name))) for d in self.directory.devices()]

    @_refusals
    def add_device(self, user: str, device: str) -> None:
        self.directory.add_device(user, device)

    @_refusals
    def remove_device(self, user: str, device: str) -> None:
        self.directory.remove_device(user, device)

    @_refusals
    def set_device_disabled(self, user: str, device: str, disabled: bool) -> None:
        self.directory.set_device_disabled(user, device, disabled)

    def shares(self) -> list[dict]:
        return [share_row(s) for s in self.directory.shares()]

    @_refusals
    def add_share(self, owner: str, device: str, grantee: str) -> None:
        self.directory.add_share(owner, device, grantee)

    @_refusals
    def remove_share(self, owner: str, device: str, grantee: str) -> None:
        self.directory.remove_share(owner, device, grantee)

    def online(self) -> list[dict]:
        now = time.time()
        return [online_row(b, now) for b in self.state.bindings(now)]

    def sessions(self, *, history: bool, limit: int) -> list[dict]:
        now = time.time()
        return [session_row(r, now) for r in self.state.sessions(history=history, limit=limit)]

    def admins(self) -> list[dict]:
        return [account_row(a) for a in self.accounts.admins()]

    @_refusals
    def add_admin(self, name: str, password: str, role: str) -> None:
        self.accounts.add_admin(name, password, role)

    @_refusals
    def remove_admin(self, name: str) -> None:
        self.accounts.remove_admin(name)

    def tokens(self) -> list[dict]:
        return [account_row(t) for t in self.accounts.tokens()]

    @_refusals
    def create_token(self, name: str, role: str) -> str:
        return self.accounts.create_token(name, role)

    @_refusals
    def revoke_token(self, name: str) -> None:
        self.accounts.revoke_token(name)
