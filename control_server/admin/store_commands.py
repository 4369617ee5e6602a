"""`sipsync-admin init` and `migrate`: setting up a store rather than managing what is in it, so
they work on the store itself (--data-dir or --store), never through --url."""

from __future__ import annotations

import sys

import click

from ..store import StoreError, is_store_url
from ..store.migration import copy_to_postgres
from .backend import AdminError


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"sipsync-admin: {message}", err=True)
    sys.exit(code)


@click.command()
@click.option("--realm", required=True,
              help="The digest realm the servers will use (what their --realm says).")
@click.pass_obj
def init(ctx, realm: str) -> None:
    """Fix the realm of a new store, before users are added: then the servers may start with
    --realm before or after. A store that has a realm already keeps it (and says so)."""
    if ctx.url is not None:
        _fail("init works on the store itself: give --data-dir or --store, not --url", 2)
    try:
        fixed = ctx.backend.init(realm)
    except (AdminError, StoreError) as exc:
        _fail(str(exc))
    click.echo(f"realm {fixed}")


@click.command()
@click.pass_obj
def migrate(ctx) -> None:
    """Copy the SQLite store of --data-dir (users with their digests, devices, shares, history,
    admins, tokens, realm and nonce secret) into the empty PostgreSQL database of --store."""
    if ctx.url is not None or not is_store_url(ctx.store) or ctx.data_dir is None:
        _fail("migrate copies --data-dir DIR into --store postgresql://...: give both", 2)
    try:
        copied = copy_to_postgres(ctx.data_dir, ctx.store)
    except StoreError as exc:
        _fail(str(exc))
    rows = ", ".join(f"{count} {table}" for table, count in copied.items())
    click.echo(f"copied {sum(copied.values())} row(s) into the store: {rows}")
