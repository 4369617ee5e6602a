"""Folder-sync payloads are JSON from the peer: nesting deeper than Python's stack is a malformed
payload like any other, not a crash of the exchange (also kept in tests/fuzz_corpus)."""

import pytest

from protocols.rsync import WireFormatError
from protocols.rsync.messages import (
    DeltaFigures,
    FileRequest,
    Hello,
    ManifestAssembler,
    decode_skipped,
)

DEEP = b"[" * 100_000


@pytest.mark.parametrize("decode", [Hello.decode, FileRequest.decode, DeltaFigures.decode,
                                    decode_skipped])
def test_a_payload_nested_past_the_stack_is_refused_as_malformed(decode):
    with pytest.raises(WireFormatError, match="not JSON"):
        decode(DEEP)


def test_a_manifest_nested_past_the_stack_is_refused_as_malformed():
    import zstandard

    assembler = ManifestAssembler()
    text = b'{"set": ' + DEEP
    assembler.feed(zstandard.ZstdCompressor(write_content_size=True).compress(text))
    with pytest.raises(WireFormatError, match="manifest is malformed"):
        assembler.finish_changes(None)
