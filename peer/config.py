"""A device's settings: its server, account, name, and the datasets it serves. Kept in
DATA_DIR/peer.toml (written by `sipsync-peer init`); SIPSYNC_PEER_<NAME> variables override."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from protocols.syncml.conflicts import ConflictPolicy
from session_xml import DataType, SyncProtocol

from .live_schedule import PartnerDirection
from .versions import VersionKind, VersionPolicy

if TYPE_CHECKING:  # the SIP stack is imported where it is used: a short command needs none of it
    from protocols.sip.endpoint import Endpoint
    from protocols.sip.uac import Account

CONFIG_NAME = "peer.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEFAULT_PROTOCOLS = {DataType.FILES: (SyncProtocol.RSYNC,)}
USER_AGENT = "sipsync-peer/0.1"

# How a record dataset's folder holds its items: only in the store, or also as a vdir.
LAYOUTS = ("store", "vdir")
_VDIR_TYPES = (DataType.CONTACTS, DataType.CALENDAR)
VERSIONING_OFF = "off"  # a folder's `versioning` when it keeps no versions


class ConfigError(Exception):
    """A setting that cannot work, with the reason a person reads."""


@dataclass(frozen=True)
class Partner:
    """A device this dataset stays in sync with by itself, and what flows between the two."""

    device: str  # USER/DEVICE
    direction: PartnerDirection = PartnerDirection.TWO_WAY


@dataclass(frozen=True)
class Dataset:
    name: str
    data_type: DataType
    path: Path
    protocols: tuple[SyncProtocol, ...]
    allow: tuple[str, ...] = ()  # users besides the owner who may sync it; the server checks shares too
    policy: ConflictPolicy | None = None  # records: how this device settles conflicts as callee
    layout: str | None = None  # "vdir": contacts or calendar also kept as one file per item
    # files: what a sync replaces or deletes is kept in the dataset's version folder by this
    # policy; None keeps nothing
    versions: VersionPolicy | None = VersionPolicy()
    # folders: symlinks whose target leads out of the dataset are synced as links, not refused
    allow_external_links: bool = False
    partners: tuple[Partner, ...] = ()  # none: the dataset syncs only when a session is asked for


@dataclass(frozen=True)
class PeerConfig:
    data_dir: Path
    server: str = "127.0.0.1:5060"
    transport: str = "udp"
    user: str = ""
    password: str | None = None
    password_file: Path | None = None
    device: str = ""
    sip_host: str = "127.0.0.1"
    data_host: str = "127.0.0.1"  # where this device listens for data channels
    register_expires: int = 60
    datasets: dict[str, Dataset] = field(default_factory=dict)

    @property
    def server_endpoint(self) -> Endpoint:
        host, _, port = self.server.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"server must be HOST:PORT, not {self.server!r}")
        from protocols.sip.endpoint import Endpoint

        return Endpoint(self.transport, host.strip("[]"), int(port))

    @property
    def secret(self) -> str:
        if self.password:
            return self.password
        if self.password_file is not None:
            return self.password_file.read_text().rstrip("\r\n")
        raise ConfigError("no password: give --password or --password-file to `init`")

    @property
    def realm_domain(self) -> str:
        return self.server_endpoint.host

    def address_of_record(self) -> str:
        return f"sip:{self.user}@{self.realm_domain}"

    def account(self) -> Account:
        """What the device's requests go out under; the password is read when challenged."""
        from protocols.sip.uac import Account

        return Account(self.user, lambda: self.secret, USER_AGENT)


def check_partner(device: str) -> str:
    """USER/DEVICE, each a valid name."""
    user, _, name = device.partition("/")
    check_name("user", user)
    check_name("device", name)
    return device


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"invalid {kind} name {name!r}: letters, digits, '._-', at most 64")
    return name


def check_layout(dataset: Dataset, where: str = "") -> None:
    if dataset.layout is None:
        return
    if dataset.layout not in LAYOUTS:
        raise ConfigError(f"{where}dataset {dataset.name!r}: layout must be one of {', '.join(LAYOUTS)}")
    if dataset.layout == "vdir" and dataset.data_type not in _VDIR_TYPES:
        raise ConfigError(f"{where}dataset {dataset.name!r}: a vdir holds contacts or calendar, "
                          f"not {dataset.data_type.value}")


