"""`sipsync-admin`: users, devices, shares, admins and API tokens; online devices and sessions.
The same commands and output over the server's store (--data-dir, or --store for PostgreSQL) or its
HTTP API (--url). Setting up a store (`init`, `migrate`) is in `store_commands`."""

from __future__ import annotations

import csv
import functools
import json
import sys
import time
from pathlib import Path

import click

from ..store import ROLES, StoreError, split_device
from .backend import AdminBackend, AdminError
from .tables import (
    HISTORY_COLUMNS,
    ONLINE_COLUMNS,
    SESSION_COLUMNS,
    console,
    emit,
    session_table_row,
    table,
    watch,
    when,
)

def _fail(message: str, code: int = 1) -> None:
    click.echo(f"sipsync-admin: {message}", err=True)
    sys.exit(code)


class _Context:
    """Opens the backend on first use, so `--help` never touches a server."""

    def __init__(self, data_dir: Path | None, url: str | None, token: str | None,
                 store: str | None = None) -> None:
        if url is not None and data_dir is not None:
            _fail("give --data-dir or --url, not both", 2)
        if url is not None and store:
            _fail("give --store or --url, not both", 2)
        self.data_dir, self.url, self.token, self.store = data_dir, url, token, store or ""
        self._backend: AdminBackend | None = None

    @property
    def backend(self) -> AdminBackend:
        if self._backend is None:
            if self.url is not None:
                from .http_backend import HttpBackend  # the HTTP client loads only when used

                self._backend = HttpBackend(self.url, self.token)
            else:
                from .datadir_backend import DataDirBackend

                self._backend = DataDirBackend(self.data_dir or Path("sipsync-data"), self.store)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def _password(password: str | None, password_file: Path | None) -> str:
    if (password is None) == (password_file is None):
        _fail("give exactly one of --password or --password-file", 2)
    if password_file is not None:
        return password_file.read_text().rstrip("\r\n")
    assert password is not None
    return password


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="SIPSYNC_DATA_DIR", help="The server's data directory [./sipsync-data].")
@click.option("--store", envvar="SIPSYNC_STORE",
              help="The servers' PostgreSQL store, a postgresql:// URL (in place of --data-dir).")
@click.option("--url", envvar="SIPSYNC_URL",
              help="The admin HTTP API of a running server, e.g. http://127.0.0.1:8080.")
@click.option("--token", envvar="SIPSYNC_TOKEN", help="API token for --url.")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, store: str | None, url: str | None,
         token: str | None) -> None:
    """Manage a sipsync control server: users, devices, shares; watch devices and sessions."""
    ctx.obj = _Context(data_dir, url, token, store)
    ctx.call_on_close(ctx.obj.close)


