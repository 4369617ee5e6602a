"""The two engines the store runs on, for tests that must hold on both: a fixture parameter that
opens SQLite in a temporary directory or PostgreSQL in a fresh database."""

from __future__ import annotations

import pytest

from control_server.location import Binding
from control_server.sessions import SessionRecord
from control_server.store import Database, PostgresDatabase
from protocols.sip.endpoint import Endpoint

ENGINES = ("sqlite", "postgresql")


class Opener:
    """Opens connections to one store, as many as a test wants (the server's, an admin's)."""

    def __init__(self, engine: str, data_dir, url: str | None) -> None:
        self.engine, self.data_dir, self.url = engine, data_dir, url
        self.opened: list = []

    def __call__(self):
        database = Database(self.data_dir) if self.url is None else PostgresDatabase(self.url)
        self.opened.append(database)
        return database

    @property
    def store(self) -> str:
        return self.url or ""

    def close(self) -> None:
        for database in self.opened:
            database.close()


@pytest.fixture(params=ENGINES)
def open_store(request, tmp_path):
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opener = Opener(request.param, tmp_path / "data", url)
    yield opener
    opener.close()


def binding(user: str, device: str, *, at: float = 1.0, expires: float = 61.0,
            node: str = "") -> Binding:
    return Binding(user=user, device=device, contact=f"sip:{user}@127.0.0.1:5070",
                   source=Endpoint("udp", "127.0.0.1", 5070), user_agent="ua",
                   registered_at=at, last_seen=at, expires_at=expires, call_id=f"c-{device}",
                   cseq=1, node=node)


def session(call_id: str, *, caller="alice/laptop", callee="alice/phone", started=1.0,
            ended: float | None = 2.0, state="ended") -> SessionRecord:
    return SessionRecord(call_id=call_id, caller=caller, callee=callee, data_type="files",
                         protocol="rsync", dataset="photos", state=state,
                         status=200 if ended else None, reason="", started_at=started,
                         established_at=started + 0.5, ended_at=ended,
                         progress={"files": 3} if ended else {})
