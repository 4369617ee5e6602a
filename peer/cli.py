"""`sipsync-peer`: set a device up, serve its datasets (the daemon), place sessions, show status."""

from __future__ import annotations

import sys

if __name__ == "__main__":  # `python -m peer.cli`: a plain invite needs nothing below
    from peer.invite_client import run_plain_invite

    run_plain_invite(sys.argv[1:])

import asyncio
import importlib
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import click

from protocols.syncml.conflicts import ConflictPolicy
from session_xml import DataType, Direction, SyncMode, SyncProtocol

from . import config as peer_config
from .config import VERSIONING_OFF, ConfigError, Dataset, PeerConfig, check_name
from .control import ControlServer, DaemonNotRunning, ask
from .invite_client import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR
from .command_line import fail, load_config
from .live_cli import devices, parse_partners, partners, tell_daemon, with_partners
from .sync_outcome import EXIT_UNREACHABLE
from .versions import VersionKind, VersionPolicy
from .versions_cli import versions



class _Commands(click.Group):
    """The top-level commands; those whose modules are heavy to import (records pulls in the
    record formats: icalendar, vobject) are loaded only when named, so `invite` and `status`
    start quickly."""

    lazy = {"records": "peer.records_cli:records"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar=DATA_DIR_VARIABLE, default=Path(DEFAULT_DATA_DIR), show_default=True,
              help="This device's settings, identity and state.")
