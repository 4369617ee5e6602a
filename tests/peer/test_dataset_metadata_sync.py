"""The dataset's own data (a calendar's name, its unused time zones) settled between two devices:
the later edit wins where the sync mode lets it flow, a refresh copies its source, identical data
moves nowhere, and the frame that carries it refuses garbage."""

import pytest

from peer.dataset_metadata_sync import MetadataVersion, decode_versions, encode_versions, settle
from protocols.channel.errors import ChannelError
from protocols.channel.framing import Frame, FrameType
from protocols.syncml import SyncMode

ICS = "text/calendar"
OLD = MetadataVersion(ICS, b"BEGIN:VCALENDAR\r\nX-WR-CALNAME:Old\r\nEND:VCALENDAR\r\n", 100.0, 3)
NEW = MetadataVersion(ICS, b"BEGIN:VCALENDAR\r\nX-WR-CALNAME:New\r\nEND:VCALENDAR\r\n", 200.0, 1)


@pytest.mark.parametrize("mode, caller, callee, take, send", [
    (SyncMode.TWO_WAY, [NEW], [OLD], [NEW], []),
    (SyncMode.TWO_WAY, [OLD], [NEW], [], [NEW]),
    (SyncMode.TWO_WAY, [NEW], [], [NEW], []),
    (SyncMode.SLOW, [], [OLD], [], [OLD]),
    (SyncMode.TWO_WAY, [NEW], [NEW], [], []),
    (SyncMode.ONE_WAY_FROM_CALLER, [OLD], [NEW], [], []),  # the caller takes nothing
    (SyncMode.ONE_WAY_FROM_CALLEE, [NEW], [OLD], [], []),  # nor does the callee here
    (SyncMode.REFRESH_FROM_CALLER, [OLD], [NEW], [OLD], []),  # the source's, older or not
    (SyncMode.REFRESH_FROM_CALLEE, [NEW], [OLD], [], [OLD]),
])
def test_the_later_edit_wins_where_the_mode_lets_it_flow(mode, caller, callee, take, send):
    settlement = settle(caller, callee, mode)
    assert (list(settlement.take), list(settlement.send)) == (take, send)


def test_a_tie_on_the_modification_time_goes_to_the_callee_as_for_items():
    tied = MetadataVersion(ICS, NEW.content, OLD.modified)
    assert settle([tied], [OLD], SyncMode.TWO_WAY).send == (OLD,)


def test_versions_cross_the_wire_whole_and_garbage_is_refused():
    frame = Frame(FrameType.SYNCML_DATASET, encode_versions([NEW]))
    assert decode_versions(frame) == [MetadataVersion(ICS, NEW.content, NEW.modified)]
    for payload in (b"{", b'{"type": 1}', b'[{"type": "", "content": "", "modified": 1}]',
                    b'[{"type": "a", "content": "!!", "modified": 1}]'):
        with pytest.raises(ChannelError):
            decode_versions(Frame(FrameType.SYNCML_DATASET, payload))
    with pytest.raises(ChannelError):
        decode_versions(Frame(FrameType.SYNCML_SUMMARY, b"[]"))
