"""`sipsync-peer` starts quickly: the commands a script runs often (invite, status) import none of
the heavy libraries the daemon needs."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numba", "numpy", "lxml", "cryptography", "icalendar", "vobject", "rich", "aiosipua")

# A fresh interpreter: this one has imported everything already.
PROBE = f"""
import sys
import peer.cli
print(" ".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
"""


def test_loading_the_command_line_imports_no_heavy_library():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


def test_every_command_is_still_listed_and_the_record_commands_load_when_named():
    from click.testing import CliRunner

    from peer.cli import main

    listing = CliRunner().invoke(main, ["--help"])
    for command in ("daemon", "dataset", "devices", "init", "invite", "records", "status",
                    "versions"):
        assert f"  {command} " in listing.output
    records = CliRunner().invoke(main, ["records", "--help"])
    assert records.exit_code == 0 and "record dataset" in records.output
