"""`sipsync-peer records DATASET add|edit|delete|list|import|export`: a person's own edits to a
record dataset. They go to the store file directly (SQLite WAL), so the daemon may be running; a
vdir dataset's folder is read before and written after each command."""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

import click
from rich.console import Console
from rich.table import Table


from .command_line import dataset_named, fail
from . import record_formats
from .config import Dataset
from .record_formats import RecordFormatError
from .record_store import ItemNotFound, RecordStore, RecordStoreError, item_id_for, store_path
from .record_sync import RECORD_TYPES
from .sync_outcome import EXIT_FAILED
from .vdir import CONTENT_TYPES as _CONTENT_TYPES
from .vdir import VdirReport, vdir_of


def _failed(message: str) -> NoReturn:
    fail(message, EXIT_FAILED)


@dataclass(frozen=True)
class _Target:
    dataset: Dataset

    @contextmanager
    def store(self) -> Iterator[RecordStore]:
        """The dataset's store; what goes wrong becomes a one-line reason and exit code 1."""
        if not self.dataset.path.is_dir():
            _failed(f"the folder of dataset {self.dataset.name!r} is missing: {self.dataset.path}")
        try:
            with RecordStore(store_path(self.dataset.path)) as store:
                vdir = vdir_of(store, self.dataset)
                if vdir is not None:
                    _tell_skipped(vdir.refresh())
                yield store
                if vdir is not None:
                    _tell_skipped(vdir.write_back())
        except (RecordStoreError, RecordFormatError) as exc:
            _failed(str(exc))
        except sqlite3.Error as exc:
            _failed(f"the record store of dataset {self.dataset.name!r}: {exc}")
        except OSError as exc:
            _failed(f"the folder of dataset {self.dataset.name!r}: {exc}")


def _tell_skipped(report: VdirReport) -> None:
    for name, reason in report.skipped:
        click.echo(f"sipsync-peer: left {name} as it is: {reason}", err=True)


def _one_item(data: bytes, content_type: str | None) -> tuple[bytes, str | None]:
    """The single item a file holds (vCard and iCalendar are checked and normalised)."""
    content_type = content_type or record_formats.sniff(data)
    if content_type not in (record_formats.VCARD, record_formats.ICALENDAR):
        if content_type is None:
            _failed("not a vCard or iCalendar item; give --content-type for other content")
        return data, content_type
    try:
        pieces = record_formats.split(data, content_type)
    except RecordFormatError as exc:
        _failed(f"unreadable item: {exc}")
    if len(pieces) != 1:
        _failed(f"the input holds {len(pieces)} items; `import` takes several")
    return pieces[0], content_type


def _read(path_argument: BinaryIO | None, path_option: BinaryIO | None) -> bytes:
    source = path_option or path_argument
    if source is None:
        source = click.open_file("-", "rb")
    return source.read()


_FILE_ARGUMENT = click.argument("file_argument", metavar="[FILE]", required=False,
                                type=click.File("rb"))
_FILE_OPTION = click.option("--file", "file_option", type=click.File("rb"),
                            help="Read the item from FILE ('-' or none: standard input).")
_CONTENT_TYPE = click.option("--content-type",
                             help="For content that is not vCard or iCalendar, e.g. text/plain.")


@click.group()
@click.argument("dataset_name", metavar="DATASET")
@click.pass_context
def records(ctx: click.Context, dataset_name: str) -> None:
    """The items of a record dataset (contacts, calendar, notes, sms), kept in records.db in the
    dataset's folder. Exit code 1 when a command fails, 2 for bad usage."""
    dataset = dataset_named(ctx.obj, dataset_name)
    if dataset.data_type not in RECORD_TYPES:
        _failed(f"dataset {dataset_name!r} holds {dataset.data_type}, not records")
    ctx.obj = _Target(dataset)


