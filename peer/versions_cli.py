"""`sipsync-peer versions DATASET list [PATH] [--json]` and `versions DATASET restore PATH
[--at TIME]`: the files a sync replaced or deleted, and putting one back."""

from __future__ import annotations

import datetime
import json
from typing import NoReturn

import click

from protocols.rsync.errors import UnsafePath
from session_xml import DataType

from .command_line import dataset_named, fail
from .sync_outcome import EXIT_FAILED
from .versions import Version, VersionError, VersionStore


def _failed(message: str) -> NoReturn:
    fail(message, EXIT_FAILED)


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def _parse_time(value: str) -> float:
    """Seconds since the epoch, or ISO 8601 (local time when it names no zone)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither ISO 8601 (2026-12-01T22:15:03) "
                                 "nor seconds since the epoch", param_hint="--at") from None


def _as_dict(store: VersionStore, version: Version) -> dict:
    return {"path": version.relative, "kept_at": version.kept_at, "kept": _when(version.kept_at),
            "size": version.size, "mtime": version.mtime,
            "version": version.path.relative_to(store.root).as_posix()}


@click.group()
@click.argument("dataset_name", metavar="DATASET")
@click.pass_context
def versions(ctx: click.Context, dataset_name: str) -> None:
    """Files of a folder dataset that a sync replaced or deleted, kept in .sipsync-versions/ in
    the dataset's folder. Exit code 1 when a command fails, 2 for bad usage."""
    dataset = dataset_named(ctx.obj, dataset_name)
    if dataset.data_type != DataType.FILES:
        _failed(f"dataset {dataset_name!r} holds {dataset.data_type}, not files")
    ctx.obj = VersionStore(dataset.path, dataset.versions)


@versions.command("list")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, newest first.")
@click.pass_obj
def list_versions(store: VersionStore, path: str | None, as_json: bool) -> None:
    """The versions kept, newest first: of PATH (relative to the dataset's folder) or all."""
    try:
        found = store.list(path)
    except UnsafePath as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None
    except OSError as exc:
        _failed(f"cannot read the versions: {exc}")
    if as_json:
        click.echo(json.dumps([_as_dict(store, v) for v in found], indent=2))
        return
    if not found:
        click.echo(f"no versions of {path}" if path else "no versions")
        return
    width = max(len(f"{v.size:,}") for v in found)
    for version in found:
        click.echo(f"{_when(version.kept_at)}  {version.size:>{width},} B  {version.relative}")


@versions.command("restore")
@click.argument("path")
@click.option("--at", "at", metavar="TIME",
              help="The version kept at or before TIME (ISO 8601 or seconds since the epoch) "
                   "[default: the newest].")
@click.pass_obj
def restore(store: VersionStore, path: str, at: str | None) -> None:
    """Put PATH back as a version left it; the file there now is kept as a version first."""
    when = _parse_time(at) if at is not None else None
    try:
        chosen = store.find(path, when)
        store.restore(path, when)
    except UnsafePath as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None
    except VersionError as exc:
        _failed(str(exc))
    except OSError as exc:
        _failed(f"cannot restore {path}: {exc}")
    click.echo(f"restored {path} as kept at {_when(chosen.kept_at)}")
