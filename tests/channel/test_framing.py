"""Frames from bytes and back, without sockets."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.channel.errors import ChannelError, ErrorCode, decode_error, encode_error
from protocols.channel.framing import (
    HEADER_SIZE,
    Frame,
    FrameDecoder,
    FrameType,
    encode_frame,
)

frames = st.lists(
    st.builds(Frame, st.sampled_from(list(FrameType)), st.binary(max_size=300)), max_size=12
)


def test_a_frame_is_a_six_byte_header_and_its_payload():
    assert encode_frame(FrameType.DATA, b"abc") == b"\x06\x00\x00\x00\x00\x03abc"


def test_frames_fed_in_one_piece_come_out_in_order():
    stream = encode_frame(FrameType.DATA, b"one") + encode_frame(FrameType.CLOSE)
    assert FrameDecoder().feed(stream) == [Frame(FrameType.DATA, b"one"), Frame(FrameType.CLOSE)]


def test_a_frame_split_inside_its_header_waits_for_the_rest():
    decoder = FrameDecoder()
    stream = encode_frame(FrameType.DATA, b"payload")
    assert decoder.feed(stream[:3]) == []
    assert decoder.in_frame
    assert decoder.feed(stream[3:]) == [Frame(FrameType.DATA, b"payload")]
    assert not decoder.in_frame


@given(frames, st.lists(st.integers(min_value=1, max_value=64), max_size=40))
def test_any_chunking_of_the_stream_gives_the_same_frames(sent, cuts):
    stream = b"".join(encode_frame(frame.kind, frame.payload) for frame in sent)
    decoder = FrameDecoder()
    received, offset = [], 0
    for cut in cuts:
        received += decoder.feed(stream[offset : offset + cut])
        offset += cut
    received += decoder.feed(stream[offset:])
    assert received == sent
    assert not decoder.in_frame


def test_an_unknown_frame_type_is_garbage():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x99" + b"GET / HTTP/1.1\r\n\r\n") == []
    assert decoder.error.reason == "garbage on the channel: unknown frame type 0x99"
    assert decoder.error.code is ErrorCode.PROTOCOL


def test_an_http_request_is_garbage_even_where_its_first_byte_names_a_frame_type():
    decoder = FrameDecoder()  # "G" is 0x47, an rsync frame type; the flags byte gives it away
    assert decoder.feed(b"GET / HTTP/1.1\r\n\r\n") == []
    assert decoder.error.reason == "garbage on the channel: unknown flags 0x45 on a RSYNC_DONE frame"


def test_reserved_flags_set_are_garbage():
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">BBI", FrameType.DATA, 0x80, 0))
    assert decoder.error.reason == "garbage on the channel: unknown flags 0x80 on a DATA frame"


def test_a_frame_over_the_cap_is_refused_from_its_header_alone():
    decoder = FrameDecoder(max_frame_size=1024)
    decoder.feed(struct.pack(">BBI", FrameType.DATA, 0, 1025))
    assert decoder.error.reason == "a DATA frame of 1025 bytes exceeds the cap of 1024 bytes"


def test_frames_before_the_garbage_are_still_handed_out():
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(FrameType.DATA, b"good") + b"\xffjunk!") == [
        Frame(FrameType.DATA, b"good")
    ]
    assert decoder.error is not None


def test_a_frame_exactly_at_the_cap_is_accepted():
    decoder = FrameDecoder(max_frame_size=1024)
    assert decoder.feed(encode_frame(FrameType.DATA, bytes(1024))) == [
        Frame(FrameType.DATA, bytes(1024))
    ]


def test_after_garbage_the_decoder_refuses_everything():
    decoder = FrameDecoder()
    decoder.feed(b"\xff" * HEADER_SIZE)
    with pytest.raises(ChannelError, match="unknown frame type 0xff"):
        decoder.feed(encode_frame(FrameType.DATA, b"fine"))


@given(st.binary(min_size=HEADER_SIZE, max_size=200))
def test_random_bytes_give_frames_or_a_protocol_error_never_anything_else(data):
    decoder = FrameDecoder(max_frame_size=256)
    for frame in decoder.feed(data):
        assert len(frame.payload) <= 256
    assert decoder.error is None or decoder.error.code is ErrorCode.PROTOCOL


def test_an_error_frame_carries_its_code_and_reason_to_the_peer():
    error = decode_error(encode_error(ErrorCode.AUTHENTICATION, "wrong session token"))
    assert (error.code, error.reason, error.remote) == (
        ErrorCode.AUTHENTICATION,
        "wrong session token",
        True,
    )
    assert str(error) == "the peer reports: wrong session token"


def test_an_error_frame_with_an_unknown_code_still_reads_as_an_error():
    error = decode_error(b"\xee" + "disk on fire".encode())
    assert (error.code, error.reason) == (ErrorCode.PROTOCOL, "disk on fire")
