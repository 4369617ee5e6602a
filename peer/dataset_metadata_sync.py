"""The dataset's own data (a calendar's properties, the time zones no item uses) synchronized
beside its items, sans-I/O: after the item sync the caller offers its version of each in one
frame; the callee settles each content type (the newer edit wins, the sync mode's direction
holds), and answers with the versions the caller is to take."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass

from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.framing import Frame, FrameType
from protocols.syncml import SyncMode


@dataclass(frozen=True, slots=True)
class MetadataVersion:
    """One side's dataset data of one content type; `version` is that side's own counter, which
    a write checks so that an edit made during the sync is never overwritten."""

    content_type: str
    content: bytes
    modified: float
    version: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the callee does: the caller's versions it writes, and its own the caller is to take."""

    take: tuple[MetadataVersion, ...]
    send: tuple[MetadataVersion, ...]


def settle(caller: Iterable[MetadataVersion], callee: Iterable[MetadataVersion], mode: SyncMode) -> Settlement:
    """Per content type: identical content, nothing; a refresh copies its source's; otherwise the
    later modification wins (a tie goes to the callee, as for items) where the mode lets it flow."""
    theirs = {version.content_type: version for version in caller}
    ours = {version.content_type: version for version in callee}
    take, send = [], []
    for content_type in sorted(theirs.keys() | ours.keys()):
        offered, held = theirs.get(content_type), ours.get(content_type)
        if offered is not None and held is not None and offered.content == held.content:
            continue
        if mode is SyncMode.REFRESH_FROM_CALLER:
            caller_wins = offered is not None
        elif mode is SyncMode.REFRESH_FROM_CALLEE:
            caller_wins = held is None
        else:
            caller_wins = held is None or (offered is not None and offered.modified > held.modified)
        if caller_wins and offered is not None and mode.callee_writes:
            take.append(offered)
        elif not caller_wins and held is not None and mode.caller_writes:
            send.append(held)
    return Settlement(tuple(take), tuple(send))


def encode_versions(versions: Iterable[MetadataVersion]) -> bytes:
    return json.dumps([
        {"type": v.content_type, "content": base64.b64encode(v.content).decode(), "modified": v.modified}
        for v in versions
    ]).encode()


def decode_versions(frame: Frame) -> list[MetadataVersion]:
    """The peer's versions from its SYNCML_DATASET frame; anything else is a protocol error."""
    if frame.kind is not FrameType.SYNCML_DATASET:
        raise ChannelError(f"expected the dataset's data, got a {frame.kind.name} frame", ErrorCode.PROTOCOL)
    try:
        entries = json.loads(bytes(frame.payload))
        if not isinstance(entries, list):
            raise ValueError("not a list")
        versions = []
        for entry in entries:
            content_type, modified = entry["type"], entry["modified"]
            if not isinstance(content_type, str) or not 0 < len(content_type) <= 100:
                raise ValueError("a bad content type")
            if type(modified) not in (int, float):
                raise ValueError("a bad modification time")
            versions.append(MetadataVersion(content_type, base64.b64decode(entry["content"], validate=True),
                                            float(modified)))
        return versions
    except (ValueError, TypeError, KeyError) as exc:
        raise ChannelError(f"unreadable dataset data from the peer: {exc}", ErrorCode.PROTOCOL) from None
