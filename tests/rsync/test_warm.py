"""Warming up the delta engine loads every compiled kernel a sync calls."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter: in this one, other tests may have loaded the kernels already.
PROBE = """
from protocols.rsync import rolling
from protocols.rsync.warm import warm_up
kernels = {name: f for name, f in vars(rolling).items() if hasattr(f, "signatures")}
assert kernels, "no compiled kernels found"
assert not any(f.signatures for f in kernels.values()), "loaded before the warm-up"
warm_up()
print(" ".join(sorted(name for name, f in kernels.items() if not f.signatures)) or "all loaded")
"""


def test_warm_up_loads_every_kernel_of_the_delta_engine():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "all loaded"