def _store_errors(function):
    """Refusals become one line on stderr and exit code 1."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (AdminError, StoreError) as exc:
            _fail(str(exc))

    return wrapper


# -- users -----------------------------------------------------------------------------------------

@main.group()
def users() -> None:
    """Users: add, import, list, remove, passwd, disable."""


@users.command("add")
@click.argument("name")
@click.option("--password")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@_store_errors
def users_add(ctx: _Context, name: str, password: str | None, password_file: Path | None) -> None:
    ctx.backend.add_user(name, _password(password, password_file))
    click.echo(f"added user {name}")


@users.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@_store_errors
def users_import(ctx: _Context, file: Path) -> None:
    """Add or update users from a CSV of name,password (a header row is skipped)."""
    started = time.perf_counter()
    with open(file, newline="") as handle:
        rows = (row for row in csv.reader(handle) if row and row[:2] != ["name", "password"])
        count = ctx.backend.import_users((row[0].strip(), row[1] if len(row) > 1 else "") for row in rows)
    click.echo(f"imported {count} user(s) in {time.perf_counter() - started:.1f} s")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_store_errors
def users_list(ctx: _Context, as_json: bool) -> None:
    rows = [
        {"name": u["name"], "disabled": u["disabled"], "devices": u["devices"],
         "created": when(u["created_at"])}
        for u in ctx.backend.users()
    ]
    emit(rows, [("name", "user"), ("devices", "devices"), ("disabled", "disabled"),
                 ("created", "created")], as_json, "Users")


@users.command("remove")
@click.argument("name")
@click.pass_obj
@_store_errors
def users_remove(ctx: _Context, name: str) -> None:
    ctx.backend.remove_user(name)
    click.echo(f"removed user {name}")


@users.command("passwd")
@click.argument("name")
@click.option("--password")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@_store_errors
def users_passwd(ctx: _Context, name: str, password: str | None, password_file: Path | None) -> None:
    ctx.backend.set_password(name, _password(password, password_file))
    click.echo(f"changed the password of {name}")


@users.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable the user again.")
@click.pass_obj
@_store_errors
def users_disable(ctx: _Context, name: str, enable: bool) -> None:
    ctx.backend.set_disabled(name, not enable)
    click.echo(f"{'enabled' if enable else 'disabled'} user {name}")


# -- devices and shares ----------------------------------------------------------------------------

@main.group()
def devices() -> None:
    """Devices: add, list, remove, disable (USER/DEVICE)."""


@devices.command("add")
@click.argument("spec", metavar="USER/DEVICE")
@click.pass_obj
@_store_errors
def devices_add(ctx: _Context, spec: str) -> None:
    ctx.backend.add_device(*split_device(spec))
    click.echo(f"added device {spec}")


@devices.command("remove")
@click.argument("spec", metavar="USER/DEVICE")
@click.pass_obj
@_store_errors
def devices_remove(ctx: _Context, spec: str) -> None:
    ctx.backend.remove_device(*split_device(spec))
    click.echo(f"removed device {spec}")


@devices.command("disable")
@click.argument("spec", metavar="USER/DEVICE")
@click.option("--enable", is_flag=True, help="Enable the device again.")
@click.pass_obj
@_store_errors
def devices_disable(ctx: _Context, spec: str, enable: bool) -> None:
    """Refuse the device's REGISTER and INVITEs, and take it offline now."""
    ctx.backend.set_device_disabled(*split_device(spec), not enable)
    click.echo(f"{'enabled' if enable else 'disabled'} device {spec}")


@devices.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_store_errors
def devices_list(ctx: _Context, as_json: bool) -> None:
    rows = [
        {"user": d["user"], "device": d["device"], "online": d["online"],
         "disabled": d["disabled"], "last_seen": when(d["last_seen"]),
         "created": when(d["created_at"])}
        for d in ctx.backend.devices()
    ]
    emit(rows, [("user", "user"), ("device", "device"), ("online", "online"),
                 ("disabled", "disabled"), ("last_seen", "last seen")], as_json, "Devices")


@main.group()
def shares() -> None:
    """Shares: let another user's devices sync with one of yours."""


@shares.command("add")
@click.argument("spec", metavar="USER/DEVICE")
@click.argument("grantee", metavar="USER")
@click.pass_obj
@_store_errors
def shares_add(ctx: _Context, spec: str, grantee: str) -> None:
    owner, device = split_device(spec)
    ctx.backend.add_share(owner, device, grantee)
    click.echo(f"shared {spec} with {grantee}")


@shares.command("remove")
@click.argument("spec", metavar="USER/DEVICE")
@click.argument("grantee", metavar="USER")
@click.pass_obj
@_store_errors
def shares_remove(ctx: _Context, spec: str, grantee: str) -> None:
    owner, device = split_device(spec)
    ctx.backend.remove_share(owner, device, grantee)
    click.echo(f"stopped sharing {spec} with {grantee}")


@shares.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_store_errors
def shares_list(ctx: _Context, as_json: bool) -> None:
    rows = [{"device": s["device"], "user": s["user"]} for s in ctx.backend.shares()]
    emit(rows, [("device", "device"), ("user", "shared with")], as_json, "Shares")


