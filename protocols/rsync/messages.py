"""Payloads of the folder-sync frames: the hello, manifest changes, file requests, figures.

Encoders and checked decoders only (sans-I/O); which frame carries which payload is in
`protocols/channel/framing.py` (RSYNC_*), the order of the exchange in peer/folder_sync.py, the
pipelined records in `records.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import zstandard

from .errors import LimitExceeded, WireFormatError
from .manifest import FileEntry, Manifest, Skipped, skipped_from_rows

# Version of the folder-sync exchange (hello, manifests, records); a peer speaking another one
# is refused with both numbers, never half understood. 3: deltas of format version 2 (literal
# packs), which a version-2 peer could not read. 4: signatures of version 2 (strong hashes cut
# to the file's size), a file asked for again when its rebuilt bytes fail their hash, the
# receiver's last request sent only once every file has landed, and deltas of format version 3
# (LZ4 packs).
EXCHANGE_VERSION = 4

PIECE = 256 << 10  # manifest bytes per frame: well under the channel's frame cap
MAX_MANIFEST = 256 << 20  # a peer's manifest larger than this is refused before it is parsed


class ManifestAssembler:
    """Collects a peer's manifest changes from their pieces; `finish_changes()` parses them
    (paths unchecked: see `exchange.check_remote`)."""

    def __init__(self, limit: int = MAX_MANIFEST) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, piece: bytes) -> None:
        if len(self._buf) + len(piece) > self._limit:
            raise LimitExceeded(f"the peer's manifest is over {self._limit} bytes")
        self._buf += piece

    def finish_changes(self, base: Manifest | None) -> tuple[Manifest, set[str]]:
        """The peer's manifest from its changes against `base` (the state both named), and
        the paths those changes name."""
        return apply_changes(bytes(self._buf), base, self._limit)


@dataclass(frozen=True)
class Hello:
    """Opens a folder sync: the exchange version and the digest of the last-synced state the
    sender remembers with this peer ("" for none). When both name the same state, manifests
    travel as changes against it, so a sync with nothing to do costs a few hundred bytes."""

    version: int
    base: str

    def encode(self) -> bytes:
        return json.dumps({"version": self.version, "base": self.base}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> "Hello":
        raw = _object(payload, "folder-sync hello")
        version, base = raw.get("version"), raw.get("base")
        if not isinstance(version, int) or not isinstance(base, str) or len(base) > 128:
            raise WireFormatError("malformed folder-sync hello")
        return cls(version, base)


def changed_paths(manifest: Manifest, base: Manifest | None) -> tuple[list[str], list[str]]:
    """Paths whose entry differs from `base` (or is new), and paths `base` has and it lacks."""
    old = base.entries if base is not None else {}
    now = manifest.entries
    # `o is e` first: a scan reuses the base's entry objects for what did not change
    changed = [path for path, e in now.items() if (o := old.get(path)) is not e and (o is None or o != e)]
    return changed, [path for path in old if path not in now]


def manifest_changes(manifest: Manifest, base: Manifest | None) -> bytes:
    """What differs between `manifest` and `base` (entries set, paths dropped), compressed;
    with no base, the whole manifest. The skipped list always travels: the peer reports it."""
    changed, dropped = changed_paths(manifest, base)
    text = json.dumps({"set": [manifest.entries[p].row() for p in changed], "drop": dropped,
                       "skipped": [[s.path, s.reason] for s in manifest.skipped]})
    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(text.encode())


def apply_changes(payload: bytes, base: Manifest | None,
                  limit: int = MAX_MANIFEST) -> tuple[Manifest, set[str]]:
    try:
        size = zstandard.frame_content_size(payload)
        if size < 0 or size > 4 * limit:
            raise LimitExceeded(f"the peer's manifest announces {size} bytes")
        raw = json.loads(zstandard.ZstdDecompressor().decompress(payload, max_output_size=size))
        entries = dict(base.entries) if base is not None else {}
        named: set[str] = set()
        for path in raw["drop"]:
            if not isinstance(path, str):
                raise ValueError("a dropped path is not a string")
            entries.pop(path, None)
            named.add(path)
        for row in raw["set"]:
            entry = FileEntry.from_row(row)
            entries[entry.path] = entry
            named.add(entry.path)
        skipped: tuple[Skipped, ...] = skipped_from_rows(raw.get("skipped", ()))
    except LimitExceeded:
        raise
    # RecursionError: JSON nested deeper than the interpreter's stack, which a peer can send.
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError,
            zstandard.ZstdError) as exc:
        raise WireFormatError(f"the peer's manifest is malformed: {exc}") from None
    return Manifest(dict(sorted(entries.items())), skipped), named


def changes_pieces(data: bytes) -> list[bytes]:
    return [data[i:i + PIECE] for i in range(0, len(data), PIECE)] or [b""]


def _object(payload: bytes, what: str) -> dict:
    try:
        value = json.loads(bytes(payload).decode())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack allows
        raise WireFormatError(f"malformed {what}: not JSON") from None
    if not isinstance(value, dict):
        raise WireFormatError(f"malformed {what}: not an object")
    return value


@dataclass(frozen=True)
class FileRequest:
    """The receiver asks for the peer's file `path`; it already holds `resume_offset` bytes of it."""

    path: str
    resume_offset: int = 0

    def encode(self) -> bytes:
        return json.dumps({"path": self.path, "resume": self.resume_offset}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> "FileRequest":
        raw = _object(payload, "file request")
        path, resume = raw.get("path"), raw.get("resume")
        if not isinstance(path, str) or not isinstance(resume, int) or isinstance(resume, bool) \
                or resume < 0:
            raise WireFormatError("malformed file request")
        return cls(path, resume)


@dataclass(frozen=True)
class DeltaFigures:
    """How the sender built one delta: bytes sent as literals and bytes matched in the basis."""

    literal: int
    matched: int

    def encode(self) -> bytes:
        return json.dumps({"literal": self.literal, "matched": self.matched}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> "DeltaFigures":
        raw = _object(payload, "delta end")
        literal, matched = raw.get("literal"), raw.get("matched")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in (literal, matched)):
            raise WireFormatError("malformed delta end")
        return cls(literal, matched)


def encode_skipped(skips: list[Skipped]) -> bytes:
    """Payload of RSYNC_DONE and RSYNC_FINISHED: what this side skipped, with the reasons."""
    return json.dumps({"skipped": [[s.path, s.reason] for s in skips]}).encode()


def decode_skipped(payload: bytes) -> list[Skipped]:
    raw = _object(payload, "end of the exchange")
    try:
        return list(skipped_from_rows(raw.get("skipped", ())))[:1000]
    except ValueError as exc:
        raise WireFormatError(f"malformed end of the exchange: {exc}") from None
