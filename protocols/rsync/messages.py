"""Payloads of the folder-sync frames: manifest pieces, file requests, end-of-delta figures.

Encoders and checked decoders only (sans-I/O); which frame carries which payload is in
`protocols/channel/framing.py` (RSYNC_*), the order of the exchange in `exchange.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import LimitExceeded, WireFormatError
from .manifest import Manifest

PIECE = 256 << 10  # manifest bytes per frame: well under the channel's frame cap
MAX_MANIFEST = 256 << 20  # a peer's manifest larger than this is refused before it is parsed


def manifest_pieces(manifest: Manifest) -> list[bytes]:
    data = manifest.to_json().encode()
    return [data[i:i + PIECE] for i in range(0, len(data), PIECE)] or [b""]


class ManifestAssembler:
    """Collects a peer's manifest from its pieces; `finish()` parses it (paths unchecked: see
    `exchange.check_remote`)."""

    def __init__(self, limit: int = MAX_MANIFEST) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, piece: bytes) -> None:
        if len(self._buf) + len(piece) > self._limit:
            raise LimitExceeded(f"the peer's manifest is over {self._limit} bytes")
        self._buf += piece

    def finish(self) -> Manifest:
        try:
            return Manifest.from_json(self._buf.decode())
        # RecursionError: JSON nested deeper than the interpreter's stack, which a peer can send.
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise WireFormatError(f"the peer's manifest is malformed: {exc}") from None


def _object(payload: bytes, what: str) -> dict:
    try:
        value = json.loads(bytes(payload).decode())
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the stack allows
        raise WireFormatError(f"malformed {what}: not JSON") from None
    if not isinstance(value, dict):
        raise WireFormatError(f"malformed {what}: not an object")
    return value


@dataclass(frozen=True)
class ManifestEnd:
    """Ends a manifest; `base` is the digest of the last-synced state the sender remembers
    with this peer ("" for none), so both sides plan from the same base or from none."""

    base: str

    def encode(self) -> bytes:
        return json.dumps({"base": self.base}).encode()

    @classmethod
    def decode(cls, payload: bytes) -> "ManifestEnd":
        base = _object(payload, "manifest end").get("base")
        if not isinstance(base, str) or len(base) > 128:
            raise WireFormatError("malformed manifest end: bad base digest")
        return cls(base)


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
