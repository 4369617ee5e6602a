"""How record sync rides the data channel, sans-I/O: SyncML messages cut into frames and put back
together, and the callee's closing summary."""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.framing import Frame, FrameType
from protocols.syncml.conflicts import ConflictPolicy
from protocols.syncml.messages import MAX_MESSAGE_BYTES

_MAX_SUMMARY_BYTES = 4096


def message_frames(message: bytes, max_payload: int) -> list[tuple[FrameType, bytes]]:
    """One SYNCML_MESSAGE frame, or SYNCML_PART frames ending in a SYNCML_MESSAGE when the
    message is larger than a frame (a big item: messages may reach 8 MiB, frames 1 MiB)."""
    pieces = [message[start : start + max_payload] for start in range(0, len(message), max_payload)]
    pieces = pieces or [b""]
    return [(FrameType.SYNCML_PART, piece) for piece in pieces[:-1]] + [
        (FrameType.SYNCML_MESSAGE, pieces[-1])
    ]


class MessageAssembler:
    """Frames in, whole SyncML messages out; anything else on the channel is a protocol error."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._parts: list[bytes | bytearray] = []
        self._size = 0

    def take(self, frame: Frame) -> bytes | bytearray | None:
        """The message this frame completes, or None while pieces are still coming."""
        if frame.kind not in (FrameType.SYNCML_MESSAGE, FrameType.SYNCML_PART):
            raise ChannelError(f"unexpected {frame.kind.name} frame during a record sync",
                               ErrorCode.PROTOCOL)
        self._size += len(frame.payload)
        if self._size > self.max_message_bytes:
            raise ChannelError(f"a SyncML message over {self.max_message_bytes} bytes",
                               ErrorCode.PROTOCOL)
        if frame.kind is FrameType.SYNCML_PART:
            self._parts.append(frame.payload)
            return None
        if not self._parts:
            self._size = 0
            return frame.payload  # the usual case: the whole message in one frame, no copy
        message = b"".join([*self._parts, frame.payload])
        self._parts, self._size = [], 0
        return message


@dataclass(frozen=True)
class CalleeSummary:
    """What the callee did, for the caller to report: the caller alone talks to the server about
    progress, and only the callee knows the conflicts it settled and by which policy."""

    sent: int  # item commands the callee sent
    applied: int  # items the callee wrote
    conflicts: int
    policy: ConflictPolicy

    def encode(self) -> bytes:
        return json.dumps({"sent": self.sent, "applied": self.applied,
                           "conflicts": self.conflicts, "policy": self.policy.value}).encode()

    @classmethod
    def decode(cls, frame: Frame) -> CalleeSummary:
        if frame.kind is not FrameType.SYNCML_SUMMARY:
            raise ChannelError(f"expected the callee's summary, got a {frame.kind.name} frame",
                               ErrorCode.PROTOCOL)
        try:
            if len(frame.payload) > _MAX_SUMMARY_BYTES:
                raise ValueError("too long")
            fields = json.loads(bytes(frame.payload))
            counts = [fields[name] for name in ("sent", "applied", "conflicts")]
            if not all(type(count) is int and count >= 0 for count in counts):
                raise ValueError("counts must be whole numbers")
            return cls(*counts, policy=ConflictPolicy(fields["policy"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ChannelError(f"unreadable sync summary from the callee: {exc}",
                               ErrorCode.PROTOCOL) from None
