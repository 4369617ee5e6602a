"""The syncml `Transfer`: a record dataset (contacts, calendar, notes, SMS) synchronized over the
data channel by the SyncML-like engine, the caller's SyncCaller against the callee's SyncCallee.

A record dataset's path is a folder; its store is `records.db` in it (peer/record_store.py), where
the engine also keeps its anchors per remote device, so the state directory is not needed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

from protocols.channel.channel import Channel
from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.framing import FrameType
from protocols.syncml import (ConflictPolicy, SessionState, StaleVersion, SyncCallee, SyncCaller, SyncMode,
                              SyncReport)
from protocols.syncml.packing import DEFAULT_MAX_BYTES
from protocols.syncml.engine import SyncEngine
from session_xml import DataType, Phase

from .conflict_copies import copy_content
from .dataset_metadata_sync import MetadataVersion, decode_versions, encode_versions, settle
from .record_frames import CalleeSummary, MessageAssembler, message_frames
from .record_store import RecordStore, store_path
from .transfer_interface import TransferContext, TransferError, TransferResult
from .vdir import vdir_of

log = logging.getLogger(__name__)

RECORD_TYPES = frozenset({DataType.CONTACTS, DataType.CALENDAR, DataType.NOTES, DataType.SMS})
DEFAULT_POLICY = ConflictPolicy.NEWEST_WINS

T = TypeVar("T")


class RecordSync:
    """SyncProtocol.SYNCML. The caller asks for the descriptor's sync mode (two-way when none);
    the callee settles conflicts by its dataset's policy (newest-wins when none)."""

    def prepare(self, dataset, state_dir) -> None:
        return None  # the store is opened on the channel, where a failure can be told

    async def as_caller(self, channel: Channel, context: TransferContext) -> TransferResult:
        session = context.session
        mode = session.sync_mode or SyncMode.TWO_WAY
        async with _failures_told(channel):
            store = await _open_store(context)
            try:
                engine = await _in_thread(lambda: SyncCaller(
                    store, device=session.source_device, peer=context.remote_device,
                    dataset=context.dataset.name, mode=mode, session_id=session.session_id,
                    max_message_bytes=_message_budget(channel)))
                await _exchange(channel, engine, context)
                await _dataset_data_as_caller(channel, store)
            finally:
                await _in_thread(_close_store, store, context)
        report = engine.report
        try:
            summary: CalleeSummary | None = CalleeSummary.decode(await channel.receive())
        except ChannelError as exc:
            # Both anchors have moved: the sync is done even if its epilogue got lost.
            log.info("no summary from the callee after the sync: %s", exc)
            summary = None
        received = summary.sent if summary else report.items_received
        conflicts = summary.conflicts if summary else 0
        _progress(context, report.items_sent, received, conflicts)
        return _result(report, report.items_sent, received, conflicts,
                       summary.policy if summary else None)

    async def as_callee(self, channel: Channel, context: TransferContext) -> TransferResult:
        session = context.session
        policy = context.dataset.policy or DEFAULT_POLICY
        async with _failures_told(channel):
            store = await _open_store(context)
            try:
                engine = await _in_thread(lambda: SyncCallee(
                    store, device=session.destination_device, peer=context.remote_device,
                    dataset=context.dataset.name, policy=policy, session_id=session.session_id,
                    max_message_bytes=_message_budget(channel), copy_content=copy_content))
                await _exchange(channel, engine, context)
                assert engine.mode is not None
                await _dataset_data_as_callee(channel, store, engine.mode)
            finally:
                await _in_thread(_close_store, store, context)
        report = engine.report
        summary = CalleeSummary(report.items_sent, report.items_applied, len(report.conflicts), policy)
        await channel.send(FrameType.SYNCML_SUMMARY, summary.encode())
        return _result(report, report.items_sent, report.items_received, summary.conflicts, policy)


async def _exchange(channel: Channel, engine: SyncEngine, context: TransferContext) -> None:
    """Messages out as frames, frames in as messages, until the engine is done or failed."""
    assembler = MessageAssembler()
    while True:
        for message in engine.data_to_send():
            for kind, payload in message_frames(message, channel.max_frame_size):
                await channel.send(kind, payload)
        report = engine.report
        _progress(context, report.items_sent, report.items_received, len(report.conflicts))
        if engine.state is not SessionState.RUNNING:
            break
        message = assembler.take(await channel.receive())
        if message is not None:
            await _in_thread(engine.receive, bytes(message))
    if engine.state is SessionState.FAILED:
        assert engine.error is not None
        raise TransferError(engine.error.reason)


async def _dataset_data_as_caller(channel: Channel, store: RecordStore) -> None:
    """Offer our dataset data once the items are synced; write what the callee says is newer."""
    held = await _in_thread(_dataset_versions, store)
    await channel.send(FrameType.SYNCML_DATASET, _fitting(held.values(), channel.max_frame_size))
    taken = decode_versions(await channel.receive())
    await _in_thread(_write_versions, store, taken, held)


