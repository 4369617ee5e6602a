"""The receiving half of the pipelined exchange: requests out, delta records in, files installed.

`requests()` yields the request and signature records for every incoming file, in plan order;
the sender answers in that order, so `feed()` knows which file each DELTA record belongs to.
A small file is rebuilt in memory and installed by an atomic rename (no fsync per file: the
daemon syncs the file system once at the end); a big one goes through `FilePatcher`, which
checkpoints and resumes. Either way a reader sees the old file or the new one, never a half.

Signatures carry strong hashes cut to what the file's size needs (`strong_len_for`), so a block
may now and then be taken for a match it is not: the rebuilt file then fails its whole-file
hash, nothing is installed, and `follow_ups()` asks for that file once more with whole strong
hashes from its first byte. REQUESTS_DONE follows only when every file has landed or been
skipped, so the sender is still listening when a file is asked for again.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Iterator

from .errors import ExchangeError, IntegrityError
from .exchange import Exchange, Incoming
from .manifest import EntryKind, Skipped
from .partial import resume_offset
from .patch import FilePatcher, apply_delta
from .paths import InsideResolver
from .records import Record, Tag, decode_delta_end, encode, encode_request, pieces
from .hashes import DIGEST_LEN
from .signature import SignatureBuilder, choose_block_size, strong_len_for
from .wire import Limits

SMALL_FILE = 1 << 20  # rebuilt in memory, no resume state: sending it again costs little
READ_CHUNK = 1 << 20
TMP_PREFIX = ".sipsync-tmp-"

# Called with a path relative to the dataset root before a sync replaces or deletes the regular
# file there (peer/versions.py keeps a copy of it).
KeepVersion = Callable[[str], object]


def _no_versions(relative: str) -> None:
    return None


def install_bytes(target: str | os.PathLike, data: bytes, mode: int, mtime_ns: int) -> None:
    """Write `data` beside `target` and rename it over: the old file or the new one, never half."""
    tmp = os.path.join(os.path.dirname(target), f"{TMP_PREFIX}{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # left by a process that died here; this pid's name is ours
        os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _Landing:
    """Where one incoming file's delta goes while it arrives (`again`: the second attempt)."""

    def __init__(self, item: Incoming, target: str, basis: str, resume: int, *,
                 again: bool = False) -> None:
        self.item, self.target, self.basis, self.again = item, target, basis, again
        self.small = resume == 0 and item.entry.size <= SMALL_FILE and _size(basis) <= 4 * SMALL_FILE
        self._buf = bytearray()
        self._patcher: FilePatcher | None = None
        if not self.small:
            self._patcher = FilePatcher(target, basis, expected_digest=item.entry.digest,
                                        mode=item.entry.mode, mtime_ns=item.entry.mtime_ns)

    @property
    def written(self) -> int:
        return self._patcher.written if self._patcher is not None else 0

    def feed(self, data) -> None:
        if self._patcher is not None:
            self._patcher.feed(bytes(data))
            if self._patcher.written > self.item.entry.size:  # the hash would fail too, at the end
                raise ExchangeError(f"the peer sends more of {self.item.path!r} than its "
                                    f"{self.item.entry.size} bytes")
            return
        self._buf += data
        if len(self._buf) > 2 * SMALL_FILE + (64 << 10):
            raise ExchangeError(f"the peer sends a delta for {self.item.path!r} far larger "
                                f"than its {self.item.entry.size} bytes")

    def finish(self, keep_version: KeepVersion, relative: str) -> None:
        entry = self.item.entry
        if self._patcher is not None:
            if os.path.exists(self.target):
                keep_version(relative)
            self._patcher.finish()
            return
        basis = b""
        if self.item.basis is not None:
            try:
                with open(self.basis, "rb") as source:
                    basis = source.read()
            except FileNotFoundError:
                basis = b""
        # The output may not grow past what the manifest announced: a delta of repeated COPY
        # records cannot make a small file big in memory.
        limits = Limits(max_file_size=max(entry.size, len(basis)))
        try:
            # checked against the sender's hash and the manifest's, hashed once
            data = apply_delta(basis, bytes(self._buf), limits, expected_digest=entry.digest)
        except IntegrityError as exc:
            raise IntegrityError(f"{self.item.path!r}: {exc}") from None
        if len(data) != entry.size:
            raise IntegrityError(f"{self.item.path!r}: rebuilt {len(data)} bytes, the manifest says {entry.size}")
        if os.path.lexists(self.target):
            keep_version(relative)
        install_bytes(self.target, data, entry.mode, entry.mtime_ns)

    def abort(self, *, keep_partial: bool) -> None:
        if self._patcher is not None:
            self._patcher.abort(keep_partial=keep_partial)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


