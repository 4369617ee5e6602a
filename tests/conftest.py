"""Fixtures every test folder may use: a real PostgreSQL for the store and the cluster tests."""

from __future__ import annotations

import itertools

import pytest

from .postgres import PostgresServer, running_postgres

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """One PostgreSQL cluster for the whole run, started on first use."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database for one test: what `--store` takes."""
    return postgres.create_database(f"sipsync_test_{next(_databases)}")
