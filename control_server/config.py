"""The control server's settings: defaults that work with nothing, then a TOML file, the
environment (SIPSYNC_<NAME>) and the command line, each overriding the one before."""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = Path("sipsync-data")
    # A postgresql:// URL: the store shared by a cluster of servers; "": SQLite in data_dir.
    store: str = ""
    # This server's name among those sharing a store; "": the host name and the SIP port.
    node_name: str = ""
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    realm: str | None = None  # None: the realm stored in the data directory, or "sipsync"
    admin_host: str = "127.0.0.1"
    admin_port: int = 8080
    admin: bool = True
    default_expires: int = 60
    min_expires: int = 20
    max_expires: int = 3600
    expiry_grace: float = 10.0
    # A refresh that moves only the expiry is written to the store once per this many
    # registration intervals (control_server/store/refresh_writes.py); 0: every refresh.
    refresh_write_lag: float = 1.0
    nonce_lifetime: float = 300.0
    digest_algorithms: str = "MD5,SHA-256"  # challenge order: first is what simple clients take
    # User-Agent words (comma separated) of clients challenged with every digest algorithm;
    # any other client gets only the first, as some give up on a challenge they cannot answer.
    multi_challenge_agents: str = "sipsync-peer"
    # Failed authentications from one address or for one user within failure_window: past
    # slow_after_failures answers wait, at ban_after_failures that address or user is banned.
    ban_after_failures: int = 10
    slow_after_failures: int = 3
    failure_window: float = 60.0
    ban_seconds: float = 300.0
    # Requests of any method from one address within flood_window before it is banned; 0: off.
    flood_requests: int = 1000
    flood_window: float = 5.0
    throttle_allow: str = ""  # addresses never banned (comma separated): a load balancer in front
    ring_timeout: float = 60.0
    challenge_invites: bool = True
    auto_create_devices: bool = True
    # On a shared store: how often this server tells the others it is alive, and how many of
    # those it may miss before they take it for gone and end its sessions.
    heartbeat_interval: float = 1.0
    heartbeats_missed: int = 3
    log_level: str = "INFO"
    # Processes serving the SIP port; 0: one per core. One by default: on two cores, two workers
    # answer fewer REGISTERs than one process (README, Speed).
    workers: int = 1

    def node(self) -> str:
        """The name the store marks this server's bindings and sessions with. The configured
        port, not the one picked for 0, so that a restart finds its own sessions again."""
        return self.node_name or f"{socket.gethostname()}:{self.sip_port}"


def _coerce(name: str, value: Any) -> Any:
    default = ServerConfig.__dataclass_fields__[name].default
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, Path):
        return Path(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return None if value is None else str(value)


def load_config(file: Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> ServerConfig:
    names = {f.name for f in fields(ServerConfig)}
    values: dict[str, Any] = {}
    if file is not None:
        with open(file, "rb") as handle:
            table = tomllib.load(handle)
        table = table.get("server", table)
        unknown = set(table) - names
        if unknown:
            raise ValueError(f"{file}: unknown setting(s): {', '.join(sorted(unknown))}")
        values.update(table)
    env = os.environ if environ is None else environ
    for name in names:
        key = f"SIPSYNC_{name.upper()}"
        if key in env:
            values[name] = env[key]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return replace(ServerConfig(), **{k: _coerce(k, v) for k, v in values.items()})
