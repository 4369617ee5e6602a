"""Partial output of an interrupted patch, kept beside the target with a small state record.

The state names how many bytes of the new file are durable in the partial file (fsynced before
the record is written), so a retry asks the sender to start there and nothing is sent twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import xxhash

PREFIX = ".sipsync-partial-"
STATE_VERSION = 1


@dataclass(frozen=True)
class PartialState:
    offset: int
    hash_kind: int
    expected_digest: str | None = None  # hex; a retry for another file version starts afresh


def partial_path(target: Path) -> Path:
    # hashed name: the target's own name may already be as long as the file system allows
    tag = xxhash.xxh64_hexdigest(os.fsencode(target.name))
    return target.with_name(PREFIX + tag)


def state_path(target: Path) -> Path:
    return partial_path(target).with_name(partial_path(target).name + ".json")


def load_state(target: Path) -> PartialState | None:
    try:
        raw = json.loads(state_path(target).read_text())
        if raw.pop("version", None) != STATE_VERSION:
            return None
        state = PartialState(**raw)
        if not isinstance(state.offset, int) or state.offset < 0:
            return None
        return state
    except (OSError, ValueError, TypeError):
        return None


def save_state(target: Path, state: PartialState) -> None:
    path = state_path(target)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"version": STATE_VERSION, **asdict(state)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def discard(target: Path) -> None:
    for path in (state_path(target), partial_path(target)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def resume_offset(target: Path, expected_digest: bytes | None = None) -> int:
    """How far a previous attempt got for `target` (0: start afresh); tell the sender this."""
    target = Path(target)
    state = load_state(target)
    if state is None:
        return 0
    if expected_digest is not None and state.expected_digest not in (None, expected_digest.hex()):
        discard(target)
        return 0
    try:
        if partial_path(target).stat().st_size < state.offset:
            discard(target)
            return 0
    except FileNotFoundError:
        discard(target)
        return 0
    return state.offset
