"""Malformed and hostile messages get a Status error and leave the store as it was."""

import pytest

from protocols.syncml import SessionState, SyncCallee, SyncCaller
from protocols.syncml.messages import (
    MAX_MESSAGE_BYTES,
    Header,
    Item,
    ItemCommand,
    Map,
    MapItem,
    Message,
    Status,
    Sync,
    decode,
    encode,
)
from protocols.syncml.records import ChangeKind
from tests.syncml.harness import Clock, card, contents, sync
from tests.syncml.memory_store import MemoryStore


@pytest.fixture
def stores():
    clock = Clock()
    a, b = MemoryStore(clock=clock), MemoryStore(clock=clock)
    a.add(card("Ann", uid="ann"))
    b.add(card("Bob", uid="bob"))
    sync(a, b)
    return a, b


def _snapshot(store):
    return contents(store), store.current_seq(), store.anchor("A"), store.anchor("B"), store.id_map("A")


def _statuses(messages):
    return [command for data in messages for command in decode(data).commands if isinstance(command, Status)]


def _callee_waiting_for_changes(a, b):
    """A callee that has answered the Alert and now waits for the caller's message 2."""
    caller = SyncCaller(a, device="A", peer="B", dataset="contacts")
    callee = SyncCallee(b, device="B", dataset="contacts")
    for data in caller.data_to_send():
        callee.receive(data)
    callee.data_to_send()
    return caller, callee


def _from_caller(caller, msg_id, *commands, final=True):
    return encode(Message(Header(caller.session_id, msg_id, "A", "B"), commands, final))


def _replace(cmd_id, item_id, target=""):
    content = card("Evil", uid=item_id)
    return ItemCommand(cmd_id, ChangeKind.REPLACE, Item(item_id, target, "text/vcard", 5.0, content))


@pytest.mark.parametrize(
    "data",
    [
        b"<SyncML><SyncHdr>",
        b"\x00\x01 not xml",
        b"<html><body>hello</body></html>",
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b"<SyncML><SyncHdr><VerProto>&b;</VerProto></SyncHdr></SyncML>",
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><SyncML>&e;</SyncML>',
        b"<SyncML>" + b"<SyncBody>" * 16 + b"</SyncBody>" * 16 + b"</SyncML>",
        b"<SyncML><SyncHdr>\xc3(</SyncHdr></SyncML>",
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE x+AD4-<SyncML/>',
    ],
    ids=["truncated", "binary", "html", "billion-laughs", "xxe", "deep", "bad-utf-8", "utf-7-dtd"],
)
def test_a_message_that_is_not_clean_syncml_xml_gets_400_and_changes_nothing(stores, data):
    a, b = stores
    before = _snapshot(b)
    callee = SyncCallee(b, device="B", dataset="contacts")
    callee.receive(data)
    (status,) = _statuses(callee.data_to_send())
    assert status.code == 400 and status.cmd_ref == 0
    assert callee.state is SessionState.FAILED and _snapshot(b) == before


def test_an_oversized_message_is_refused_before_parsing(stores):
    a, b = stores
    callee = SyncCallee(b, device="B", dataset="contacts")
    callee.receive(b"<SyncML>" + b" " * MAX_MESSAGE_BYTES + b"</SyncML>")
    assert _statuses(callee.data_to_send())[0].code == 413


def test_a_package_that_never_ends_is_cut_off_at_the_package_cap(stores, monkeypatch):
    a, b = stores
    monkeypatch.setattr("protocols.syncml.engine.MAX_PACKAGE_BYTES", 20_000)
    caller, callee = _callee_waiting_for_changes(a, b)
    before = _snapshot(b)
    for msg_id in range(2, 40):
        callee.receive(_from_caller(caller, msg_id, Sync(1, "contacts", (_replace(2, f"x{msg_id}"),)), final=False))
    assert _statuses(callee.data_to_send())[0].code == 413
    assert callee.state is SessionState.FAILED and _snapshot(b) == before


def test_an_unknown_command_gets_406_and_nothing_of_its_package_is_applied(stores):
    a, b = stores
    caller, callee = _callee_waiting_for_changes(a, b)
    before = _snapshot(b)
    good = _from_caller(caller, 2, Sync(1, "contacts", (_replace(2, "bob"),)))
    hostile = good.replace(b"</SyncBody>", b"<Exec><CmdID>9</CmdID></Exec></SyncBody>")
    callee.receive(hostile)
    (status,) = _statuses(callee.data_to_send())
    assert status.code == 406 and "Exec" in status.reason
    assert callee.state is SessionState.FAILED and _snapshot(b) == before


def test_an_unknown_command_inside_sync_gets_406(stores):
    a, b = stores
    caller, callee = _callee_waiting_for_changes(a, b)
    before = _snapshot(b)
    good = _from_caller(caller, 2, Sync(1, "contacts", (_replace(2, "bob"),)))
    callee.receive(good.replace(b"<Replace>", b"<Copy>").replace(b"</Replace>", b"</Copy>"))
    assert _statuses(callee.data_to_send())[0].code == 406 and _snapshot(b) == before


