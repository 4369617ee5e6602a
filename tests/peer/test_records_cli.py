"""`sipsync-peer records`: a person's edits to a record dataset, from the command line."""

import json

import pytest
from click.testing import CliRunner

from peer.cli import main

ANN = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ann\r\nFN:Ann Smith\r\nEND:VCARD\r\n"
BOB = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bob\r\nFN:Bob\\, Jr.\r\nTEL:+1555\r\nEND:VCARD\r\n"
LUNCH = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:lunch-1\r\nDTSTART:20260101T120000Z\r\n"
         "SUMMARY:Lunch with Ann\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:call-2\r\n"
         "DTSTART:20260102T090000Z\r\nSUMMARY:Call Bob\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.fixture
def peer(tmp_path):
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args], input=input)

    assert run("init", "--server", "127.0.0.1:5060", "--user", "alice", "--device", "laptop",
               "--password", "pw").exit_code == 0
    assert run("dataset", "add", "contacts", "--type", "contacts", "--path",
               str(tmp_path / "contacts")).exit_code == 0
    return run


def listed(peer, *extra: str) -> list[dict]:
    result = peer("records", "contacts", "list", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_record_dataset_defaults_to_syncml_and_keeps_its_store_in_its_folder(peer, tmp_path):
    result = peer("status", "--json")
    (dataset,) = json.loads(result.output)["datasets"]
    assert dataset["protocols"] == ["syncml"]
    peer("records", "contacts", "add", input=ANN)
    assert (tmp_path / "contacts" / "records.db").exists()


def test_import_list_edit_delete_and_export_round_trip(peer, tmp_path):
    (tmp_path / "people.vcf").write_text(ANN + BOB, newline="")
    result = peer("records", "contacts", "import", str(tmp_path / "people.vcf"))
    assert result.exit_code == 0
    assert result.output.strip() == "imported 2 item(s): 2 added, 0 replaced, 0 unchanged"

    rows = listed(peer)
    assert [(r["id"], r["summary"], r["version"], r["deleted"]) for r in rows] == [
        ("ann", "Ann Smith", 1, False), ("bob", "Bob, Jr.", 1, False)]
    assert {r["content_type"] for r in rows} == {"text/vcard"}
    assert all(isinstance(r["modified"], float) for r in rows)

    (tmp_path / "annie.vcf").write_text(ANN.replace("Ann Smith", "Annie"), newline="")
    result = peer("records", "contacts", "edit", "ann", "--file", str(tmp_path / "annie.vcf"))
    assert result.output.strip() == "replaced ann (version 2)"
    assert peer("records", "contacts", "delete", "bob").output.strip() == "deleted bob"
    assert [(r["id"], r["summary"]) for r in listed(peer)] == [("ann", "Annie")]
    assert [(r["id"], r["deleted"]) for r in listed(peer, "--all")] == [("ann", False), ("bob", True)]

    result = peer("records", "contacts", "export", "--output", str(tmp_path / "out.vcf"))
    assert result.exit_code == 0
    assert (tmp_path / "out.vcf").read_bytes() == ANN.replace("Ann Smith", "Annie").encode()
    # Importing the export again changes nothing.
    result = peer("records", "contacts", "import", str(tmp_path / "out.vcf"))
    assert result.output.strip() == "imported 1 item(s): 0 added, 0 replaced, 1 unchanged"


def test_add_reads_standard_input_and_names_the_item_by_its_uid(peer):
    result = peer("records", "contacts", "add", "-", input=ANN)
    assert (result.exit_code, result.output.strip()) == (0, "added ann")
    result = peer("records", "contacts", "add", input=ANN)
    assert result.exit_code == 1 and "exists already" in result.output


def test_a_calendar_dataset_imports_an_ics_event_by_event(peer, tmp_path):
    peer("dataset", "add", "diary", "--type", "calendar", "--path", str(tmp_path / "diary"))
    (tmp_path / "events.ics").write_text(LUNCH, newline="")
    assert peer("records", "diary", "import", str(tmp_path / "events.ics")).exit_code == 0
    rows = json.loads(peer("records", "diary", "list", "--json").output)
    assert {r["id"]: r["summary"] for r in rows} == {"lunch-1": "Lunch with Ann", "call-2": "Call Bob"}
    exported = peer("records", "diary", "export").output
    assert exported.count("BEGIN:VEVENT") == 2 and exported.count("BEGIN:VCALENDAR") == 1


@pytest.mark.parametrize("args, stdin, code, reason", [
    (("records", "nosuch", "list"), None, 1, "no dataset 'nosuch'"),
    (("records", "contacts", "edit", "zed", "-"), ANN, 1, "no item 'zed'"),
    (("records", "contacts", "delete", "zed"), None, 1, "no item 'zed'"),
    (("records", "contacts", "add"), "this is not a card\n", 1, "not a vCard or iCalendar"),
    (("records", "contacts", "add"), "BEGIN:VCARD\r\nFN:x\r\n", 1, "without END:VCARD"),
    (("records", "contacts", "add"), ANN + BOB, 1, "holds 2 items; `import` takes several"),
    (("records", "contacts", "frobnicate"), None, 2, "No such command"),
    (("records", "contacts", "import", "missing.vcf"), None, 2, "does not exist"),
])
def test_failures_say_why_with_exit_code_1_and_bad_usage_gets_2(peer, args, stdin, code, reason):
    result = peer(*args, input=stdin)
    assert result.exit_code == code
    assert reason in result.output


def test_an_edit_cannot_give_an_item_another_items_uid(peer):
    peer("records", "contacts", "add", input=ANN)
    result = peer("records", "contacts", "edit", "ann", input=BOB)
    assert result.exit_code == 1 and "names item 'bob', not 'ann'" in result.output


def test_a_files_dataset_has_no_records(peer, tmp_path):
    peer("dataset", "add", "photos", "--type", "files", "--path", str(tmp_path / "photos"))
    result = peer("records", "photos", "list")
    assert result.exit_code == 1 and "holds files, not records" in result.output


def test_an_import_of_calendar_properties_alone_says_what_it_kept(peer, tmp_path):
    peer("dataset", "add", "diary", "--type", "calendar", "--path", str(tmp_path / "diary"))
    (tmp_path / "props.ics").write_bytes("\ufeffBEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Ferien\r\n"
                                         "COLOR:teal\r\nEND:VCALENDAR\r\n".encode())
    result = peer("records", "diary", "import", str(tmp_path / "props.ics"))
    assert result.exit_code == 0
    assert result.output.splitlines() == ["imported 0 item(s): 0 added, 0 replaced, 0 unchanged",
                                          "calendar: kept calendar properties X-WR-CALNAME, COLOR"]
    assert "X-WR-CALNAME:Ferien" in peer("records", "diary", "export").output


def test_a_file_that_cannot_be_kept_whole_is_not_imported_and_the_reason_names_its_line(peer, tmp_path):
    bad = ANN + BOB.replace("TEL:+1555", "PHOTO;ENCODING=b:%%%")
    (tmp_path / "bad.vcf").write_text(bad, newline="")
    result = peer("records", "contacts", "import", str(tmp_path / "bad.vcf"))
    assert result.exit_code == 1
    assert "nothing imported from bad.vcf: line 10: PHOTO: a base64 value" in result.output
    assert listed(peer) == []


def test_a_vdir_dataset_keeps_one_file_per_item_and_reads_what_other_programs_wrote(peer, tmp_path):
    book = tmp_path / "book"
    result = peer("dataset", "add", "book", "--type", "contacts", "--path", str(book), "--layout", "vdir")
    assert result.exit_code == 0, result.output
    assert 'layout = "vdir"' in (tmp_path / "data" / "peer.toml").read_text()
    peer("records", "book", "add", input=ANN)
    assert (book / "ann.vcf").read_bytes() == ANN.encode()
    (book / "bob.vcf").write_text(BOB, newline="")  # as khard would
    rows = json.loads(peer("records", "book", "list", "--json").output)
    assert [r["id"] for r in rows] == ["ann", "bob"]
    assert peer("records", "book", "delete", "ann").exit_code == 0
    assert not (book / "ann.vcf").exists() and (book / "bob.vcf").exists()


def test_the_vdir_layout_is_for_contacts_and_calendars(peer, tmp_path):
    result = peer("dataset", "add", "memo", "--type", "notes", "--path", str(tmp_path / "memo"),
                  "--layout", "vdir")
    assert result.exit_code == 2 and "a vdir holds contacts or calendar" in result.output
