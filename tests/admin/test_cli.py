"""`sipsync-admin --data-dir`: disabling and enabling a single device."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from control_server.admin.cli import main


@pytest.fixture
def admin(tmp_path):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args])

    assert run("users", "add", "alice", "--password", "pw").exit_code == 0
    assert run("devices", "add", "alice/phone").exit_code == 0
    assert run("devices", "add", "alice/laptop").exit_code == 0
    return run


def flags(admin) -> dict[str, bool]:
    result = admin("devices", "list", "--json")
    assert result.exit_code == 0, result.output
    return {f"{d['user']}/{d['device']}": d["disabled"] for d in json.loads(result.output)}


def test_devices_disable_marks_only_that_device_and_enable_undoes_it(admin):
    disabled = admin("devices", "disable", "alice/phone")
    assert disabled.exit_code == 0 and disabled.output == "disabled device alice/phone\n"
    assert flags(admin) == {"alice/laptop": False, "alice/phone": True}
    enabled = admin("devices", "disable", "alice/phone", "--enable")
    assert enabled.exit_code == 0 and enabled.output == "enabled device alice/phone\n"
    assert flags(admin) == {"alice/laptop": False, "alice/phone": False}


def test_the_devices_table_has_a_disabled_column(admin):
    admin("devices", "disable", "alice/phone")
    lines = admin("devices", "list").output.splitlines()
    assert "disabled" in next(line for line in lines if "last seen" in line)
    assert "True" in next(line for line in lines if "phone" in line)
    assert "True" not in next(line for line in lines if "laptop" in line)


@pytest.mark.parametrize("spec, message", [
    ("alice/ghost", "sipsync-admin: no device alice/ghost\n"),
    ("alice", "sipsync-admin: expected USER/DEVICE, got 'alice'\n"),
])
def test_disabling_what_is_not_a_device_fails_with_the_reason(admin, spec, message):
    result = admin("devices", "disable", spec)
    assert result.exit_code == 1 and result.output == message