def load(data_dir: Path, environ: dict[str, str] | None = None) -> PeerConfig:
    path = data_dir / CONFIG_NAME
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: run `sipsync-peer --data-dir {data_dir} init`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    env = os.environ if environ is None else environ
    peer = dict(table.get("peer", {}))
    for key in ("server", "transport", "user", "password", "password_file", "device",
                "sip_host", "data_host", "register_expires"):
        value = env.get(f"SIPSYNC_PEER_{key.upper()}")
        if value is not None:
            peer[key] = value
    datasets = {}
    for name, spec in table.get("datasets", {}).items():
        try:
            data_type = DataType(spec["type"])
            protocols = tuple(SyncProtocol(p) for p in spec.get("protocols", ()))
            policy = ConflictPolicy(spec["policy"]) if "policy" in spec else None
            versions = _versions_of(spec) if data_type == DataType.FILES else None
            partners = tuple(Partner(check_partner(p["device"]),
                                     PartnerDirection(p.get("direction", "two-way")))
                             for p in spec.get("partners", ()))
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: dataset {name!r}: {exc}") from None
        datasets[name] = Dataset(
            name=name, data_type=data_type, path=Path(spec["path"]),
            protocols=protocols or _DEFAULT_PROTOCOLS.get(data_type, (SyncProtocol.SYNCML,)),
            allow=tuple(spec.get("allow", ())), policy=policy, layout=spec.get("layout"), versions=versions,
            allow_external_links=bool(spec.get("allow_external_links", False)),
            partners=partners,
        )
        check_layout(datasets[name], where=f"{path}: ")
    config = PeerConfig(
        data_dir=data_dir,
        server=str(peer.get("server", "127.0.0.1:5060")),
        transport=str(peer.get("transport", "udp")).lower(),
        user=check_name("user", str(peer.get("user", ""))),
        password=peer.get("password"),
        password_file=Path(peer["password_file"]) if peer.get("password_file") else None,
        device=check_name("device", str(peer.get("device", ""))),
        sip_host=str(peer.get("sip_host", "127.0.0.1")),
        data_host=str(peer.get("data_host", "127.0.0.1")),
        register_expires=int(peer.get("register_expires", 60)),
        datasets=datasets,
    )
    config.server_endpoint  # noqa: B018 - refuse a bad server address now, not at first use
    if config.transport not in ("udp", "tcp"):
        raise ConfigError(f"transport must be udp or tcp, not {config.transport!r}")
    return config


def _versions_of(spec: dict) -> VersionPolicy | None:
    """`versioning = "trashcan"|"staggered"|"off"` and `versions_days = N`; a trash can of the
    default days when neither is given."""
    kind = spec.get("versioning", VersionKind.TRASHCAN.value)
    if kind == VERSIONING_OFF:
        return None
    days = spec.get("versions_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float))):
        raise ValueError(f"versions_days must be a number of days, not {days!r}")
    return VersionPolicy(VersionKind(kind), days)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def save(config: PeerConfig) -> Path:
    """Write the settings atomically (mode 0600: the file may hold a password)."""
    lines = ["[peer]"]
    for key in ("server", "transport", "user", "device", "sip_host", "data_host"):
        lines.append(f"{key} = {_quote(str(getattr(config, key)))}")
    lines.append(f"register_expires = {config.register_expires}")
    if config.password:
        lines.append(f"password = {_quote(config.password)}")
    if config.password_file:
        lines.append(f"password_file = {_quote(str(config.password_file))}")
    for dataset in config.datasets.values():
        lines += ["", f"[datasets.{_quote(dataset.name)}]",
                  f"type = {_quote(dataset.data_type.value)}",
                  f"path = {_quote(str(dataset.path))}",
                  "protocols = [" + ", ".join(_quote(p.value) for p in dataset.protocols) + "]",
                  "allow = [" + ", ".join(_quote(u) for u in dataset.allow) + "]"]
        if dataset.policy is not None:
            lines.append(f"policy = {_quote(dataset.policy.value)}")
        if dataset.layout is not None:
            lines.append(f"layout = {_quote(dataset.layout)}")
        if dataset.data_type == DataType.FILES:
            versions = dataset.versions
            lines.append(f"versioning = {_quote(versions.kind.value if versions else VERSIONING_OFF)}")
            if versions is not None and versions.days is not None:
                lines.append(f"versions_days = {versions.days:g}")
        if dataset.allow_external_links:
            lines.append("allow_external_links = true")
        if dataset.partners:
            lines.append("partners = [" + ", ".join(
                f"{{ device = {_quote(p.device)}, direction = {_quote(p.direction.value)} }}"
                for p in dataset.partners) + "]")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    path = config.data_dir / CONFIG_NAME
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    return path


def with_dataset(config: PeerConfig, dataset: Dataset) -> PeerConfig:
    check_name("dataset", dataset.name)
    return replace(config, datasets={**config.datasets, dataset.name: dataset})
