"""Real SIP traffic for the admin tests: sipp devices that register and hold a session which
reports its progress in INFO, and a plain REGISTER from Python where the answer itself matters."""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

from protocols.sip.message import SipResponse, parse_message

from ..control_server.sip_client import answer, build
from ..integration.conftest import free_port, run_sipp, write_users_csv


def sip_register(sip_port: int, user: str, password: str, device: str) -> SipResponse:
    """REGISTER USER/DEVICE over UDP, answering the digest challenge; the final response."""
    to = f"<sip:{user}@sipsync;device={device}>"
    contact = f"Contact: <sip:{user}@127.0.0.1:5071>"
    call_id = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5.0)

        def exchange(cseq: int, *headers: str) -> SipResponse:
            request = build("REGISTER", "sip:sipsync", user=user, to=to, call_id=call_id,
                            cseq=cseq, headers=[contact, "Expires: 600", *headers])
            sock.sendto(bytes(request), ("127.0.0.1", sip_port))
            response = parse_message(sock.recvfrom(70_000)[0])
            assert isinstance(response, SipResponse)
            return response

        challenge = exchange(1)
        if challenge.status_code != 401:
            return challenge
        value = challenge.headers.get("www-authenticate")[0]
        return exchange(2, answer(value, user=user, password=password, method="REGISTER",
                                  uri="sip:sipsync"))


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