class FileReceiver:
    """Asks for every incoming file of `exchange` and installs what arrives."""

    def __init__(self, exchange: Exchange, root: Path, *,
                 keep_version: KeepVersion = _no_versions,
                 paths: InsideResolver | None = None) -> None:
        self._exchange, self._root, self._keep = exchange, root, keep_version
        self._paths = paths or InsideResolver(root)
        self._made: set[str] = set()  # folders (relative) made here for files
        self._asked: deque[_Landing] = deque()
        self._again: deque[Incoming] = deque()  # failed their whole-file hash: ask once more
        self._told_done = False
        self._kept: set[str] = set()
        self._current: _Landing | None = None
        self.pending = len(exchange.incoming)
        self.skipped: list[Skipped] = []
        self.received: list[Incoming] = []
        self.asked_again: list[tuple[str, str]] = []  # (path, why the first attempt failed)
        self.literal = self.matched = 0
        self.on_file: Callable[[Incoming, int, int], None] = lambda item, literal, matched: None

    @property
    def done(self) -> bool:
        return self.pending == 0

    @property
    def current(self) -> _Landing | None:
        return self._current

    @property
    def asking(self) -> bool:
        """REQUESTS_DONE has not been handed out yet."""
        return not self._told_done

    def requests(self) -> Iterator[bytes]:
        """REQUEST, SIGNATURE pieces, SIGNATURE_END per incoming file (then see `follow_ups`).
        Each step reads at most one chunk of a basis, so the daemon can step it between frames."""
        for item in self._exchange.incoming:
            target = self._paths.file(item.target)
            folder = item.target.rpartition("/")[0]
            made = self._exchange.remote.get(folder)  # a folder of the peer's: made already
            if folder and (made is None or made.kind is not EntryKind.DIR) \
                    and folder not in self._made:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                self._made.add(folder)
            resume = resume_offset(target, item.entry.digest) if item.entry.size > SMALL_FILE else 0
            yield from self._request(item, target, resume, again=False)

    def follow_ups(self) -> Iterator[bytes]:
        """The requests again for the files whose rebuilt bytes failed their whole-file hash
        since the last call (whole strong hashes, from the first byte); once every file has
        landed or been skipped, REQUESTS_DONE, once. Call after `requests()` and after feeds."""
        while self._again:
            item = self._again.popleft()
            yield from self._request(item, self._paths.file(item.target), 0, again=True)
        if self.done and not self._told_done:
            self._told_done = True
            yield encode(Tag.REQUESTS_DONE)

    def _request(self, item: Incoming, target: str, resume: int, *, again: bool) -> Iterator[bytes]:
        # No basis: the target itself (absent, or the patcher would refuse it as a basis).
        basis = self._paths.file(item.basis) if item.basis else target
        yield encode_request(item.path, resume)
        try:
            source = open(basis, "rb") if item.basis is not None else None
        except FileNotFoundError:
            source = None
        if source is None:
            yield from pieces(Tag.SIGNATURE, SignatureBuilder(0).finish())
        else:
            with source:
                size = os.fstat(source.fileno()).st_size
                strong = DIGEST_LEN if again else \
                    strong_len_for(item.entry.size, size, choose_block_size(size))
                builder = SignatureBuilder(size, strong_len=strong)
                while chunk := source.read(READ_CHUNK):
                    yield from pieces(Tag.SIGNATURE, builder.feed(chunk))
                yield from pieces(Tag.SIGNATURE, builder.finish())
        yield encode(Tag.SIGNATURE_END)
        self._asked.append(_Landing(item, target, basis, resume, again=again))

    def feed(self, record: Record) -> None:
        if record.tag is Tag.DELTA:
            self._start().feed(record.body)
        elif record.tag is Tag.DELTA_END:
            landing = self._start()
            literal, matched = decode_delta_end(record.body)
            self._current = None
            try:
                landing.finish(self._keep_once, landing.item.target)
            except IntegrityError as exc:
                # Most likely a block taken for a match by its cut strong hash (or a partial
                # from an earlier attempt that no longer fits): nothing was installed.
                if landing.again:
                    raise
                self._again.append(landing.item)
                self.asked_again.append((landing.item.path, str(exc)))
                return
            self._landed(landing.item, literal, matched)
        elif record.tag is Tag.MISSING:
            landing = self._start()
            self._current = None
            landing.abort(keep_partial=False)
            reason = bytes(record.body).decode("utf-8", "replace")[:200]
            self.skipped.append(Skipped(landing.item.path, reason))
            self.pending -= 1
        else:
            raise ExchangeError(f"unexpected {record.tag.name} record from the peer")

    def abort(self) -> None:
        """The sync stops here: a big file's bytes so far stay beside it for the next attempt."""
        if self._current is not None:
            self._current.abort(keep_partial=True)
            self._current = None

    def _keep_once(self, relative: str) -> None:
        """A big file's old version is kept before its patch is checked: a second attempt at
        the same file must not keep it again."""
        if relative not in self._kept:
            self._kept.add(relative)
            self._keep(relative)

    def _start(self) -> _Landing:
        if self._current is None:
            if not self._asked:
                raise ExchangeError("a delta from the peer for a file this side did not ask for")
            self._current = self._asked.popleft()
        return self._current

    def _landed(self, item: Incoming, literal: int, matched: int) -> None:
        self.pending -= 1
        self.literal += literal
        self.matched += matched
        self.received.append(item)
        self.on_file(item, literal, matched)
