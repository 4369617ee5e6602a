"""Folder sync over the data channel: the rsync engine carrying out one side's `Exchange`.

The decisions and the file work are sans-I/O cores in `protocols/rsync/` (exchange, serving,
receiving, tree); this module moves their records over the channel. After a hello and both
manifests, each side streams its requests while it streams the deltas the peer asked for: no
round trip per file, many small files per frame.

Just over 400 lines: one side's whole session (hello, scan, manifests, the two pipelined
directions, the end) reads best as one flow; the decisions are all in protocols/rsync.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path

from protocols.channel.channel import Channel
from protocols.channel.errors import ErrorCode
from protocols.channel.framing import Frame, FrameType
from protocols.rsync.errors import ExchangeError, RsyncError, UnrepresentableName, UnsafePath
from protocols.rsync.exchange import Exchange, manifest_digest, prepare
from protocols.rsync.ignore import IgnoreRules
from protocols.rsync.manifest import HashCache, Manifest, Skipped, scan
from protocols.rsync.messages import (
    EXCHANGE_VERSION,
    Hello,
    ManifestAssembler,
    changed_paths,
    changes_pieces,
    decode_skipped,
    encode_skipped,
    manifest_changes,
)
from protocols.rsync.paths import InsideResolver
from protocols.rsync.plan import Direction as PlanDirection
from protocols.rsync.receiving import SMALL_FILE, FileReceiver, KeepVersion
from protocols.rsync.records import (
    BATCH_TARGET,
    RECORD,
    BatchDecoder,
    BatchEncoder,
    Tag,
    decode_delta_end,
    decode_records,
)
from protocols.rsync.serving import FileServer, delta_records
from protocols.rsync.tree import TreeChanges
from session_xml import Direction, Phase

from .config import Dataset
from .folder_state import (
    load_hash_cache,
    load_last_synced,
    remember_hashes,
    save_last_synced,
    sync_file_system,
)
from .transfer_interface import TransferContext, TransferError, TransferResult
from .versions import VersionStore

log = logging.getLogger(__name__)

FRAME_HEADER = 6
REPORT_EVERY = 0.05  # seconds between progress reports while files stream...
REPORT_BYTES = 1 << 20  # ...unless this many more bytes were moved
KEEPALIVE = 2.0  # seconds of scanning between "still here" frames to the peer
COMPRESS_INLINE = 64 << 10  # smaller batches are compressed on the loop: a thread hop costs more
REQUESTS_PER_FLUSH = 256  # the first requests leave early, so the peer starts sending at once
_SERVER_TAGS = frozenset({Tag.REQUEST, Tag.SIGNATURE, Tag.SIGNATURE_END, Tag.REQUESTS_DONE})

_PLAN_DIRECTION = {Direction.PUSH: PlanDirection.PUSH, Direction.PULL: PlanDirection.PULL,
                   Direction.TWO_WAY: PlanDirection.TWO_WAY, Direction.MIRROR: PlanDirection.MIRROR}


def _keeper_of(dataset: Dataset) -> KeepVersion:
    """What keeps a file before a sync replaces or deletes it: the dataset's versioning."""
    if dataset.versions is None:
        return lambda relative: None
    return VersionStore(Path(dataset.path), dataset.versions).keep


class ScanAhead:
    """One side's scan of its folder, started as soon as the session is decided (while the
    INVITE travels and the channel is set up): the state it starts from and the scan itself.

    Scans for one state directory run one after the other: an earlier one (of a session that
    was refused or never connected) may still be saving the hash cache."""

    _running: dict[Path, asyncio.Future] = {}

    def __init__(self, last: Manifest | None) -> None:
        self.last = last
        self.hashes = HashCache()  # the state directory's, once the scan has started
        self.started = time.monotonic()
        self.seconds = 0.0  # the scan's own time, once it is done
        self.manifest: asyncio.Future[Manifest]

    @classmethod
    def start(cls, dataset: Dataset, state_dir: Path) -> ScanAhead:
        ahead = cls(load_last_synced(state_dir))
        root = Path(dataset.path)
        before = cls._running.get(state_dir)

        def timed_scan() -> Manifest:
            manifest = scan(root, ahead.hashes, ignore=IgnoreRules.load(root),
                            allow_external_links=dataset.allow_external_links,
                            known=ahead.last.entries if ahead.last is not None else None)
            ahead.seconds = time.monotonic() - ahead.started
            return manifest

        async def in_turn() -> Manifest:
            if before is not None:
                await asyncio.wait({before})
            ahead.hashes = load_hash_cache(state_dir)
            return await asyncio.to_thread(timed_scan)

        ahead.manifest = cls._running[state_dir] = asyncio.ensure_future(in_turn())
        ahead.manifest.add_done_callback(functools.partial(cls._finished, state_dir))
        return ahead

    @classmethod
    def _finished(cls, state_dir: Path, done: asyncio.Future) -> None:
        if cls._running.get(state_dir) is done:
            del cls._running[state_dir]
        if not done.cancelled():
            done.exception()  # a session that never came to its channel leaves it unread


