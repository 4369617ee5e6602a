"""The store as a server cut off from it finds it, for one server's heartbeat: every call
fails as a lost connection does while `cut`, and goes through again once it is not."""

from __future__ import annotations

from control_server.heartbeat import Heartbeat
from control_server.store import StoreUnavailable


class Unreachable:
    def __init__(self, store) -> None:
        self._store = store
        self.cut = True

    @classmethod
    def around(cls, heartbeat: Heartbeat) -> Unreachable:
        """Cut `heartbeat` off from its store, from now on."""
        store = heartbeat._store = cls(heartbeat._store)
        return store

    def __getattr__(self, name: str):
        method = getattr(self._store, name)

        def call(*args):
            if self.cut and name != "close":
                raise StoreUnavailable("PostgreSQL unavailable: cut off by the test")
            return method(*args)
        return call