# -- online devices and sessions -------------------------------------------------------------------

@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", "keep_watching", is_flag=True, help="Refresh every second until Ctrl-C.")
@click.pass_obj
@_store_errors
def online(ctx: _Context, as_json: bool, keep_watching: bool) -> None:
    """Devices online now: address, transport, expiry countdown, user agent."""
    if keep_watching:
        watch(lambda: table(ctx.backend.online(), ONLINE_COLUMNS, "Online devices"))
        return
    emit(ctx.backend.online(), ONLINE_COLUMNS, as_json, "Online devices")


@main.command()
@click.option("--history", is_flag=True, help="Ended sessions, newest first.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--watch", "keep_watching", is_flag=True, help="Refresh every second until Ctrl-C.")
@click.pass_obj
@_store_errors
def sessions(ctx: _Context, history: bool, limit: int, as_json: bool,
             keep_watching: bool) -> None:
    """Active sessions with their progress, or (--history) the ended ones with their outcome."""
    columns = HISTORY_COLUMNS if history else SESSION_COLUMNS
    title = "Session history" if history else "Active sessions"

    def rows() -> list[dict]:
        return ctx.backend.sessions(history=history, limit=limit)

    if as_json and not keep_watching:
        click.echo(json.dumps(rows(), indent=2))
    elif keep_watching:
        # The flag is named apart from tables.watch, which it calls.
        watch(lambda: table([session_table_row(r) for r in rows()], columns, title))
    else:
        console.print(table([session_table_row(r) for r in rows()], columns, title))


# -- admin accounts and API tokens -----------------------------------------------------------------

@main.group()
def admins() -> None:
    """Accounts that log in to the dashboard: admin (read-write) or viewer (read-only)."""


@admins.command("add")
@click.argument("name")
@click.option("--password")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
@click.pass_obj
@_store_errors
def admins_add(ctx: _Context, name: str, password: str | None, password_file: Path | None,
               role: str) -> None:
    ctx.backend.add_admin(name, _password(password, password_file), role)
    click.echo(f"added admin {name} ({role})")


@admins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_store_errors
def admins_list(ctx: _Context, as_json: bool) -> None:
    rows = [{"name": a["name"], "role": a["role"], "created": when(a["created_at"])}
            for a in ctx.backend.admins()]
    emit(rows, [("name", "admin"), ("role", "role"), ("created", "created")], as_json, "Admins")


@admins.command("remove")
@click.argument("name")
@click.pass_obj
@_store_errors
def admins_remove(ctx: _Context, name: str) -> None:
    ctx.backend.remove_admin(name)
    click.echo(f"removed admin {name}")


@main.group()
def tokens() -> None:
    """API tokens for scripts and `--url`; only their SHA-256 is stored."""


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for, e.g. 'prometheus'.")
@click.option("--role", type=click.Choice(ROLES), default="admin", show_default=True)
@click.pass_obj
@_store_errors
def tokens_create(ctx: _Context, name: str, role: str) -> None:
    """Print a new token, alone on the last line: it is shown this once."""
    token = ctx.backend.create_token(name, role)
    click.echo(f"created token {name} ({role}); keep it now, it is not shown again:")
    click.echo(token)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_store_errors
def tokens_list(ctx: _Context, as_json: bool) -> None:
    rows = [{"name": t["name"], "role": t["role"], "created": when(t["created_at"])}
            for t in ctx.backend.tokens()]
    emit(rows, [("name", "token"), ("role", "role"), ("created", "created")], as_json, "Tokens")


@tokens.command("revoke")
@click.argument("name")
@click.pass_obj
@_store_errors
def tokens_revoke(ctx: _Context, name: str) -> None:
    ctx.backend.revoke_token(name)
    click.echo(f"revoked token {name}")


from .store_commands import init, migrate  # noqa: E402  (they take the context above)

main.add_command(init)
main.add_command(migrate)

if __name__ == "__main__":
    main()
