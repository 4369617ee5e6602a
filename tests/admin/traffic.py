"""Real SIP traffic for the admin tests: sipp devices that register and hold a session which
reports its progress in INFO."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..integration.conftest import free_port, run_sipp, write_users_csv


def register(sip_port: int, workdir: Path, user: str, password: str, device: str) -> int:
    """Register USER/DEVICE from a fresh local port; returns that port (where it is reached)."""
    local_port = free_port()
    csv = write_users_csv(workdir / f"{user}-{device}.csv", [(user, password)], extra=[device])
    code, output = run_sipp("register_device.xml", sip_port, "-inf", str(csv), "-m", "1",
                            cwd=workdir, local_port=local_port)
    assert code == 0, output
    return local_port


def progress_session(sip_port: int, workdir: Path, user: str, password: str, device: str,
                     callee_port: int, pause_ms: int = 50) -> None:
    """user/laptop calls user/DEVICE, reports progress four times `pause_ms` apart, then BYE."""
    callee = run_sipp("uas_progress.xml", sip_port, "-m", "1", cwd=workdir,
                      local_port=callee_port, background=True, timeout=60)
    try:
        csv = write_users_csv(workdir / f"{user}-caller.csv", [(user, password)], extra=[device])
        code, output = run_sipp("uac_progress.xml", sip_port, "-inf", str(csv), "-m", "1",
                                "-d", str(pause_ms), cwd=workdir)
        assert code == 0, output
        assert callee.wait(timeout=30) == 0, callee.stdout.read().decode()
    finally:
        if callee.poll() is None:
            callee.kill()


def start_progress_session(sip_port: int, workdir: Path, user: str, password: str, device: str,
                           callee_port: int, pause_ms: int) -> tuple[subprocess.Popen, subprocess.Popen]:
    """The same session in the background: (caller, callee) processes."""
    callee = run_sipp("uas_progress.xml", sip_port, "-m", "1", cwd=workdir,
                      local_port=callee_port, background=True, timeout=60)
    csv = write_users_csv(workdir / f"{user}-caller.csv", [(user, password)], extra=[device])
    caller = run_sipp("uac_progress.xml", sip_port, "-inf", str(csv), "-m", "1",
                      "-d", str(pause_ms), cwd=workdir, background=True, timeout=60)
    return caller, callee
