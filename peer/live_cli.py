"""`sipsync-peer dataset partners NAME add|remove|list` and `sipsync-peer devices [--json]
[--watch]`: which devices a dataset stays in sync with by itself, and which devices this one may
sync with, online or not."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from . import config as peer_config
from .config import ConfigError, Partner, PeerConfig
from .command_line import fail, load_config
from .control import DaemonNotRunning, ask
from .live_schedule import PartnerDirection
from .sync_outcome import EXIT_UNREACHABLE

DIRECTIONS = [d.value for d in PartnerDirection]


def parse_partners(text: str, direction: str = "two-way") -> tuple[Partner, ...]:
    """USER/DEVICE,... as partners, each checked."""
    try:
        return tuple(Partner(peer_config.check_partner(p.strip()), PartnerDirection(direction))
                     for p in text.split(",") if p.strip())
    except (ConfigError, ValueError) as exc:
        fail(str(exc))


def with_partners(config: PeerConfig, name: str, partners: tuple[Partner, ...]) -> PeerConfig:
    """The dataset with these partners; users of other partners may sync it too."""
    dataset = config.datasets.get(name)
    if dataset is None:
        fail(f"no dataset {name!r} (have: {', '.join(config.datasets) or 'none'})")
    others = {p.device.partition("/")[0] for p in partners} - {config.user}
    allow = tuple(dict.fromkeys((*dataset.allow, *sorted(others))))
    return peer_config.with_dataset(config, replace(dataset, partners=partners, allow=allow))


def tell_daemon(data_dir: Path) -> None:
    """A running daemon picks the change up at once; one that is not running will at its start."""
    async def reload() -> None:
        try:
            async for _ in ask(data_dir, {"command": "reload"}):
                return
        except DaemonNotRunning:
            pass

    asyncio.run(reload())


@click.group("partners")
def partners() -> None:
    """Devices a dataset stays in sync with by itself."""


@partners.command("add")
@click.argument("name")
@click.argument("device", metavar="USER/DEVICE")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="two-way", show_default=True,
              help="two-way: changes flow both ways; send-only: ours go there, theirs never come "
                   "back; receive-only: theirs come here, ours never leave.")
@click.pass_obj
def partners_add(data_dir: Path, name: str, device: str, direction: str) -> None:
    config = load_config(data_dir)
    dataset = config.datasets.get(name)
    (new,) = parse_partners(device, direction)
    kept = tuple(p for p in (dataset.partners if dataset else ()) if p.device != new.device)
    peer_config.save(with_partners(config, name, kept + (new,)))
    tell_daemon(data_dir)
    click.echo(f"dataset {name}: in sync with {new.device} ({new.direction.value})")


@partners.command("remove")
@click.argument("name")
@click.argument("device", metavar="USER/DEVICE")
@click.pass_obj
def partners_remove(data_dir: Path, name: str, device: str) -> None:
    config = load_config(data_dir)
    dataset = config.datasets.get(name)
    if dataset is None or all(p.device != device for p in dataset.partners):
        fail(f"{device} is not a partner of dataset {name!r}")
    peer_config.save(with_partners(config, name,
                                   tuple(p for p in dataset.partners if p.device != device)))
    tell_daemon(data_dir)
    click.echo(f"dataset {name}: no longer in sync with {device}")


@partners.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def partners_list(data_dir: Path, name: str, as_json: bool) -> None:
    config = load_config(data_dir)
    dataset = config.datasets.get(name)
    if dataset is None:
        fail(f"no dataset {name!r}")
    rows = [{"device": p.device, "direction": p.direction.value} for p in dataset.partners]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['device']}  {row['direction']}")


def _when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return datetime.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def _device_line(row: dict) -> str:
    state = (f"online since {_when(row['online_since'])}" if row["online"]
             else f"offline, last seen {_when(row['last_seen'])}")
    shared = ", ".join(row["datasets"]) or "no dataset"
    agent = f"  {row['user_agent']}" if row["user_agent"] else ""
    return f"{row['device']:<24} {state:<40} {shared}{agent}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON array (one per change with --watch).")
@click.option("--watch", is_flag=True, help="Print again each time a device comes or goes.")
@click.pass_obj
def devices(data_dir: Path, as_json: bool, watch: bool) -> None:
    """The devices this one may sync with, online or not, as the server tells the daemon."""
    command = {"command": "devices", "watch": watch}

    async def show() -> None:
        try:
            async for message in ask(data_dir, command):
                rows = message.get("devices", [])
                if as_json:
                    click.echo(json.dumps(rows))
                else:
                    if watch:
                        click.echo(f"-- {_when(message.get('at'))}")
                    for row in rows:
                        click.echo(_device_line(row))
                    if not rows:
                        click.echo("no device to sync with: this user has one device and no "
                                   "device is shared with it")
                sys.stdout.flush()
                if not watch:
                    return
        except DaemonNotRunning as exc:
            fail(str(exc), EXIT_UNREACHABLE)

    try:
        asyncio.run(show())
    except KeyboardInterrupt:
        pass