def test_a_replace_or_delete_of_an_id_that_does_not_exist_gets_404_and_the_rest_goes_on(stores):
    a, b = stores
    caller, callee = _callee_waiting_for_changes(a, b)
    before = _snapshot(b)
    ghost_delete = ItemCommand(3, ChangeKind.DELETE, Item("ghost-2", "", "text/vcard", 5.0))
    ghost_replace = _replace(2, "their-id", target="ghost-1")  # names an id of ours that does not exist
    callee.receive(_from_caller(caller, 2, Sync(1, "contacts", (ghost_replace, ghost_delete))))
    statuses = _statuses(callee.data_to_send())
    assert sorted((s.ref, s.code) for s in statuses if s.cmd != "SyncHdr") == [("ghost-2", 404), ("their-id", 404)]
    assert callee.state is SessionState.RUNNING
    assert contents(b) == before[0] and b.current_seq() == before[1]


def test_a_map_for_an_unknown_item_gets_404_and_records_no_mapping(stores):
    a, b = stores
    caller, callee = _callee_waiting_for_changes(a, b)
    before = _snapshot(b)
    callee.receive(_from_caller(caller, 2, Map(1, (MapItem("a-id", "no-such-item"),)), Sync(2, "contacts", ())))
    (map_status,) = [s for s in _statuses(callee.data_to_send()) if s.cmd == "Map"]
    assert map_status.code == 404
    assert b.id_map("A") == {} and contents(b) == before[0]


def test_a_map_for_an_unknown_item_sent_to_the_caller_gets_404_too(stores):
    a, b = stores
    caller = SyncCaller(a, device="A", peer="B", dataset="contacts")
    callee = SyncCallee(b, device="B", dataset="contacts")
    for sender, receiver in ((caller, callee), (callee, caller)):  # Alert and its answer
        for data in sender.data_to_send():
            receiver.receive(data)
    caller.data_to_send()  # the caller's changes, lost
    before = _snapshot(a)
    hostile = Message(Header(caller.session_id, 2, "B", "A"), (Map(1, (MapItem("b-id", "no-such-item"),)),), True)
    caller.receive(encode(hostile))
    (map_status,) = [s for s in _statuses(caller.data_to_send()) if s.cmd == "Map"]
    assert map_status.code == 404 and a.id_map("B") == {} and _snapshot(a) == before


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (Header("another-session", 2, "A", "B"), 404),
        (Header(None, 7, "A", "B"), 400),  # out of order
        (Header(None, 2, "Mallory", "B"), 403),
        (Header(None, 2, "A", "Someone"), 404),
    ],
)
def test_a_message_from_the_wrong_session_sender_or_place_is_refused(stores, header, code):
    a, b = stores
    caller, callee = _callee_waiting_for_changes(a, b)
    before = _snapshot(b)
    if header.session_id is None:
        header = Header(caller.session_id, header.msg_id, header.source, header.target)
    callee.receive(encode(Message(header, (Sync(1, "contacts", (_replace(2, "bob"),)),), True)))
    (status,) = _statuses(callee.data_to_send())
    assert status.code == code and callee.state is SessionState.FAILED and _snapshot(b) == before


def test_an_alert_for_another_dataset_is_refused(stores):
    a, b = stores
    caller = SyncCaller(a, device="A", peer="B", dataset="calendar")
    callee = SyncCallee(b, device="B", dataset="contacts")
    for data in caller.data_to_send():
        callee.receive(data)
    assert _statuses(callee.data_to_send())[0].code == 404 and callee.state is SessionState.FAILED


def test_a_command_out_of_place_gets_405(stores):
    a, b = stores
    caller = SyncCaller(a, device="A", peer="B", dataset="contacts")
    callee = SyncCallee(b, device="B", dataset="contacts")
    before = _snapshot(b)
    callee.receive(_from_caller(caller, 1, Sync(1, "contacts", (_replace(2, "bob"),))))
    assert _statuses(callee.data_to_send())[0].code == 405 and _snapshot(b) == before


def test_the_caller_stops_when_the_callee_refuses_and_a_later_sync_still_works(stores):
    a, b = stores
    a.replace("ann", card("Annie", uid="ann"))
    caller = SyncCaller(a, device="A", peer="B", dataset="contacts")
    caller.data_to_send()
    refusal = Status(1, 1, 0, "SyncHdr", 500, reason="disk full")
    caller.receive(encode(Message(Header(caller.session_id, 1, "B", "A"), (refusal,), True)))
    assert caller.state is SessionState.FAILED and caller.error.code == 500
    assert caller.data_to_send() == []
    outcome = sync(a, b)
    assert outcome.wire.completed and contents(a) == contents(b)


def test_binary_content_travels_as_base64_and_arrives_intact(stores):
    a, b = stores
    blob = bytes(range(256))
    a.add(blob, "application/octet-stream", item_id="blob")
    sync(a, b)
    assert b.get("blob").content == blob