@click.option("--log-level", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def main(ctx: click.Context, data_dir: Path, log_level: str) -> None:
    """A sipsync device: register with the control server, serve datasets, sync directly."""
    ctx.obj = data_dir
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--server", required=True, metavar="HOST:PORT", help="The control server.")
@click.option("--user", required=True)
@click.option("--device", required=True, help="This device's name, unique among the user's.")
@click.option("--password")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--transport", type=click.Choice(["udp", "tcp"]), default="udp", show_default=True)
@click.option("--data-host", default="127.0.0.1", show_default=True,
              help="The address other devices reach this one's data channel at.")
@click.option("--register-expires", type=click.IntRange(1, 3600), default=60, show_default=True)
@click.pass_obj
def init(data_dir: Path, server: str, user: str, device: str, password: str | None,
         password_file: Path | None, transport: str, data_host: str, register_expires: int) -> None:
    """Set this device up: server, account, name; make its key and certificate."""
    if (password is None) == (password_file is None):
        fail("give exactly one of --password or --password-file")
    try:
        config = PeerConfig(data_dir=data_dir, server=server, transport=transport,
                            user=check_name("user", user), device=check_name("device", device),
                            password=password,
                            password_file=password_file.resolve() if password_file else None,
                            data_host=data_host, register_expires=register_expires)
        config.server_endpoint  # noqa: B018 - refuse a bad address now
        path = peer_config.save(config)
    except ConfigError as exc:
        fail(str(exc))
    from protocols.channel.identity import DeviceIdentity  # cryptography: only where a key is made

    identity = DeviceIdentity.load_or_create(data_dir / "identity", device)
    click.echo(f"wrote {path}")
    click.echo(f"device {user}/{device}, certificate fingerprint {identity.fingerprint}")


@main.group()
def dataset() -> None:
    """Datasets this device serves."""


@dataset.command("add")
@click.argument("name")
@click.option("--type", "data_type", required=True,
              type=click.Choice([t.value for t in DataType]))
@click.option("--path", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--protocols", default=None, help="Accepted protocols in order, e.g. rsync,syncml.")
@click.option("--allow", default="", help="Other users who may sync it, comma separated.")
@click.option("--policy", type=click.Choice([p.value for p in ConflictPolicy]),
              help="Records: how conflicts are settled when another device syncs with this one "
                   "[default: newest-wins].")
@click.option("--layout", type=click.Choice(list(peer_config.LAYOUTS)),
              help="Contacts, calendar: vdir keeps one .vcf or .ics file per item in the folder, "
                   "as vdirsyncer, khal and khard do [default: store].")
@click.option("--versioning", type=click.Choice([k.value for k in VersionKind] + [VERSIONING_OFF]),
              help="Files: keep what a sync replaces or deletes in .sipsync-versions/, every version "
                   "(trashcan) or fewer as they age (staggered) [default: trashcan].")
@click.option("--versions-days", type=click.FloatRange(min=0, min_open=True), metavar="N",
              help="Files: how many days versions are kept [default: 30 for trashcan, 365 for "
                   "staggered].")
@click.option("--partners", default="", metavar="USER/DEVICE,...",
              help="Devices this dataset stays in sync with by itself, two-way (see `dataset "
                   "partners` for the direction).")
@click.pass_obj
def dataset_add(data_dir: Path, name: str, data_type: str, path: Path, protocols: str | None,
                allow: str, policy: str | None, layout: str | None, versioning: str | None,
                versions_days: float | None, partners: str) -> None:
    """Serve a dataset: a folder of files, or a folder holding a record store (records.db)."""
    config = load_config(data_dir)
    if policy is not None and data_type == DataType.FILES:
        fail("--policy is for record datasets (contacts, calendar, notes, sms)")
    if (versioning is not None or versions_days is not None) and data_type != DataType.FILES:
        fail("--versioning and --versions-days are for files datasets")
    if versioning == VERSIONING_OFF and versions_days is not None:
        fail("--versions-days needs versioning on (trashcan or staggered)")
    try:
        chosen = tuple(SyncProtocol(p.strip()) for p in protocols.split(",")) if protocols else (
            (SyncProtocol.RSYNC,) if data_type == DataType.FILES else (SyncProtocol.SYNCML,))
    except ValueError as exc:
        fail(str(exc))
    path.mkdir(parents=True, exist_ok=True)
    entry = Dataset(name=name, data_type=DataType(data_type), path=path.resolve(),
                    protocols=chosen, allow=tuple(u.strip() for u in allow.split(",") if u.strip()),
                    policy=ConflictPolicy(policy) if policy else None,
                    layout=None if layout in (None, "store") else layout,
                    versions=None if versioning == VERSIONING_OFF or data_type != DataType.FILES
                    else VersionPolicy(VersionKind(versioning or VersionKind.TRASHCAN), versions_days))
    try:
        peer_config.check_layout(entry)
        config = peer_config.with_dataset(config, entry)
        if partners:
            config = with_partners(config, name, parse_partners(partners))
        peer_config.save(config)
    except ConfigError as exc:
        fail(str(exc))
    tell_daemon(data_dir)
    click.echo(f"dataset {name}: {data_type} in {entry.path} over {','.join(p.value for p in chosen)}")


@main.command()
@click.pass_obj
def daemon(data_dir: Path) -> None:
    """Register, stay online, answer sessions and serve datasets until SIGINT or SIGTERM."""
    config = load_config(data_dir)
    asyncio.run(_run_daemon(config))


async def _run_daemon(config: PeerConfig) -> None:
    from .peer import Peer  # the engine's imports (numba...) only where the daemon runs

    peer = Peer(config)
    control = ControlServer(peer)
    await peer.start()
    await control.start()
    warming = _warm_delta_engine(config)
    logging.getLogger("sipsync.peer").info(
        "%s/%s serving %d dataset(s); SIP at %s:%d; fingerprint %s", config.user, config.device,
        len(config.datasets), peer.agent.host, peer.agent.port, peer.identity.fingerprint)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if warming is not None:
        warming.cancel()
    await control.close()
    await peer.stop()


def _warm_delta_engine(config: PeerConfig) -> asyncio.Future | None:
    """Where the device serves folders, the delta kernels are loaded now, in a worker thread,
    rather than by the first sync that needs them (about half a second)."""
    if not any(d.data_type == DataType.FILES for d in config.datasets.values()):
        return None
    from protocols.rsync.warm import warm_up

    def warm() -> None:
        try:
            warm_up()
        except Exception:  # the first sync then loads them itself
            logging.getLogger("sipsync.peer").exception("warming up the delta engine failed")

    return asyncio.ensure_future(asyncio.to_thread(warm))


@main.command()
@click.argument("target", metavar="USER/DEVICE")
@click.option("--dataset", "dataset_name", required=True)
@click.option("--protocol", type=click.Choice([p.value for p in SyncProtocol]))
@click.option("--direction", type=click.Choice([d.value for d in Direction]), default="push",
              show_default=True)
@click.option("--mode", type=click.Choice([m.value for m in SyncMode]))
@click.option("--json", "as_json", is_flag=True, help="One JSON object with the outcome.")
@click.option("--wait-online", is_flag=True,
              help="If the target is offline, wait until it registers, then sync.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S",
              help="With --wait-online: give up after S seconds (exit code 4).")
@click.pass_obj
def invite(data_dir: Path, target: str, dataset_name: str, protocol: str | None, direction: str,
           mode: str | None, as_json: bool, wait_online: bool, timeout: float | None) -> None:
    """Synchronize a dataset with another device, through the running daemon.

    Exit code 0: done; 1: failed during the transfer; 2: bad usage; 3: refused (the SIP status
    and reason are printed); 4: the daemon or the server could not be reached.
    """
    command = {"command": "invite", "target": target, "dataset": dataset_name,
               "protocol": protocol, "direction": direction, "mode": mode,
               "wait_online": wait_online, "timeout": timeout}
    result = asyncio.run(_invite(data_dir, command,
                                 show_progress=not as_json and _stderr_is_terminal()))
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "event"}))
    else:
        click.echo(result.get("line") or result.get("reason"))
    sys.exit(int(result.get("exit_code", EXIT_UNREACHABLE)))


