"""A number in a SyncML message is ASCII digits: any other digit is refused with a Status code,
not a crash of the engine ('\u00b2' passes str.isdigit, int() refuses it)."""

import pytest

from protocols.syncml.messages import Header, Message, MessageError, Status, decode, encode

HEADER = Header("s1", 1, "alice/laptop", "alice/phone")
GOOD = encode(Message(HEADER, (Status(1, 1, 0, "SyncHdr", 200),), final=True))


def test_a_message_with_ascii_numbers_decodes():
    assert decode(GOOD).header.msg_id == 1


@pytest.mark.parametrize("digit", ["\u00b2", "\u2460", "\u0663"])
def test_a_number_written_with_other_digits_is_refused_with_400(digit):
    bad = GOOD.replace(b"<MsgID>1</MsgID>", f"<MsgID>{digit}</MsgID>".encode())
    assert bad != GOOD
    with pytest.raises(MessageError, match="not a number") as refused:
        decode(bad)
    assert refused.value.code == 400
