"""End to end: a calendar's own data (its name, the time zones no event uses) travels with its
events between two devices through the real server, and an export on the other device has it."""

from __future__ import annotations

import json

from .conftest import peer_cli
from .test_record_sync import start

TIMEZONE = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
            "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
EVENT = ("BEGIN:VEVENT\r\nUID:dinner\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260110T180000Z\r\n"
         "SUMMARY:Dinner\r\nEND:VEVENT\r\n")


def calendar(name: str, *components: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
            f"X-WR-CALNAME:{name}\r\n{''.join(components)}END:VCALENDAR\r\n")


def records(device, *args: str) -> str:
    result = peer_cli(device.data_dir, "records", "calendar", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def export(device, tmp_path) -> str:
    path = tmp_path / f"{device.name}-export.ics"
    records(device, "export", "--output", str(path))
    return path.read_bytes().decode()


def sync(laptop) -> dict:
    result = laptop.invite("alice/phone", "--dataset", "calendar", "--protocol", "syncml", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_the_calendar_name_and_unused_time_zones_reach_the_other_device_and_follow_edits(
        deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    laptop.dataset("calendar", tmp_path / "laptop-calendar", "calendar")
    phone.dataset("calendar", tmp_path / "phone-calendar", "calendar")
    (tmp_path / "family.ics").write_text(calendar("Family", TIMEZONE, EVENT), newline="")
    records(laptop, "import", str(tmp_path / "family.ics"))
    start(deployment, laptop, phone)

    assert sync(laptop)["records"] == 1
    exported = export(phone, tmp_path)
    assert "X-WR-CALNAME:Family\r\n" in exported and "TZID:Europe/Berlin\r\n" in exported
    assert "UID:dinner\r\n" in exported

    # Renamed on the phone (a file of calendar data alone): the newer name goes back to the laptop.
    (tmp_path / "renamed.ics").write_text(calendar("Family and friends"), newline="")
    records(phone, "import", str(tmp_path / "renamed.ics"))
    assert sync(laptop)["records"] == 0
    assert "X-WR-CALNAME:Family and friends\r\n" in export(laptop, tmp_path)
    assert "X-WR-CALNAME:Family\r\n" not in export(laptop, tmp_path)
    assert export(laptop, tmp_path) == export(phone, tmp_path)
