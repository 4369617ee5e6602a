"""Folder-sync payloads are JSON from the peer: nesting deeper than Python's stack is a malformed
payload like any other, not a crash of the exchange (also kept in tests/fuzz_corpus)."""

import pytest

from protocols.rsync import WireFormatError
from protocols.rsync.messages import DeltaFigures, FileRequest, ManifestAssembler, ManifestEnd

DEEP = b"[" * 100_000


@pytest.mark.parametrize("decode", [ManifestEnd.decode, FileRequest.decode, DeltaFigures.decode])
def test_a_payload_nested_past_the_stack_is_refused_as_malformed(decode):
    with pytest.raises(WireFormatError, match="not JSON"):
        decode(DEEP)


def test_a_manifest_nested_past_the_stack_is_refused_as_malformed():
    assembler = ManifestAssembler()
    assembler.feed(b'{"files": ' + DEEP)
    with pytest.raises(WireFormatError, match="manifest is malformed"):
        assembler.finish()
