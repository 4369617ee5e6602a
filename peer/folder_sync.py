"""Folder sync over the data channel: the rsync engine carrying out one side's `Exchange`.

The decisions are sans-I/O (`protocols/rsync/exchange.py`); this module moves frames and files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from protocols.channel.connection import Channel
from protocols.channel.errors import ErrorCode
from protocols.channel.framing import DATA_CHUNK_SIZE, Frame, FrameType
from protocols.rsync.delta import DeltaEncoder
from protocols.rsync.errors import ExchangeError, RsyncError, UnrepresentableName, UnsafePath
from protocols.rsync.exchange import Exchange, Incoming, check_remote, manifest_digest, prepare
from protocols.rsync.manifest import HashCache, Manifest, scan
from protocols.rsync.messages import (
    DeltaFigures,
    FileRequest,
    ManifestAssembler,
    ManifestEnd,
    manifest_pieces,
)
from protocols.rsync.partial import resume_offset
from protocols.rsync.patch import FilePatcher
from protocols.rsync.paths import resolve_inside
from protocols.rsync.plan import Direction as PlanDirection
from protocols.rsync.signature import Signature, SignatureBuilder
from protocols.rsync.wire import SignatureReader
from session_xml import Direction, Phase

from .transfer_interface import TransferContext, TransferError, TransferResult

READ_CHUNK = 1 << 20
FRAME_HEADER = 6
HASH_CACHE = "hashes.json"
LAST_SYNCED = "last-synced.json"

_MIRROR = {Direction.PUSH: PlanDirection.PULL, Direction.PULL: PlanDirection.PUSH,
           Direction.TWO_WAY: PlanDirection.TWO_WAY}


class FolderSync:
    """`SyncProtocol.RSYNC`: manifests both ways, the same plan on both sides, then per file a
    signature from the side that receives and a delta back; deletions last."""

    async def as_caller(self, channel: Channel, context: TransferContext) -> TransferResult:
        return await _Side(channel, context, caller=True).run()

    async def as_callee(self, channel: Channel, context: TransferContext) -> TransferResult:
        return await _Side(channel, context, caller=False).run()


class _Meter:
    """Progress of the whole sync: bytes of files moved both ways, literal and matched bytes."""

    def __init__(self, context: TransferContext) -> None:
        self._progress = context.progress
        self.total = self.done = self.literal = self.matched = self.files = self.wire = 0

    def report(self, phase: Phase, done: int | None = None) -> None:
        self._progress(phase, bytes_done=self.done if done is None else done,
                       bytes_total=self.total,
                       counters={"bytesLiteral": self.literal, "bytesMatched": self.matched,
                                 "files": self.files})


class _Side:
    """One side of one sync; the caller plans with its direction, the callee with the mirror."""

    def __init__(self, channel: Channel, context: TransferContext, *, caller: bool) -> None:
        self.channel, self.context, self.caller = channel, context, caller
        self.root = Path(context.dataset.path)
        self.meter = _Meter(context)
        session = context.session
        own = session.source_device if caller else session.destination_device
        self.local_name = own.rpartition("/")[2]
        self.remote_name = context.remote_device.rpartition("/")[2]
        self.direction = PlanDirection(session.direction.value) if caller else _MIRROR[session.direction]

    async def run(self) -> TransferResult:
        try:
            return await self._run()
        except (RsyncError, OSError, TransferError) as exc:
            # Tell the peer why before giving up: the reason reaches both histories.
            reason = _reason(exc, self.context.remote_device)
            await self.channel.close(reason, ErrorCode.TRANSFER)
            raise TransferError(reason) from None

    async def _run(self) -> TransferResult:
        self.meter.report(Phase.SIGNATURE)
        state = self.context.state_dir
        local = await asyncio.to_thread(scan, self.root, HashCache(state / HASH_CACHE))
        last = _load(state / LAST_SYNCED)
        if self.caller:
            await self._send_manifest(local, last)
            remote, remote_base = await self._receive_manifest()
        else:
            remote, remote_base = await self._receive_manifest()
            await self._send_manifest(local, last)
        # Plan from the base both remember; if they differ, from none: nothing gets deleted
        # and a file that differs is a conflict, so nothing is lost.
        base = last if last is not None and manifest_digest(last) == remote_base else None
        exchange = prepare(local, remote, self.direction, base, local_name=self.local_name,
                           remote_name=self.remote_name)
        self.meter.total = exchange.bytes_to_move
        self.meter.report(Phase.DELTA)
        if self.caller:
            await self._serve(exchange)
            await self._receive_all(exchange)
            await self._send(FrameType.RSYNC_DONE)
            await self._expect(FrameType.RSYNC_FINISHED)
            _save(state / LAST_SYNCED, exchange.synced())
        else:
            await self._receive_all(exchange)
            await self._send(FrameType.RSYNC_DONE)
            await self._serve(exchange)
            _save(state / LAST_SYNCED, exchange.synced())
            await self._send(FrameType.RSYNC_FINISHED)
        self.meter.report(Phase.APPLYING, self.meter.total)
        return TransferResult(files=self.meter.files, bytes=self.meter.wire,
                              detail=exchange.summary())

    # -- frames ----------------------------------------------------------------------------------

    async def _send(self, kind: FrameType, payload: bytes | bytearray | memoryview = b"") -> None:
        self.meter.wire += FRAME_HEADER + len(payload)
        await self.channel.send(kind, payload)

    async def _receive(self, *kinds: FrameType) -> Frame:
        frame = await self.channel.receive()
        self.meter.wire += FRAME_HEADER + len(frame.payload)
        if frame.kind not in kinds:
            raise ExchangeError(f"unexpected {frame.kind.name} frame from the peer "
                                f"(expected {' or '.join(k.name for k in kinds)})")
        return frame

    async def _expect(self, kind: FrameType) -> Frame:
        return await self._receive(kind)

    async def _send_stream(self, kind: FrameType, pending: bytearray, *, flush: bool) -> None:
        """Sends `pending` in frames of DATA_CHUNK_SIZE; keeps a short rest unless `flush`."""
        while len(pending) >= DATA_CHUNK_SIZE or (flush and pending):
            piece = bytes(pending[:DATA_CHUNK_SIZE])
            del pending[:DATA_CHUNK_SIZE]
            await self._send(kind, piece)

    # -- manifests -------------------------------------------------------------------------------

    async def _send_manifest(self, local: Manifest, last: Manifest | None) -> None:
        for piece in manifest_pieces(local):
            await self._send(FrameType.RSYNC_MANIFEST, piece)
        await self._send(FrameType.RSYNC_MANIFEST_END, ManifestEnd(manifest_digest(last)).encode())

    async def _receive_manifest(self) -> tuple[Manifest, str]:
        assembler = ManifestAssembler()
        while True:
            frame = await self._receive(FrameType.RSYNC_MANIFEST, FrameType.RSYNC_MANIFEST_END)
            if frame.kind is FrameType.RSYNC_MANIFEST_END:
                remote = assembler.finish()
                check_remote(remote)  # a hostile path fails here, before anything else happens
                return remote, ManifestEnd.decode(frame.payload).base
            assembler.feed(frame.payload)

    # -- sending files ---------------------------------------------------------------------------

    async def _serve(self, exchange: Exchange) -> None:
        """Answer the peer's requests until it says it has everything."""
        while True:
            frame = await self._receive(FrameType.RSYNC_REQUEST, FrameType.RSYNC_DONE)
            if frame.kind is FrameType.RSYNC_DONE:
                return
            request = FileRequest.decode(frame.payload)
            entry = exchange.check_request(request)
            await self._send_file(request, entry.size)

    async def _send_file(self, request: FileRequest, size: int) -> None:
        reader = SignatureReader()
        while True:
            frame = await self._receive(FrameType.RSYNC_SIGNATURE, FrameType.RSYNC_SIGNATURE_END)
            if frame.kind is FrameType.RSYNC_SIGNATURE_END:
                break
            reader.feed(frame.payload)
        signature = Signature.from_records(*reader.finish())
        encoder = DeltaEncoder(signature, resume_offset=request.resume_offset)
        path = resolve_inside(self.root, request.path)
        start = self.meter.done
        pending = bytearray()
        with open(path, "rb") as source:
            while chunk := await asyncio.to_thread(source.read, READ_CHUNK):
                pending += b"".join(await asyncio.to_thread(encoder.feed, chunk))
                await self._send_stream(FrameType.RSYNC_DELTA, pending, flush=False)
                self.meter.report(Phase.DELTA, start + source.tell())
        pending += b"".join(encoder.finish())
        await self._send_stream(FrameType.RSYNC_DELTA, pending, flush=True)
        stats = encoder.stats
        await self._send(FrameType.RSYNC_DELTA_END,
                         DeltaFigures(stats.literal_bytes, stats.copy_bytes).encode())
        self._count(start, size, stats.literal_bytes, stats.copy_bytes)

    def _count(self, start: int, size: int, literal: int, matched: int) -> None:
        self.meter.done = start + size
        self.meter.literal += literal
        self.meter.matched += matched
        self.meter.files += 1
        self.meter.report(Phase.DELTA)

    # -- receiving files -------------------------------------------------------------------------

    async def _receive_all(self, exchange: Exchange) -> None:
        if exchange.incoming or exchange.deletions:
            self.root.mkdir(parents=True, exist_ok=True)
        for path, copy in exchange.keep_copies:
            _keep_copy(resolve_inside(self.root, path), resolve_inside(self.root, copy))
        for item in exchange.incoming:
            await self._receive_file(item)
        if exchange.deletions:
            self.meter.report(Phase.APPLYING)
        for path in exchange.deletions:
            _delete(self.root, path, exchange.local.entries[path])

    async def _receive_file(self, item: Incoming) -> None:
        target = resolve_inside(self.root, item.target)
        # No basis: the target itself (absent, or the patcher would refuse it as a basis).
        basis = resolve_inside(self.root, item.basis) if item.basis else target
        target.parent.mkdir(parents=True, exist_ok=True)
        resume = resume_offset(target, item.entry.digest)
        await self._send(FrameType.RSYNC_REQUEST, FileRequest(item.path, resume).encode())
        await self._send_signature(basis)
        patcher = FilePatcher(target, basis, expected_digest=item.entry.digest,
                              mode=item.entry.mode, mtime_ns=item.entry.mtime_ns)
        start = self.meter.done
        try:
            while True:
                frame = await self._receive(FrameType.RSYNC_DELTA, FrameType.RSYNC_DELTA_END)
                if frame.kind is FrameType.RSYNC_DELTA_END:
                    figures = DeltaFigures.decode(frame.payload)
                    break
                await asyncio.to_thread(patcher.feed, frame.payload)
                if patcher.written > item.entry.size:  # the hash would fail too, but only at the end
                    raise ExchangeError(f"the peer sends more of {item.path!r} than its "
                                        f"{item.entry.size} bytes")
                self.meter.report(Phase.DELTA, start + patcher.written)
            await asyncio.to_thread(patcher.finish)
        except ExchangeError:
            patcher.abort(keep_partial=False)  # a lying peer's bytes are not worth resuming from
            raise
        except BaseException:
            # What arrived stays beside the target, never over it: the next sync resumes there.
            patcher.abort(keep_partial=True)
            raise
        self._count(start, item.entry.size, figures.literal, figures.matched)

    async def _send_signature(self, basis: Path) -> None:
        try:
            source = open(basis, "rb")
        except FileNotFoundError:
            await self._send(FrameType.RSYNC_SIGNATURE, SignatureBuilder(0).finish())
            await self._send(FrameType.RSYNC_SIGNATURE_END)
            return
        with source:
            builder = SignatureBuilder(os.fstat(source.fileno()).st_size)
            pending = bytearray()
            while chunk := await asyncio.to_thread(source.read, READ_CHUNK):
                pending += builder.feed(chunk)
                await self._send_stream(FrameType.RSYNC_SIGNATURE, pending, flush=False)
            pending += builder.finish()
            await self._send_stream(FrameType.RSYNC_SIGNATURE, pending, flush=True)
        await self._send(FrameType.RSYNC_SIGNATURE_END)