class FolderSync:
    """`SyncProtocol.RSYNC`: hello, manifests both ways, the same plan on both sides, then the
    pipelined requests and deltas; folders, links, metadata and deletions last.

    `versions(root)`, when given, makes the function called before a sync replaces or deletes a
    file; otherwise the dataset's own versioning does."""

    def __init__(self, versions: Callable[[Path], KeepVersion] | None = None) -> None:
        self._versions = versions

    def prepare(self, dataset: Dataset, state_dir: Path) -> ScanAhead:
        return ScanAhead.start(dataset, state_dir)

    async def as_caller(self, channel: Channel, context: TransferContext) -> TransferResult:
        return await _Side(channel, context, self._versions, caller=True).run()

    async def as_callee(self, channel: Channel, context: TransferContext) -> TransferResult:
        return await _Side(channel, context, self._versions, caller=False).run()


class _Meter:
    """Progress of the whole sync: bytes of files moved both ways, literal and matched bytes."""

    def __init__(self, context: TransferContext) -> None:
        self._progress = context.progress
        self.total = self.done = self.literal = self.matched = self.files = self.wire = 0
        self._last = 0.0
        self._last_done = 0

    def report(self, phase: Phase, done: int | None = None, *, force: bool = True) -> None:
        """`force=False`: only if time or bytes moved on enough since the last report."""
        now = time.monotonic()
        done = self.done if done is None else done
        if not force and now - self._last < REPORT_EVERY and done - self._last_done < REPORT_BYTES:
            return
        self._last, self._last_done = now, done
        self._progress(phase, bytes_done=done,
                       bytes_total=self.total,
                       counters={"bytesLiteral": self.literal, "bytesMatched": self.matched,
                                 "files": self.files})

    def count(self, size: int, literal: int, matched: int) -> None:
        self.done += size
        self.literal += literal
        self.matched += matched
        self.files += 1
        self.report(Phase.DELTA, force=False)


class _Outbox:
    """Records to the peer, many per RSYNC_BATCH frame; producers flush before they wait."""

    def __init__(self, side: "_Side") -> None:
        self._side = side
        self._batch = BatchEncoder()
        # One flush at a time, so batches leave in the order they were cut and compressed (one
        # stream): each producer's records stay in order even though both share the batch.
        self._sending = asyncio.Lock()

    async def add(self, record: bytes) -> None:
        while not self._batch.fits(record):
            await self.flush()
        self._batch.add(record)
        if len(self._batch) >= BATCH_TARGET:
            await self.flush()

    async def flush(self) -> None:
        async with self._sending:
            if not len(self._batch):
                return
            body = self._batch.cut()
            # A big batch is compressed in a worker thread: the loop reads and applies meanwhile.
            payload = (await asyncio.to_thread(self._batch.encode, body) if len(body) > COMPRESS_INLINE
                       else self._batch.encode(body))
            await self._side._send(FrameType.RSYNC_BATCH, payload)
        await asyncio.sleep(0)  # let the reader and the other producer run between batches