def _stderr_is_terminal() -> bool:
    from rich.console import Console  # rich only where a progress bar may be drawn

    return Console(stderr=True).is_terminal


async def _invite(data_dir: Path, command: dict, show_progress: bool) -> dict:
    if not show_progress:
        return await _outcome(data_dir, command, lambda message: None)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("connecting", total=None)

        def show(message: dict) -> None:
            bar.update(task, description=message["phase"], completed=message["bytes"],
                       total=message.get("bytes_total"))

        return await _outcome(data_dir, command, show)


async def _outcome(data_dir: Path, command: dict, show: Callable[[dict], None]) -> dict:
    """The daemon's result (or error) message for `command`; progress messages go to `show`."""
    try:
        async for message in ask(data_dir, command):
            if message.get("event") == "progress":
                show(message)
            elif message.get("event") in ("result", "error"):
                return message
    except DaemonNotRunning as exc:
        return {"ok": False, "exit_code": EXIT_UNREACHABLE, "reason": str(exc)}
    return {"ok": False, "exit_code": EXIT_UNREACHABLE, "reason": "the daemon closed the connection"}


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(data_dir: Path, as_json: bool) -> None:
    """Registration, fingerprint, datasets and sessions of this device."""
    config = load_config(data_dir)

    async def query() -> dict:
        try:
            async for message in ask(data_dir, {"command": "status"}):
                return message.get("status", {})
        except DaemonNotRunning:
            pass
        from protocols.channel.identity import DeviceIdentity

        identity = DeviceIdentity.load_or_create(data_dir / "identity", config.device)
        return {"user": config.user, "device": config.device, "server": config.server,
                "registered": False, "daemon": "not running", "fingerprint": identity.fingerprint,
                "datasets": [{"name": d.name, "type": d.data_type.value, "path": str(d.path),
                              "protocols": [p.value for p in d.protocols]}
                             for d in config.datasets.values()]}

    info = asyncio.run(query())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"device       {info['user']}/{info['device']}")
    click.echo(f"server       {info['server']}")
    online = ("online, expires in %ss" % info.get("expires_in") if info.get("registered")
              else f"offline{' (' + info['last_error'] + ')' if info.get('last_error') else ''}")
    if info.get("daemon") == "not running":
        online = "daemon not running"
    click.echo(f"registration {online}")
    click.echo(f"fingerprint  {info['fingerprint']}")
    for entry in info.get("datasets", []):
        click.echo(f"dataset      {entry['name']}: {entry['type']} in {entry['path']} "
                   f"({','.join(entry['protocols'])})")
    for link in info.get("live", []):
        state = link["state"]
        if state == "partner offline" and link.get("offline_since"):
            state += " since " + time.strftime("%Y-%m-%d %H:%M:%S",
                                               time.localtime(link["offline_since"]))
        if state != "in sync" and link.get("pending") and "pending" not in state:
            state += f", {link['pending']} pending"
        error = f" (last error: {link['last_error']})" if link.get("last_error") else ""
        click.echo(f"live         {link['dataset']} with {link['partner']} ({link['direction']}): "
                   f"{state}{error}")
    sessions = info.get("sessions", {})
    for session in sessions.get("incoming", []) + sessions.get("outgoing", []):
        click.echo(f"session      {session['call_id']} {session['dataset']}")


main.add_command(devices)
dataset.add_command(partners)
main.add_command(versions)

if __name__ == "__main__":
    main()