@records.command("add")
@_FILE_ARGUMENT
@_FILE_OPTION
@_CONTENT_TYPE
@click.pass_obj
def add(target: _Target, file_argument: BinaryIO | None, file_option: BinaryIO | None,
        content_type: str | None) -> None:
    """Add one item (a vCard or an iCalendar event) from FILE or standard input. Its id is its
    UID when it has one, so it is the same item on every device."""
    content, content_type = _one_item(_read(file_argument, file_option), content_type)
    with target.store() as store:
        meta = store.add(content, content_type)
    click.echo(f"added {meta.id}")


@records.command("edit")
@click.argument("item_id", metavar="ID")
@_FILE_ARGUMENT
@_FILE_OPTION
@click.pass_obj
def edit(target: _Target, item_id: str, file_argument: BinaryIO | None,
         file_option: BinaryIO | None) -> None:
    """Replace the content of item ID with FILE or standard input."""
    with target.store() as store:
        current = store.meta(item_id)
        if current is None or current.deleted:
            raise ItemNotFound(f"no item {item_id!r}")
        content, _ = _one_item(_read(file_argument, file_option), current.content_type)
        if record_formats.uid_of(content) is not None and item_id_for(content) != item_id:
            _failed(f"the new content's UID names item {item_id_for(content)!r}, not {item_id!r}")
        meta = store.replace(item_id, content)
    click.echo(f"replaced {meta.id} (version {meta.version})")


@records.command("delete")
@click.argument("item_id", metavar="ID")
@click.pass_obj
def delete(target: _Target, item_id: str) -> None:
    """Delete item ID; the deletion reaches the other devices at their next sync."""
    with target.store() as store:
        store.delete(item_id)
    click.echo(f"deleted {item_id}")


@records.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
@click.option("--all", "include_deleted", is_flag=True, help="Deleted items (tombstones) too.")
@click.pass_obj
def list_items(target: _Target, as_json: bool, include_deleted: bool) -> None:
    """The items: id, content type, version, modification time, deleted, a one-line summary."""
    with target.store() as store:
        items = store.items(include_deleted=include_deleted)
    rows = [{"id": r.meta.id, "content_type": r.meta.content_type, "version": r.meta.version,
             "modified": r.meta.modified, "deleted": r.meta.deleted,
             "summary": record_formats.summary_of(r.content) if r.content is not None else ""}
            for r in items]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(box=None)
    for column in ("id", "type", "version", "modified", "summary"):
        table.add_column(column)
    for row in rows:
        modified = datetime.datetime.fromtimestamp(row["modified"]).isoformat(" ", "seconds")
        summary = "(deleted)" if row["deleted"] else row["summary"]
        table.add_row(row["id"], row["content_type"], str(row["version"]), modified, summary)
    Console(width=200).print(table)
    click.echo(f"{len(rows)} item(s)")


@records.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_items(target: _Target, file: Path) -> None:
    """Import a .vcf of one or more cards or an .ics of events. An item whose UID is already
    here is replaced by the imported one. A calendar's own properties (X-WR-CALNAME, NAME,
    COLOR...) and the time zones no event uses are kept with the dataset. The whole file is
    imported, or nothing: a line that cannot be kept fails the import with its number and why."""
    with target.store() as store:
        try:
            report = store.import_file(file)
        except RecordFormatError as exc:
            _failed(f"nothing imported from {file.name}: {exc}")
    click.echo(f"imported {report.items} item(s): {len(report.added)} added, "
               f"{len(report.replaced)} replaced, {len(report.unchanged)} unchanged")
    if report.calendar is not None:
        change = "kept" if report.calendar_changed else "already had"
        click.echo(f"calendar: {change} {report.calendar}")


@records.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@_CONTENT_TYPE
@click.pass_obj
def export(target: _Target, output: Path | None, content_type: str | None) -> None:
    """Every item as one .vcf or .ics file."""
    with target.store() as store:
        types = {r.meta.content_type for r in store.items()}
        wanted = content_type or (None if types else _CONTENT_TYPES.get(target.dataset.data_type))
        data = store.export_bytes(wanted)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    temp = output.with_name(output.name + ".tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, output)
    except OSError as exc:
        _failed(f"cannot write {output}: {exc.strerror}")
    click.echo(f"wrote {output}")
