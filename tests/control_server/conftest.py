from __future__ import annotations

import pytest

from control_server.directory import Account, Directory
from control_server.location import LocationTable
from control_server.registrar import Registrar, RegistrarPolicy
from protocols.sip.digest import Algorithm, ha1
from protocols.sip.digest_server import DigestAuthenticator

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


@pytest.fixture
def directory() -> Directory:
    directory = Directory()
    for name, password in USERS.items():
        directory.accounts[name] = Account(
            ha1(name, "sipsync", password, Algorithm.MD5),
            ha1(name, "sipsync", password, Algorithm.SHA256),
            False,
            name,
        )
    return directory


@pytest.fixture
def auth() -> DigestAuthenticator:
    return DigestAuthenticator("sipsync", b"s" * 32, multi_challenge_agents=("sipsync-peer",))


@pytest.fixture
def location() -> LocationTable:
    return LocationTable(grace=10.0)


@pytest.fixture
def registrar(auth, directory, location) -> Registrar:
    return Registrar(auth, directory, location, RegistrarPolicy(min_expires=20, max_expires=3600))
