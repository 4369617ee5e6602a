"""The sending half of the pipelined exchange: the peer's requests in, delta records out.

Requests are checked against the plan as they arrive (`Exchange.check_request`); each complete
one becomes a `Job`, answered in arrival order by `delta_records()`, a generator the daemon steps
(in a thread for big files: hashing, matching and zstd release the GIL).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .delta import DeltaEncoder
from .errors import ExchangeError
from .exchange import Exchange
from .hashes import block_digest, file_hasher
from .manifest import FileEntry
from .messages import FileRequest
from .paths import InsideResolver
from .records import PIECE, RECORD, Record, Tag, decode_request, encode, encode_delta_end, pieces
from .signature import Signature
from .wire import LITERAL, OP_LITERAL, DeltaHeader, SignatureReader, encode_delta_header, encode_end, encode_literal

READ_CHUNK = 1 << 20
SMALL_LITERALS = 1 << 20
# A new file up to this size goes as one DELTA record (header, its bytes, end): most files of a
# source tree, each with one read and a few objects instead of a record per part.
WHOLE_RECORD = PIECE - 64


@dataclass(frozen=True)
class Job:
    request: FileRequest
    entry: FileEntry  # this side's, as scanned: what the file must still be
    signature: Signature
    path: str  # where it is, checked by the receiving-side rules too


class FileServer:
    """Collects the peer's requests; `jobs` holds the complete ones, oldest first."""

    def __init__(self, exchange: Exchange, root: Path) -> None:
        self._exchange = exchange
        self.paths = InsideResolver(root)
        self._open: tuple[FileRequest, FileEntry, SignatureReader] | None = None
        self.jobs: deque[Job] = deque()
        self.requests_done = False

    @property
    def idle(self) -> bool:
        """Nothing more will be asked: the peer said so and every request is answered."""
        return self.requests_done and self._open is None and not self.jobs

    def feed(self, record: Record) -> None:
        if self.requests_done:
            raise ExchangeError(f"a {record.tag.name} record after the peer's last request")
        if record.tag is Tag.REQUEST:
            if self._open is not None:
                raise ExchangeError("a file request before the previous one's signature ended")
            path, resume = decode_request(record.body)
            request = FileRequest(path, resume)
            self._open = (request, self._exchange.check_request(request), SignatureReader())
        elif record.tag is Tag.SIGNATURE and self._open is not None:
            self._open[2].feed(record.body)
        elif record.tag is Tag.SIGNATURE_END and self._open is not None:
            request, entry, reader = self._open
            self._open = None
            self.jobs.append(Job(request, entry, Signature.from_records(*reader.finish()),
                                 self.paths.file(self._exchange.source_of(request.path))))
        elif record.tag is Tag.REQUESTS_DONE and self._open is None:
            self.requests_done = True
        else:
            raise ExchangeError(f"unexpected {record.tag.name} record from the peer")


def delta_records(job: Job, on_read: Callable[[int], None] = lambda offset: None) -> Iterator[bytes]:
    """Records answering one job: DELTA pieces then DELTA_END, or MISSING when the file is no
    longer the one in the manifest (the receiver keeps its old version; the next sync sends it).
    `on_read(offset)` tells how far the records handed out so far cover the file."""
    try:
        source = open(job.path, "rb")
    except FileNotFoundError:
        yield encode(Tag.MISSING, b"vanished at the source during the sync")
        return
    with source:
        st = os.fstat(source.fileno())
        if (st.st_size, st.st_mtime_ns) != (job.entry.size, job.entry.mtime_ns):
            yield encode(Tag.MISSING, b"changed at the source during the sync")
            return
        if job.signature.basis_size == 0:
            yield from _literal_records(source, job, on_read)
            return
        # A small file's literals go raw: the batch compresses them along with its neighbours.
        small = job.entry.size <= SMALL_LITERALS
        encoder = DeltaEncoder(job.signature, resume_offset=job.request.resume_offset,
                               compress=not small)
        while True:
            on_read(source.tell())  # what was read before is handed over: progress, not plans
            if not (chunk := source.read(READ_CHUNK)):
                break
            yield from pieces(Tag.DELTA, b"".join(encoder.feed(chunk)))
        yield from pieces(Tag.DELTA, b"".join(encoder.finish()))
        stats = encoder.stats
        yield encode_delta_end(stats.literal_bytes, stats.copy_bytes)


def _literal_records(source, job: Job, on_read: Callable[[int], None]) -> Iterator[bytes]:
    """Nothing to match against: the file as raw literals (the batch compresses them, with the
    files around it as context), still framed as a delta so the receiver has one path."""
    sig, resume = job.signature, job.request.resume_offset
    header = encode_delta_header(DeltaHeader(sig.hash_kind, sig.block_size, 0, resume))
    if resume == 0 and job.entry.size <= WHOLE_RECORD:
        data = source.read(WHOLE_RECORD + 1)
        if len(data) <= WHOLE_RECORD:  # still small (it may have grown since the check)
            on_read(len(data))
            literal = LITERAL.pack(OP_LITERAL, len(data)) if data else b""
            end = encode_end(len(data), block_digest(sig.hash_kind)(data))
            body_length = len(header) + len(literal) + len(data) + len(end)
            yield b"".join((RECORD.pack(Tag.DELTA, body_length), header, literal, data, end))
            yield encode_delta_end(len(data), 0)
            return
        source.seek(0)
    yield encode(Tag.DELTA, header)
    hasher = file_hasher(sig.hash_kind)
    seen = sent = 0
    while True:
        on_read(source.tell())
        if not (chunk := source.read(READ_CHUNK)):
            break
        hasher.update(chunk)
        view = memoryview(chunk)
        if seen < resume:
            view = view[min(len(view), resume - seen):]
        seen += len(chunk)
        for i in range(0, len(view), PIECE - 16):
            part = view[i:i + PIECE - 16]
            sent += len(part)
            yield encode(Tag.DELTA, encode_literal(bytes(part)))
    yield encode(Tag.DELTA, encode_end(seen, hasher.digest()))
    yield encode_delta_end(sent, 0)
