"""The interface every transfer implements: what moves a dataset over an established data
channel, with the context it gets and the result it gives back.

A `Transfer` runs on both ends of one channel: the caller's side and the callee's side. The
session descriptor tells it the direction, the sync mode and who the other device is; the state
directory is where it keeps what it must remember about that device between sessions (anchors,
last-synced manifests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from protocols.channel.channel import Channel
from session_xml import SessionDescriptor

from .config import Dataset


class TransferError(Exception):
    """A transfer that cannot go on, with the reason both sides and the server's history show.
    (A ChannelError is one too, for a fault of the channel itself.)"""


@dataclass(frozen=True)
class TransferResult:
    files: int = 0
    bytes: int = 0  # bytes that crossed the channel, or the size moved for a plain copy
    records: int = 0
    detail: str = ""  # a short human summary: conflicts, deletions, bytes saved by deltas...
    skipped: tuple[str, ...] = ()  # what was not carried, each "path (reason)"


# Called as a transfer advances: progress(phase, bytes_done=, bytes_total=, records_done=,
# records_total=, counters={"bytesLiteral": n, ...}); the caller's side reports it to the server.
Progress = Callable[..., None]


@dataclass(frozen=True)
class TransferContext:
    """Everything a transfer may need besides the channel."""

    dataset: Dataset
    session: SessionDescriptor  # the offer (callee side) or the answer (caller side)
    remote_device: str  # USER/DEVICE of the other end
    state_dir: Path  # private to this dataset and that remote device; created for the transfer
    progress: Progress
    prepared: object = None  # what the transfer's `prepare` started for this session, if any


class Transfer(Protocol):
    def prepare(self, dataset: Dataset, state_dir: Path) -> object:
        """Work to start before the data channel is up, while the INVITE travels (a folder's
        scan); it comes back as `TransferContext.prepared`. None when there is none."""
        ...

    async def as_caller(self, channel: Channel, context: TransferContext) -> TransferResult: ...

    async def as_callee(self, channel: Channel, context: TransferContext) -> TransferResult: ...
