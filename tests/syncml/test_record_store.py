"""The record store as a person and the sync engine use it."""

import pytest

from peer.record_formats import split_vcards
from peer.record_store import ItemExists, ItemNotFound, RecordStore
from protocols.syncml import Change, StaleVersion
from tests.syncml.harness import Clock, card, contents, names


@pytest.fixture
def store():
    with RecordStore(":memory:", clock=Clock()) as opened:
        yield opened


def test_a_card_with_a_uid_is_stored_under_its_uid(store):
    meta = store.add(card("Ann", uid="ann-1"))
    assert meta.id == "ann-1"
    assert (meta.version, meta.content_type, meta.deleted) == (1, "text/vcard", False)


def test_a_card_without_uid_gets_a_generated_id(store):
    first, second = store.add(card("Ann")), store.add(card("Ann"))
    assert first.id != second.id and len(first.id) == 36


def test_an_edit_bumps_the_version_and_moves_the_item_up_the_change_log(store):
    added = store.add(card("Ann", uid="a"))
    edited = store.replace("a", card("Annie", uid="a"))
    assert edited.version == 2 and edited.seq > added.seq and edited.created_seq == added.seq
    assert names(store) == {"a": "Annie"}


def test_a_delete_leaves_a_tombstone_that_a_scan_reports(store):
    store.add(card("Ann", uid="a"))
    seq = store.current_seq()
    store.delete("a")
    assert contents(store) == {}
    (tombstone,) = store.scan(after_seq=seq)
    assert tombstone.deleted and tombstone.version == 2 and store.get("a").content is None


def test_adding_a_uid_that_exists_is_refused_and_editing_a_missing_item_too(store):
    store.add(card("Ann", uid="a"))
    with pytest.raises(ItemExists):
        store.add(card("Other Ann", uid="a"))
    with pytest.raises(ItemNotFound):
        store.replace("nobody", card("x"))
    with pytest.raises(ItemNotFound):
        store.delete("nobody")


def test_a_deleted_uid_can_be_added_again_and_counts_as_new(store):
    store.add(card("Ann", uid="a"))
    store.delete("a")
    again = store.add(card("Ann", uid="a"))
    assert again.live and again.version == 3 and again.created_seq == again.seq


def test_importing_a_file_adds_its_cards_and_importing_it_again_changes_nothing(store):
    data = card("Ann", uid="a") + card("Bob", uid="b") + card("Cy")
    first = store.import_bytes(data)
    seq = store.current_seq()
    second = store.import_bytes(card("Ann", uid="a") + card("Bob", uid="b"))
    assert len(first.added) == 3 and second.unchanged == ("a", "b") and store.current_seq() == seq


def test_import_replaces_the_items_whose_uid_is_known(store):
    store.import_bytes(card("Ann", uid="a"))
    report = store.import_bytes(card("Annie", uid="a"))
    assert report.replaced == ("a",) and names(store) == {"a": "Annie"}


def test_export_gives_a_file_that_imports_into_the_same_items(store, tmp_path):
    store.import_bytes(card("Ann", uid="a") + card("Bob", uid="b"))
    exported = store.export_bytes()
    assert split_vcards(exported) == [card("Ann", uid="a"), card("Bob", uid="b")]
    with RecordStore(tmp_path / "other.db") as other:
        other.import_bytes(exported)
        assert contents(other) == contents(store)


def test_a_sync_write_with_a_stale_version_writes_nothing(store):
    store.add(card("Ann", uid="a"))
    store.replace("a", card("Annie", uid="a"))
    seq = store.current_seq()
    with pytest.raises(StaleVersion):
        store.apply(Change("a", card("Sync", uid="a"), "text/vcard", 5.0), expected_version=1, origin="B")
    with pytest.raises(StaleVersion):
        store.apply(Change("a", card("New", uid="a"), "text/vcard", 5.0), expected_version=0, origin="B")
    assert names(store) == {"a": "Annie"} and store.current_seq() == seq


def test_a_scan_for_a_device_leaves_out_what_that_device_wrote(store):
    store.add(card("Ann", uid="a"))
    store.apply(Change("b", card("Bob", uid="b"), "text/vcard", 5.0), expected_version=0, origin="B")
    assert [meta.id for meta in store.scan(not_from="B")] == ["a"]
    assert [meta.id for meta in store.scan(not_from="C")] == ["a", "b"]


def test_a_touched_item_is_offered_again_without_changing(store):
    store.apply(Change("b", card("Bob", uid="b"), "text/vcard", 5.0), expected_version=0, origin="B")
    store.touch("b")
    (meta,) = store.scan(not_from="B")
    assert meta.version == 1 and meta.origin is None


def test_two_connections_to_one_file_see_each_others_writes(tmp_path):
    # the daemon and the CLI open the same dataset
    path = tmp_path / "contacts.db"
    with RecordStore(path) as daemon, RecordStore(path) as cli:
        cli.add(card("Ann", uid="a"))
        assert names(daemon) == {"a": "Ann"}
        meta = daemon.meta("a")
        cli.replace("a", card("Annie", uid="a"))
        with pytest.raises(StaleVersion):
            daemon.apply(Change("a", card("Sync", uid="a"), "text/vcard", 1.0), expected_version=meta.version,
                         origin="B")
    with RecordStore(path) as reopened:
        assert names(reopened) == {"a": "Annie"}


def test_an_overlong_or_unprintable_uid_still_gives_the_same_id_everywhere(store):
    content = card("Ann", uid="x" * 300)
    first = store.add(content)
    with RecordStore(":memory:") as other:
        assert other.add(content).id == first.id != "x" * 300
