"""The transfers this device can run, by negotiated protocol, and where each keeps its state."""

from __future__ import annotations

from pathlib import Path

from session_xml import SyncProtocol

from .folder_sync import FolderSync
from .record_sync import RecordSync
from .transfer_interface import Transfer

TRANSFERS: dict[SyncProtocol, Transfer] = {
    SyncProtocol.RSYNC: FolderSync(),
    SyncProtocol.SYNCML: RecordSync(),
}


def transfer_for(protocol: SyncProtocol) -> Transfer | None:
    return TRANSFERS.get(protocol)


def state_dir(data_dir: Path, dataset: str, remote_device: str) -> Path:
    """Private to one dataset and one remote device: anchors, last-synced manifests, caches."""
    folder = data_dir / "state" / dataset / remote_device.replace("/", "@")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