class _Side:
    """One side of one sync; the caller plans with its direction, the callee with the opposite."""

    def __init__(self, channel: Channel, context: TransferContext,
                 versions: Callable[[Path], KeepVersion] | None, *, caller: bool) -> None:
        self.channel, self.context, self.caller = channel, context, caller
        self.root = Path(context.dataset.path)
        self.meter = _Meter(context)
        self._versions = versions
        session = context.session
        own = session.source_device if caller else session.destination_device
        self.local_name = own.rpartition("/")[2]
        self.remote_name = context.remote_device.rpartition("/")[2]
        direction = _PLAN_DIRECTION[session.direction]
        self.direction = direction if caller else direction.opposite
        self.allow_external_links = context.dataset.allow_external_links

    async def run(self) -> TransferResult:
        try:
            try:
                return await self._run()
            except BaseExceptionGroup as group:  # the pipeline's tasks: the first failure says why
                raise _first(group) from None
        except (RsyncError, OSError, TransferError) as exc:
            # Tell the peer why before giving up: the reason reaches both histories.
            reason = _reason(exc, self.context.remote_device)
            await self.channel.close(reason, ErrorCode.TRANSFER)
            raise TransferError(reason) from None

    async def _run(self) -> TransferResult:
        self.meter.report(Phase.SIGNATURE)
        started = time.monotonic()
        early = self.context.prepared
        scan_ahead = early if isinstance(early, ScanAhead) else ScanAhead.start(
            self.context.dataset, self.context.state_dir)
        base = await self._hello(scan_ahead.last)
        # Both sides scan at once; a long scan sends empty manifest pieces, so the peer's idle
        # timeout measures silence, not the size of this side's tree.
        scanning = scan_ahead.manifest
        while not (await asyncio.wait({scanning}, timeout=KEEPALIVE))[0]:
            await self._send(FrameType.RSYNC_MANIFEST, b"")
        local, hashes = scanning.result(), scan_ahead.hashes
        scanned = time.monotonic()
        # Both at once: a big manifest must not wait for the peer's to be read first.
        remote, theirs = (await asyncio.gather(self._send_manifest(local, base),
                                               self._receive_manifest(base)))[1]
        # With an agreed base only the paths either side changed are planned.
        changed = None
        if base is not None:
            ours, dropped = changed_paths(local, base)
            changed = theirs | set(ours) | set(dropped)
        exchange = prepare(local, remote, self.direction, base, local_name=self.local_name,
                           remote_name=self.remote_name, changed=changed)
        self.meter.total = exchange.bytes_to_move
        self.meter.report(Phase.DELTA)
        planned = time.monotonic()
        skipped = list(exchange.skipped)
        skipped += await self._transfer(exchange, hashes)
        self.meter.report(Phase.APPLYING, self.meter.total)
        # where a sync's time goes, for whoever tunes it
        log.info("%s: scan %d entries %.3f s (%.3f s of it before the channel), hello and "
                 "manifests %.3f s, transfer %.3f s", self.context.dataset.name, len(local),
                 scan_ahead.seconds, min(scan_ahead.seconds, started - scan_ahead.started),
                 planned - scanned,
                 time.monotonic() - planned)
        for skip in skipped:
            log.warning("%s: skipped %s", self.context.dataset.name, skip)
        return TransferResult(files=self.meter.files, bytes=self.meter.wire,
                              detail=exchange.summary(),
                              skipped=tuple(str(s) for s in _unique(skipped)))

    def _save_synced(self, synced: Manifest) -> None:
        if manifest_digest(synced) != self._base_digest:  # a no-op sync rewrites nothing
            save_last_synced(self.context.state_dir, synced)

    # -- frames ----------------------------------------------------------------------------------

    async def _send(self, kind: FrameType, payload: bytes | bytearray | memoryview = b"") -> None:
        self.meter.wire += FRAME_HEADER + len(payload)
        await self.channel.send(kind, payload)

    async def _receive(self, *kinds: FrameType) -> Frame:
        frame = await self.channel.receive()
        self.meter.wire += FRAME_HEADER + len(frame.payload)
        if frame.kind not in kinds:
            if frame.kind is FrameType.RSYNC_MANIFEST and FrameType.RSYNC_HELLO in kinds:
                raise ExchangeError(f"the peer speaks folder-sync exchange version 1; this side "
                                    f"speaks version {EXCHANGE_VERSION}: update the older one")
            raise ExchangeError(f"unexpected {frame.kind.name} frame from the peer "
                                f"(expected {' or '.join(k.name for k in kinds)})")
        return frame

    # -- hello and manifests ---------------------------------------------------------------------

    async def _hello(self, last: Manifest | None) -> Manifest | None:
        """Exchange versions and the last-synced state each remembers; the agreed base or None."""
        mine = Hello(EXCHANGE_VERSION, manifest_digest(last))
        self._base_digest = mine.base
        if self.caller:
            await self._send(FrameType.RSYNC_HELLO, mine.encode())
        theirs = Hello.decode((await self._receive(FrameType.RSYNC_HELLO)).payload)
        if not self.caller:
            await self._send(FrameType.RSYNC_HELLO, mine.encode())
        if theirs.version != EXCHANGE_VERSION:
            raise ExchangeError(f"the peer speaks folder-sync exchange version {theirs.version}; "
                                f"this side speaks version {EXCHANGE_VERSION}: update the older one")
        # Plan from the base both remember; if they differ, from none: nothing gets deleted
        # (but by a mirror) and a file that differs is a conflict, so nothing is lost.
        return last if last is not None and mine.base == theirs.base else None

    async def _send_manifest(self, local: Manifest, base: Manifest | None) -> None:
        data = await asyncio.to_thread(manifest_changes, local, base)
        for piece in changes_pieces(data):
            await self._send(FrameType.RSYNC_MANIFEST, piece)
        await self._send(FrameType.RSYNC_MANIFEST_END)

    async def _receive_manifest(self, base: Manifest | None) -> tuple[Manifest, set[str]]:
        assembler = ManifestAssembler()
        while True:
            frame = await self._receive(FrameType.RSYNC_MANIFEST, FrameType.RSYNC_MANIFEST_END)
            if frame.kind is FrameType.RSYNC_MANIFEST_END:
                # prepare() checks every path before anything is planned from it
                return assembler.finish_changes(base)
            assembler.feed(frame.payload)

    # -- the pipelined transfer ------------------------------------------------------------------

    async def _transfer(self, exchange: Exchange, hashes: HashCache) -> list[Skipped]:
        keep = self._versions(self.root) if self._versions else _keeper_of(self.context.dataset)
        server = FileServer(exchange, self.root)
        paths = InsideResolver(self.root)  # folders checked once, shared by both receiving steps
        receiver = FileReceiver(exchange, self.root, keep_version=keep, paths=paths)
        # Files land in a worker thread; they are counted (and progress told) on the loop.
        landed: list[tuple[int, int, int]] = []
        receiver.on_file = lambda item, literal, matched: landed.append((item.entry.size, literal, matched))
        tree = TreeChanges(exchange, self.root, keep, allow_external_links=self.allow_external_links,
                           paths=paths)
        outbox = _Outbox(self)
        inbox = BatchDecoder()  # the peer's batches are one stream: decoded in arrival order
        work = asyncio.Event()  # the server has something new: a request, or the last one
        progress = asyncio.Event()  # a file landed or the server finished
        fed = asyncio.Event()  # the receiver took a batch: maybe a file to ask again, or the end
        peer_skipped: list[Skipped] = []

        async def read() -> None:
            """Until the peer's DONE (callee) or FINISHED (caller)."""
            while True:
                frame = await self._receive(FrameType.RSYNC_BATCH, FrameType.RSYNC_DONE,
                                            FrameType.RSYNC_FINISHED)
                if frame.kind is not FrameType.RSYNC_BATCH:
                    want = FrameType.RSYNC_FINISHED if self.caller else FrameType.RSYNC_DONE
                    if frame.kind is not want or not (receiver.done and server.idle):
                        raise ExchangeError(f"the peer sent {frame.kind.name} before the "
                                            "exchange was complete")
                    peer_skipped.extend(decode_skipped(frame.payload))
                    return
                deltas = []
                for record in decode_records(inbox.decode(frame.payload)):
                    if record.tag in _SERVER_TAGS:
                        server.feed(record)
                    else:
                        deltas.append(record)
                work.set()  # the peer's requests go to the server before the batch's files land
                if deltas:
                    # The files are patched, hashed and renamed into place in a worker thread
                    # (mostly system calls, without the GIL), while the loop moves frames and
                    # builds the signatures of the next requests.
                    await _to_the_end(_feed_all, receiver, deltas)
                    for size, literal, matched in landed:
                        self.meter.count(size, literal, matched)
                    landed.clear()
                    landing = receiver.current
                    if landing is not None and not landing.small:
                        self.meter.report(Phase.DELTA, self.meter.done + landing.written, force=False)
                progress.set()
                fed.set()

        async def request() -> None:
            asked = 0
            for record in receiver.requests():
                await outbox.add(record)
                asked += 1
                if asked % REQUESTS_PER_FLUSH == 0:
                    await outbox.flush()
            # Files whose rebuilt bytes failed their hash are asked for again; the last request
            # waits for every file to land, so the peer keeps serving until then.
            while receiver.asking:
                fed.clear()
                for record in receiver.follow_ups():
                    await outbox.add(record)
                await outbox.flush()
                if receiver.asking:
                    await fed.wait()

        async def serve() -> None:
            while True:
                if server.jobs:
                    job = server.jobs.popleft()
                    start = self.meter.done
                    covered = [0]  # set by the generator, maybe in a worker thread
                    records = delta_records(job, lambda offset: covered.__setitem__(0, offset))
                    big = job.entry.size > SMALL_FILE
                    figures = (0, 0)
                    while (record := (await asyncio.to_thread(next, records, None) if big
                                      else next(records, None))) is not None:
                        if record[0] == Tag.DELTA_END:
                            figures = decode_delta_end(memoryview(record)[RECORD.size:])
                        await outbox.add(record)
                        if big:  # progress is reported from the event loop's thread only
                            self.meter.report(Phase.DELTA, start + covered[0], force=False)
                    self.meter.count(job.entry.size, *figures)
                elif server.idle:
                    await outbox.flush()
                    progress.set()
                    return
                else:
                    await outbox.flush()
                    if server.jobs or server.idle:  # a request came in while the batch went out
                        continue
                    work.clear()
                    await work.wait()

        try:
            tree.before_transfer()
            async with asyncio.TaskGroup() as tasks:
                requesting = tasks.create_task(request())
                serving = tasks.create_task(serve())
                reading = tasks.create_task(read())
                while not (receiver.done and serving.done()):
                    progress.clear()
                    await progress.wait()
                await requesting
                synced = exchange.synced()
                tree.after_transfer(synced)
                for path, why in receiver.asked_again:
                    log.info("%s: asked for %s again with whole strong hashes: %s",
                             self.context.dataset.name, path, why)
                await asyncio.to_thread(remember_hashes, hashes, self.root, receiver.received)
                self.meter.files += tree.applied + exchange.sent_in_manifest
                if exchange.changes_here:  # a sync of the whole file system costs even when idle
                    await asyncio.to_thread(sync_file_system, self.root)
                mine = receiver.skipped + tree.skipped
                if self.caller:
                    await self._send(FrameType.RSYNC_DONE, encode_skipped(mine))
                await reading
                if not self.caller:
                    self._save_synced(synced)
                    await self._send(FrameType.RSYNC_FINISHED, encode_skipped(mine))
            if self.caller:
                self._save_synced(synced)
        except BaseException:
            # What arrived of a big file stays beside it, never over it: the next sync resumes.
            receiver.abort()
            raise
        return mine + peer_skipped


def _feed_all(receiver: FileReceiver, records: list) -> None:
    for record in records:
        receiver.feed(record)


async def _to_the_end(function: Callable, *args: object) -> None:
    """`function` in a worker thread; if the task is cancelled meanwhile, it still waits for the
    thread, so that nothing (an abort keeping a partial file) touches the files it writes."""
    running = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait({running})
        raise


def _first(group: BaseExceptionGroup) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _unique(skips: list[Skipped]) -> list[Skipped]:
    return list(dict.fromkeys(skips))


def _reason(exc: BaseException, remote: str) -> str:
    if isinstance(exc, UnsafePath):
        return f"refused an unsafe path from {remote}: {exc}"
    if isinstance(exc, UnrepresentableName):
        return f"a name from {remote} cannot be stored here: {exc}"
    if isinstance(exc, OSError):
        return f"file system: {exc.strerror or exc} ({exc.filename or ''})"
    return str(exc)
