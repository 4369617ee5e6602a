"""SyncML messages over channel frames: split when larger than a frame, put back together, and
the callee's summary read strictly."""

import json

import pytest

from peer.record_frames import CalleeSummary, MessageAssembler, message_frames
from protocols.channel.errors import ChannelError
from protocols.channel.framing import Frame, FrameType
from protocols.syncml import ConflictPolicy


def frames(message: bytes, cap: int) -> list[Frame]:
    return [Frame(kind, payload) for kind, payload in message_frames(message, cap)]


def test_a_message_that_fits_goes_in_one_frame_and_comes_back_as_it_was():
    (frame,) = frames(b"<SyncML/>", 1024)
    assert frame.kind is FrameType.SYNCML_MESSAGE
    assert MessageAssembler().take(frame) == b"<SyncML/>"


def test_a_message_larger_than_a_frame_is_split_and_reassembled():
    message = bytes(range(256)) * 10
    split = frames(message, 1000)
    assert [f.kind for f in split] == [FrameType.SYNCML_PART] * 2 + [FrameType.SYNCML_MESSAGE]
    assembler = MessageAssembler()
    assert [assembler.take(f) for f in split[:-1]] == [None, None]
    assert assembler.take(split[-1]) == message
    assert assembler.take(Frame(FrameType.SYNCML_MESSAGE, b"next")) == b"next"


def test_pieces_adding_up_to_more_than_the_message_cap_are_refused():
    assembler = MessageAssembler(max_message_bytes=100)
    assembler.take(Frame(FrameType.SYNCML_PART, b"x" * 60))
    with pytest.raises(ChannelError, match="over 100 bytes"):
        assembler.take(Frame(FrameType.SYNCML_PART, b"x" * 60))


def test_another_protocols_frame_during_a_sync_is_a_protocol_error():
    with pytest.raises(ChannelError, match="unexpected RSYNC_MANIFEST frame"):
        MessageAssembler().take(Frame(FrameType.RSYNC_MANIFEST, b""))


def test_the_summary_round_trips():
    summary = CalleeSummary(sent=3, applied=2, conflicts=1, policy=ConflictPolicy.KEEP_BOTH)
    assert CalleeSummary.decode(Frame(FrameType.SYNCML_SUMMARY, summary.encode())) == summary


@pytest.mark.parametrize("payload", [
    b"not json",
    json.dumps({"sent": -1, "applied": 0, "conflicts": 0, "policy": "newest-wins"}).encode(),
    json.dumps({"sent": 1, "applied": 0, "conflicts": "2", "policy": "newest-wins"}).encode(),
    json.dumps({"sent": 1, "applied": 0, "conflicts": 0, "policy": "loudest-wins"}).encode(),
    json.dumps({"sent": 1}).encode(),
    b"[]",
])
def test_an_unreadable_summary_is_a_protocol_error(payload):
    with pytest.raises(ChannelError, match="unreadable sync summary"):
        CalleeSummary.decode(Frame(FrameType.SYNCML_SUMMARY, payload))
