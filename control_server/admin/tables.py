"""How `sipsync-admin` prints rows: a table per view (columns and headers), the same rows as JSON,
and a table kept fresh with --watch. The rows are the same from either backend."""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

console = Console()


def emit(rows: list[dict], columns: list[tuple[str, str]], as_json: bool, title: str) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console.print(table(rows, columns, title))


def table(rows: list[dict], columns: list[tuple[str, str]], title: str) -> Table:
    shown = Table(title=title, title_justify="left")
    for _, header in columns:
        shown.add_column(header)
    for row in rows:
        shown.add_row(*("" if row.get(key) is None else str(row[key]) for key, _ in columns))
    return shown


def when(stamp: float | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


ONLINE_COLUMNS = [("user", "user"), ("device", "device"), ("address", "address"),
                  ("transport", "transport"), ("expires_in", "expires in (s)"),
                  ("user_agent", "user agent")]


def session_table_row(row: dict) -> dict:
    progress = row.get("progress") or {}
    shown = dict(row)
    shown["started"] = when(row["started_at"])
    shown["progress"] = " ".join(f"{k}={v}" for k, v in progress.items()) or None
    shown["outcome"] = row["reason"] or row["state"]
    shown["by"] = "daemon" if row.get("started_by") == "daemon" else "script"
    return shown


SESSION_COLUMNS = [("call_id", "call-id"), ("caller", "caller"), ("callee", "callee"),
                   ("data_type", "data"), ("protocol", "protocol"), ("state", "state"),
                   ("progress", "progress"), ("started", "started")]
HISTORY_COLUMNS = SESSION_COLUMNS[:5] + [("status", "status"), ("outcome", "outcome"),
                                         ("duration", "duration (s)"), ("by", "by"),
                                         ("started", "started")]


def watch(build) -> None:
    with Live(build(), console=console, refresh_per_second=2) as live:
        try:
            while True:
                time.sleep(1.0)
                live.update(build())
        except KeyboardInterrupt:
            pass
