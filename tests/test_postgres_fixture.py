"""The PostgreSQL fixture gives each test a database of its own on a real server."""

import asyncio

import asyncpg


def test_each_test_gets_an_empty_database_it_can_write(postgres_url):
    async def roundtrip() -> list:
        connection = await asyncpg.connect(postgres_url)
        try:
            tables = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            await connection.execute("CREATE TABLE probe (n integer)")
            await connection.execute("INSERT INTO probe VALUES (7)")
            return tables + [await connection.fetchval("SELECT n FROM probe")]
        finally:
            await connection.close()

    assert asyncio.run(roundtrip()) == [7]
