"""`sipsync-server`: run the control server in the foreground until SIGINT or SIGTERM, with its
admin HTTP API beside it unless told not to; this is where the two are put together."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click

from .config import ServerConfig, load_config
from .server import ControlServer
from .store import StoreError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file with settings (a [server] table or top-level keys).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the database lives [./sipsync-data].")
@click.option("--store", help="A postgresql:// URL: the database shared by a cluster of servers, "
                              "in place of the data directory's SQLite file (or sqlite:DIR).")
@click.option("--node-name", help="This server's name among those sharing --store "
                                  "[host name:SIP port].")
@click.option("--sip-host", help="Address to listen on for SIP, IPv4 or IPv6 [127.0.0.1].")
@click.option("--sip-port", type=click.IntRange(0, 65535), help="SIP port, UDP and TCP [5060]; 0 picks one.")
@click.option("--realm", help="Digest realm [the data directory's, else 'sipsync'].")
@click.option("--admin-host", help="Address of the admin HTTP API [127.0.0.1].")
@click.option("--admin-port", type=click.IntRange(0, 65535), help="Admin HTTP port [8080]; 0 picks one.")
@click.option("--no-admin", is_flag=True, default=None, help="Do not serve the admin HTTP API.")
@click.option("--default-expires", type=int, help="Registration lifetime when a device names none [60].")
@click.option("--min-expires", type=int, help="Shorter requests get 423 [20].")
@click.option("--max-expires", type=int, help="Longer requests are cut to this [3600].")
@click.option("--refresh-write-lag", type=click.FloatRange(min=0),
              help="A refresh moving only the expiry is stored once per this many registration "
                   "intervals; after a crash a device that left stays listed up to that long "
                   "[1; 0: every refresh].")
@click.option("--digest-algorithms", help="Challenge order, e.g. 'MD5,SHA-256' or 'SHA-256,MD5'.")
@click.option("--multi-challenge-agents",
              help="User-Agent words of clients challenged with every digest algorithm; others "
                   "get only the first [sipsync-peer].")
@click.option("--ban-after-failures", type=click.IntRange(1),
              help="Failed logins from one address or for one user that ban it [10].")
@click.option("--slow-after-failures", type=click.IntRange(0),
              help="Failed logins after which each answer is delayed [3].")
@click.option("--failure-window", type=click.FloatRange(min=0, min_open=True),
              help="Seconds in which failed logins are counted [60].")
@click.option("--ban-seconds", type=click.FloatRange(min=0, min_open=True),
              help="How long a ban lasts [300].")
@click.option("--flood-requests", type=click.IntRange(0),
              help="Requests from one address per --flood-window that ban it [1000]; 0: no limit.")
@click.option("--flood-window", type=click.FloatRange(min=0, min_open=True),
              help="Seconds in which requests are counted for the flood limit [5].")
@click.option("--throttle-allow",
              help="Addresses never banned, comma separated (a SIP load balancer in front).")
@click.option("--no-invite-auth", is_flag=True, default=None, help="Do not challenge INVITEs (tests only).")
@click.option("--port-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the SIP port here once listening (for scripts using --sip-port 0).")
@click.option("--admin-port-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the admin HTTP port here once listening (for --admin-port 0).")
@click.option("--workers", type=click.IntRange(0),
              help="Processes sharing the SIP port and one state [1; 0: one per core].")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0, min_open=True),
              help="On a shared --store: seconds between this server's heartbeats [1].")
@click.option("--heartbeats-missed", type=click.IntRange(1),
              help="Heartbeats a server may miss before the others take it for gone [3].")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def main(config_file, port_file, admin_port_file, no_admin, no_invite_auth, **options) -> None:
    """The sipsync control server: digest registrar, stateful proxy and session registry."""
    options["admin"] = False if no_admin else None
    options["challenge_invites"] = False if no_invite_auth else None
    try:
        config = load_config(config_file, options)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    workers = config.workers or os.cpu_count() or 1
    serve = _serve if workers == 1 else _serve_workers
    try:
        asyncio.run(serve(config, port_file, admin_port_file))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen: {exc}") from None


async def _serve(config: ServerConfig, port_file: Path | None,
                 admin_port_file: Path | None) -> None:
    from .store import is_store_url

    # Several servers on one PostgreSQL store share their state over it.
    cluster = None
    if config.store and is_store_url(config.store):
        from .liveness import HeartbeatPolicy
        from .server_link import ServerLink

        cluster = ServerLink(config.store, config.node(),
                             HeartbeatPolicy(config.heartbeat_interval, config.heartbeats_missed))
    server = ControlServer(config, cluster)
    await server.start()
    admin = None
    if config.admin:
        from .admin.api import AdminApi  # aiohttp is loaded only when the API is served

        admin = AdminApi(server, config.data_dir, config.store)
        await admin.start(config.admin_host, config.admin_port)
        if admin_port_file is not None:
            admin_port_file.write_text(f"{admin.port}\n")
    if port_file is not None:
        port_file.write_text(f"{server.port}\n")
    await _until_told_to_stop()
    if admin is not None:
        await admin.stop()
    await server.stop()


async def _serve_workers(config: ServerConfig, port_file: Path | None,
                         admin_port_file: Path | None) -> None:
    """Several processes on one SIP port (control_server/workers.py), the admin API here."""
    from .workers import Supervisor, WorkersFailed

    supervisor = Supervisor(config, config.workers or os.cpu_count() or 1)
    admin = None
    try:
        try:
            await supervisor.start()
        except WorkersFailed as exc:
            raise click.ClickException(str(exc)) from None
        if config.admin:
            from .admin.api import AdminApi

            assert supervisor.view is not None
            admin = AdminApi(supervisor.view, config.data_dir, config.store)
            await admin.start(config.admin_host, config.admin_port)
            if admin_port_file is not None:
                admin_port_file.write_text(f"{admin.port}\n")
        if port_file is not None:
            port_file.write_text(f"{supervisor.port}\n")
        await _until_told_to_stop()
    finally:
        if admin is not None:
            await admin.stop()
        await supervisor.stop()


async def _until_told_to_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    sys.exit(main())
