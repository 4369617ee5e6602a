"""End to end: vCard address books on two devices of one user, synchronized item by item with
syncml straight between their daemons, the session placed through a real control server."""

from __future__ import annotations

import json

from ..waiting import wait_until
from .conftest import peer_cli


def vcard(uid: str, name: str, phone: str = "") -> str:
    tel = f"TEL;TYPE=CELL:{phone}\r\n" if phone else ""
    return f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{name}\r\n{tel}END:VCARD\r\n"


def records(device, *args: str) -> str:
    result = peer_cli(device.data_dir, "records", "contacts", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def address_book(device) -> dict[str, str]:
    """id -> summary (the card's FN) of every live card on the device."""
    return {row["id"]: row["summary"] for row in json.loads(records(device, "list", "--json"))}


def import_cards(device, tmp_path, *cards: str) -> None:
    path = tmp_path / f"{device.name}-import.vcf"
    path.write_text("".join(cards), newline="")
    records(device, "import", str(path))


def sync(laptop, *args: str) -> dict:
    result = laptop.invite("alice/phone", "--dataset", "contacts", "--protocol", "syncml",
                           "--json", *args)
    outcome = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    return outcome


def two_address_books(deployment, tmp_path, *phone_options: str):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    laptop.dataset("contacts", tmp_path / "laptop-contacts", "contacts")
    phone.dataset("contacts", tmp_path / "phone-contacts", "contacts", *phone_options)
    return laptop, phone


def start(deployment, *devices) -> None:
    for device in devices:
        device.start()
    wait_until(lambda: len(deployment.online()) == len(devices), what="the devices online")


def test_a_two_way_sync_merges_two_address_books_and_settles_a_conflict_by_the_newest_edit(
        deployment, tmp_path):
    laptop, phone = two_address_books(deployment, tmp_path)
    # Both know Ann; each knows someone the other does not.
    import_cards(laptop, tmp_path, vcard("ann", "Ann Smith"), vcard("bob", "Bob Jones"))
    import_cards(phone, tmp_path, vcard("ann", "Ann Smith"), vcard("cy", "Cy Young"))
    start(deployment, laptop, phone)

    first = sync(laptop, "--mode", "two-way")
    assert first["records"] == 2  # Bob to the phone, Cy to the laptop; Ann is the same on both
    assert address_book(laptop) == address_book(phone) == {
        "ann": "Ann Smith", "bob": "Bob Jones", "cy": "Cy Young"}

    # Ann's card is edited on both devices; the laptop's edit is the later one.
    (tmp_path / "ann-phone.vcf").write_text(vcard("ann", "Ann Phone-Edit"), newline="")
    records(phone, "edit", "ann", "--file", str(tmp_path / "ann-phone.vcf"))
    (tmp_path / "ann-laptop.vcf").write_text(vcard("ann", "Ann Laptop-Edit", "+1555"), newline="")
    records(laptop, "edit", "ann", "--file", str(tmp_path / "ann-laptop.vcf"))
    records(phone, "delete", "cy")

    outcome = sync(laptop, "--mode", "two-way")
    assert outcome["ok"] and outcome["detail"] == "1 sent, 1 received, 1 conflict (newest-wins)"
    assert address_book(laptop) == address_book(phone) == {"ann": "Ann Laptop-Edit", "bob": "Bob Jones"}

    # The server kept the session with the counters the peers reported.
    def in_history() -> dict | None:
        return next((s for s in deployment.history() if s["call_id"] == outcome["call_id"]), None)

    session = wait_until(in_history, what="the session in history")
    assert session["state"] == "ended" and session["protocol"] == "syncml"
    assert session["data_type"] == "contacts" and session["dataset"] == "contacts"
    progress = session["progress"]
    assert progress["phase"] == "done" and progress["records"] == 2
    assert (progress["recordsSent"], progress["recordsReceived"], progress["conflicts"]) == (1, 1, 1)

    # Nothing changed since: a further sync moves nothing.
    again = sync(laptop, "--mode", "two-way")
    assert again["records"] == 0
    assert again["detail"] == "0 sent, 0 received, 0 conflicts (newest-wins)"


def test_the_callee_policy_keep_both_keeps_the_losing_edit_as_a_copy(deployment, tmp_path):
    laptop, phone = two_address_books(deployment, tmp_path, "--policy", "keep-both")
    import_cards(laptop, tmp_path, vcard("ann", "Ann Smith"))
    start(deployment, laptop, phone)
    sync(laptop, "--mode", "two-way")
    (tmp_path / "ann-laptop.vcf").write_text(vcard("ann", "Ann From Laptop"), newline="")
    records(laptop, "edit", "ann", "--file", str(tmp_path / "ann-laptop.vcf"))
    (tmp_path / "ann-phone.vcf").write_text(vcard("ann", "Ann From Phone"), newline="")
    records(phone, "edit", "ann", "--file", str(tmp_path / "ann-phone.vcf"))

    outcome = sync(laptop, "--mode", "two-way")
    assert outcome["detail"].endswith("1 conflict (keep-both)")
    # The phone's edit is newer and keeps the id; the laptop's lives on as a copy, on both, with
    # a UID of its own and a name that says whose version it was.
    assert address_book(laptop) == address_book(phone)
    assert address_book(phone)["ann"] == "Ann From Phone"
    (copy_id,) = set(address_book(phone)) - {"ann"}
    assert address_book(phone)[copy_id].startswith("Ann From Laptop (sync-conflict-")
    assert address_book(phone)[copy_id].endswith("-alice/laptop)")

    # The next sync has nothing to do, and each device's export re-imports to the same two cards.
    again = sync(laptop, "--mode", "two-way")
    assert again["detail"] == "0 sent, 0 received, 0 conflicts (keep-both)"
    for device in (laptop, phone):
        exported = tmp_path / f"{device.name}-export.vcf"
        records(device, "export", "--output", str(exported))
        records(laptop, "import", str(exported))
        assert set(address_book(laptop)) == {"ann", copy_id}


def test_a_slow_sync_compares_everything_and_a_refresh_makes_the_callee_a_copy(deployment, tmp_path):
    laptop, phone = two_address_books(deployment, tmp_path)
    import_cards(laptop, tmp_path, *(vcard(f"p{n}", f"Person {n}") for n in range(5)))
    start(deployment, laptop, phone)
    sync(laptop, "--mode", "two-way")
    assert len(address_book(phone)) == 5

    # A slow sync sends only what differs, even though it compares every item.
    (tmp_path / "new.vcf").write_text(vcard("zed", "Zed"), newline="")
    records(phone, "add", "--file", str(tmp_path / "new.vcf"))
    slow = sync(laptop, "--mode", "slow")
    assert slow["records"] == 1
    assert address_book(laptop) == address_book(phone) and "zed" in address_book(laptop)

    # Refresh from the caller: the phone's own changes are undone, it becomes the laptop's copy.
    records(phone, "delete", "p0")
    (tmp_path / "extra.vcf").write_text(vcard("extra", "Only On Phone"), newline="")
    records(phone, "add", "--file", str(tmp_path / "extra.vcf"))
    records(laptop, "delete", "p4")
    sync(laptop, "--mode", "refresh-from-caller")
    expected = {f"p{n}": f"Person {n}" for n in range(4)} | {"zed": "Zed"}
    assert address_book(laptop) == address_book(phone) == expected


def test_a_files_dataset_is_refused_over_syncml_by_the_callee(deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    laptop.dataset("contacts", tmp_path / "laptop-contacts", "contacts")
    phone.dataset("contacts", tmp_path / "phone-contacts", "files")
    start(deployment, laptop, phone)
    result = laptop.invite("alice/phone", "--dataset", "contacts", "--protocol", "syncml")
    assert result.returncode == 3
    assert result.stdout.startswith("refused: 488 ")
