"""End to end: an address book that another program keeps as a vdir folder (one .vcf per card,
as khard and vdirsyncer do) on one device, synchronized through the real server with a store-only
address book on another device."""

from __future__ import annotations

import os

from ..waiting import wait_until
from .test_record_sync import address_book, import_cards, start, sync, vcard


def test_cards_edited_in_a_vdir_by_another_program_sync_and_synced_cards_land_there_as_files(
        deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    laptop.dataset("contacts", tmp_path / "laptop-contacts", "contacts")
    book = phone.dataset("contacts", tmp_path / "phone-book", "contacts", "--layout", "vdir")
    (book / "ann.vcf").write_text(vcard("ann", "Ann Smith"), newline="")  # written by another program
    import_cards(laptop, tmp_path, vcard("bob", "Bob Jones"))
    start(deployment, laptop, phone)

    sync(laptop, "--mode", "two-way")
    assert address_book(laptop) == {"ann": "Ann Smith", "bob": "Bob Jones"}
    assert (book / "bob.vcf").read_bytes() == vcard("bob", "Bob Jones").encode()

    # The other program edits Ann and removes Bob; the next sync takes both to the laptop.
    (book / "ann.vcf").write_text(vcard("ann", "Ann Edited"), newline="")
    status = (book / "ann.vcf").stat()
    os.utime(book / "ann.vcf", ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000))
    (book / "bob.vcf").unlink()
    sync(laptop, "--mode", "two-way")
    wait_until(lambda: address_book(laptop) == {"ann": "Ann Edited"}, what="the vdir's edits on the laptop")
    assert sorted(path.name for path in book.glob("*.vcf")) == ["ann.vcf"]
