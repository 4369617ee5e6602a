"""`sipsync-admin --data-dir`: the admin commands straight on the server's SQLite store, safe while
the server runs (WAL; the server writes bindings and sessions through and reloads admin changes)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path

from .admin_auth import hash_password, hash_token, new_token
from .admin_backend import AdminError
from .admin_rows import device_row, online_row, session_row, share_row, user_row
from .store import Store, StoreError


def _refusals(method: Callable) -> Callable:
    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except StoreError as exc:
            raise AdminError(str(exc)) from None

    return wrapper


class DataDirBackend:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.data_dir)
            except OSError as exc:
                raise AdminError(f"cannot open {self.data_dir}: {exc}") from None
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def users(self) -> list[dict]:
        return [user_row(u) for u in self.store.users()]

    @_refusals
    def add_user(self, name: str, password: str) -> None:
        self.store.add_user(name, password)

    @_refusals
    def import_users(self, rows: Iterable[tuple[str, str]]) -> int:
        return self.store.import_users(rows)

    @_refusals
    def set_password(self, name: str, password: str) -> None:
        self.store.set_password(name, password)

    @_refusals
    def set_disabled(self, name: str, disabled: bool) -> None:
        self.store.set_disabled(name, disabled)

    @_refusals
    def remove_user(self, name: str) -> None:
        self.store.remove_user(name)

    def devices(self) -> list[dict]:
        online = {b.key: b for b in self.store.bindings(time.time())}
        return [device_row(d, online.get((d.user, d.name))) for d in self.store.devices()]

    @_refusals
    def add_device(self, user: str, device: str) -> None:
        self.store.add_device(user, device)

    @_refusals
    def remove_device(self, user: str, device: str) -> None:
        self.store.remove_device(user, device)

    @_refusals
    def set_device_disabled(self, user: str, device: str, disabled: bool) -> None:
        self.store.set_device_disabled(user, device, disabled)

    def shares(self) -> list[dict]:
        return [share_row(s) for s in self.store.shares()]

    @_refusals
    def add_share(self, owner: str, device: str, grantee: str) -> None:
        self.store.add_share(owner, device, grantee)

    @_refusals
    def remove_share(self, owner: str, device: str, grantee: str) -> None:
        self.store.remove_share(owner, device, grantee)

    def online(self) -> list[dict]:
        now = time.time()
        return [online_row(b, now) for b in self.store.bindings(now)]

    def sessions(self, *, history: bool, limit: int) -> list[dict]:
        now = time.time()
        return [session_row(r, now) for r in self.store.sessions(history=history, limit=limit)]

    def admins(self) -> list[dict]:
        return [{"name": a.name, "role": a.role, "created_at": a.created_at}
                for a in self.store.admins()]

    @_refusals
    def add_admin(self, name: str, password: str, role: str) -> None:
        if not password:
            raise AdminError("empty password")
        self.store.add_admin(name, hash_password(password), role)

    @_refusals
    def remove_admin(self, name: str) -> None:
        self.store.remove_admin(name)

    def tokens(self) -> list[dict]:
        return [{"name": t.name, "role": t.role, "created_at": t.created_at}
                for t in self.store.tokens()]

    @_refusals
    def create_token(self, name: str, role: str) -> str:
        token = new_token()
        self.store.add_token(name, hash_token(token), role)
        return token

    @_refusals
    def revoke_token(self, name: str) -> None:
        self.store.remove_token(name)
