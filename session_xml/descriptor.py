"""The session descriptor an INVITE offers and its 200 OK answers, with the words it is made of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidValue
from .fields import (
    DATASET_NAME,
    DEVICE_NAME,
    SESSION_ID,
    TOKEN,
    IPAddress,
    check_address,
    check_member,
    check_pattern,
    check_port,
)
from .fingerprint import Fingerprint
from .vocabulary import DataType, Direction, Role, SyncMode, SyncProtocol

MAX_OFFERED_PROTOCOLS = 16


# The Subject of an INVITE that a daemon's live sync sends by itself (RFC 3261 20.36): the
# server files such sessions as started by the daemon.
LIVE_SYNC_SUBJECT = "live sync"


@dataclass(frozen=True)
class SessionDescriptor:
    """An offer (caller) or answer (callee); valid by construction, or InvalidValue is raised.

    `fingerprint` and `token` are always the sender's own: the peer that connects to the
    sender pins that certificate and presents that token in its first frame.
    Strings are accepted for the enums and addresses and converted.
    """

    role: Role
    session_id: str
    source_device: str
    destination_device: str
    data_type: DataType
    dataset: str
    direction: Direction
    sync_protocols: tuple[SyncProtocol, ...]
    source_ip: IPAddress
    source_port: int
    fingerprint: Fingerprint
    token: str
    destination_ip: IPAddress | None = None
    destination_port: int | None = None
    sync_mode: SyncMode | None = None

    def __post_init__(self) -> None:
        role = check_member("role", self.role, Role)
        fixed = {
            "role": role,
            "data_type": check_member("dataType", self.data_type, DataType),
            "direction": check_member("direction", self.direction, Direction),
            "sync_protocols": _check_protocols(role, self.sync_protocols),
            "source_ip": check_address("sourceIP", self.source_ip),
        }
        if self.sync_mode is not None:
            fixed["sync_mode"] = check_member("syncMode", self.sync_mode, SyncMode)
        if role is Role.ANSWER:
            fixed["destination_ip"] = check_address("destinationIP", self.destination_ip)
            check_port("destinationPort", self.destination_port)
        elif self.destination_ip is not None or self.destination_port is not None:
            # The caller cannot know the callee's endpoint; only the answer names it.
            raise InvalidValue("destinationIP", "an offer carries no destination address")
        check_pattern("sessionId", self.session_id, SESSION_ID, "a session id")
        check_pattern("sourceDevice", self.source_device, DEVICE_NAME, "a device name")
        check_pattern("destinationDevice", self.destination_device, DEVICE_NAME, "a device name")
        check_pattern("dataset", self.dataset, DATASET_NAME, "a dataset name")
        check_port("sourcePort", self.source_port)
        if not isinstance(self.fingerprint, Fingerprint):
            raise InvalidValue("fingerprint", f"{self.fingerprint!r} is not a Fingerprint")
        check_pattern("token", self.token, TOKEN, "a token (16-128 characters of A-Z a-z 0-9 _ -)")
        for name, value in fixed.items():
            object.__setattr__(self, name, value)


def _check_protocols(role: Role, protocols: object) -> tuple[SyncProtocol, ...]:
    if isinstance(protocols, str) or not isinstance(protocols, Sequence):
        raise InvalidValue("syncProtocol", "expected a sequence of protocols in preference order")
    checked = tuple(check_member("syncProtocol", p, SyncProtocol) for p in protocols)
    if role is Role.ANSWER and len(checked) != 1:
        raise InvalidValue("syncProtocol", f"an answer holds exactly one protocol, not {len(checked)}")
    if not 1 <= len(checked) <= MAX_OFFERED_PROTOCOLS:
        raise InvalidValue("syncProtocol", f"an offer lists 1 to {MAX_OFFERED_PROTOCOLS} protocols")
    if len(set(checked)) != len(checked):
        raise InvalidValue("syncProtocol", "a protocol is listed twice")
    return checked