def _keep_copy(path: Path, copy: Path) -> None:
    """This side lost a conflict: its version stays under the conflict name (a hard link, so
    the winner's atomic rename over `path` leaves it whole)."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, copy)
    except FileExistsError:
        raise TransferError(f"conflict copy {copy.name!r} exists already; not overwriting it") from None
    except OSError:  # no hard links on this file system
        shutil.copy2(path, copy)


def _delete(root: Path, rel: str, planned) -> None:
    """Deletes what the plan named, unless it changed since the scan (then it stays)."""
    path = resolve_inside(root, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if (st.st_size, st.st_mtime_ns) != (planned.size, planned.mtime_ns):
        return
    path.unlink()
    parent = path.parent
    while parent != root:  # folders the deletion emptied go too
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _load(path: Path) -> Manifest | None:
    try:
        return Manifest.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(path: Path, manifest: Manifest) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)


def _reason(exc: Exception, remote: str) -> str:
    if isinstance(exc, UnsafePath):
        return f"refused an unsafe path from {remote}: {exc}"
    if isinstance(exc, UnrepresentableName):
        return f"a name from {remote} cannot be stored here: {exc}"
    if isinstance(exc, OSError):
        return f"file system: {exc.strerror or exc} ({exc.filename or ''})"
    return str(exc)