async def _dataset_data_as_callee(channel: Channel, store: RecordStore, mode: SyncMode) -> None:
    """Settle the caller's dataset data against ours, write what we take, send what it is to."""
    offered = decode_versions(await channel.receive())
    held = await _in_thread(_dataset_versions, store)
    settlement = settle(offered, held.values(), mode)
    await _in_thread(_write_versions, store, settlement.take, held)
    await channel.send(FrameType.SYNCML_DATASET, _fitting(settlement.send, channel.max_frame_size))


def _dataset_versions(store: RecordStore) -> dict[str, MetadataVersion]:
    return {meta.content_type: MetadataVersion(meta.content_type, meta.content, meta.modified, meta.version)
            for meta in store.all_dataset_metadata()}


def _write_versions(store: RecordStore, versions: Iterable[MetadataVersion],
                    held: dict[str, MetadataVersion]) -> None:
    for version in versions:
        seen = held.get(version.content_type)
        try:  # the other side's modification time travels with it, so the next sync sees no change
            store.set_dataset_metadata(version.content_type, version.content,
                                       expected_version=seen.version if seen else 0, modified=version.modified)
        except StaleVersion:
            log.info("the dataset's %s data changed here during the sync; the next sync settles it",
                     version.content_type)


def _fitting(versions: Iterable[MetadataVersion], max_payload: int) -> bytes:
    """The versions as one frame's payload; one too large for a frame stays behind, with a warning."""
    kept: list[MetadataVersion] = []
    for version in versions:
        if len(encode_versions([*kept, version])) <= max_payload:
            kept.append(version)
        else:
            log.warning("the dataset's %s data is too large to sync (%d bytes)", version.content_type,
                        len(version.content))
    return encode_versions(kept)


def _message_budget(channel: Channel) -> int:
    # The engine's size is an estimate; a quarter of a frame leaves room for XML escaping, and a
    # message that still outgrows a frame is split (record_frames.message_frames).
    return max(16 * 1024, min(DEFAULT_MAX_BYTES, channel.max_frame_size // 4))


def _progress(context: TransferContext, sent: int, received: int, conflicts: int) -> None:
    context.progress(Phase.APPLYING, records_done=sent + received,
                     counters={"recordsSent": sent, "recordsReceived": received,
                               "conflicts": conflicts})


def _result(report: SyncReport, sent: int, received: int, conflicts: int,
            policy: ConflictPolicy | None) -> TransferResult:
    settled = f" ({policy.value})" if policy else ""
    detail = f"{sent} sent, {received} received, {conflicts} conflict{'' if conflicts == 1 else 's'}{settled}"
    return TransferResult(records=sent + received, bytes=report.bytes_sent + report.bytes_received,
                          detail=detail)


async def _open_store(context: TransferContext) -> RecordStore:
    dataset = context.dataset
    if dataset.data_type not in RECORD_TYPES:
        raise TransferError(f"dataset {dataset.name!r} holds {dataset.data_type}; syncml syncs "
                            f"records (contacts, calendar, notes, sms)")
    if not dataset.path.is_dir():
        raise TransferError(f"the folder of dataset {dataset.name!r} is missing")
    try:
        store = await _in_thread(RecordStore, store_path(dataset.path))
    except sqlite3.Error as exc:
        raise TransferError(f"the record store of dataset {dataset.name!r}: {exc}") from None
    vdir = vdir_of(store, dataset)
    if vdir is not None:
        try:  # what other programs changed in the folder takes part in this sync
            await _in_thread(vdir.refresh)
        except (OSError, sqlite3.Error) as exc:
            await _in_thread(store.close)
            raise TransferError(f"the vdir folder of dataset {dataset.name!r}: {exc}") from None
    return store


def _close_store(store: RecordStore, context: TransferContext) -> None:
    """Write what the sync changed to a vdir folder, then close the store."""
    try:
        vdir = vdir_of(store, context.dataset)
        if vdir is not None:
            vdir.write_back()
    except OSError as exc:
        log.warning("dataset %s: the vdir folder was not updated: %s", context.dataset.name, exc)
    finally:
        store.close()


@asynccontextmanager
async def _failures_told(channel: Channel) -> AsyncIterator[None]:
    """Tell the peer why a local failure ends the sync, in the channel's ERROR frame."""
    try:
        yield
    except TransferError as exc:
        await channel.close(str(exc), ErrorCode.TRANSFER)
        raise


async def _in_thread(function: Callable[..., T], *args: object) -> T:
    """SQLite work off the event loop, so the daemon keeps answering SIP during a big sync. A
    cancelled caller still waits for the thread: the store is closed after, never under, a write."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise

