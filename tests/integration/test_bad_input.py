"""Hostile and broken SIP input: each gets a 400 or is dropped, with a log line, and the server
(or a peer) keeps serving."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from peer.config import PeerConfig
from peer.peer import Peer

from .conftest import ServerProcess


def options(branch: str = "z9hG4bKprobe") -> bytes:
    return (f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch={branch}\r\n"
            "From: <sip:monitor@x>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: probe\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


def udp_exchange(port: int, data: bytes, family=socket.AF_INET, host="127.0.0.1",
                 timeout: float = 1.0) -> bytes | None:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, (host, port))
        try:
            return sock.recvfrom(70_000)[0]
        except socket.timeout:
            return None


def status_of(reply: bytes | None) -> int | None:
    return int(reply.split(b" ", 2)[1]) if reply else None


def test_the_server_answers_options_for_monitors(server):
    reply = udp_exchange(server.port, options())
    assert status_of(reply) == 200 and b"Allow: INVITE" in reply


BROKEN = {
    "truncated": options()[:60],
    "no blank line": options().replace(b"\r\n\r\n", b"\r\n"),
    "bad Content-Length": options().replace(b"Content-Length: 0", b"Content-Length: 40"),
    "non-numeric Content-Length": options().replace(b"Content-Length: 0", b"Content-Length: x"),
    "missing Call-ID": options().replace(b"Call-ID: probe\r\n", b""),
    "missing Via": options().replace(b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKprobe\r\n", b""),
    "huge header": options().replace(b"To: <sip:127.0.0.1>", b"To: <sip:" + b"a" * 20_000 + b">"),
    "binary garbage": bytes(range(256)) * 4,
    "empty": b"",
    "wrong CSeq method": options().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 BYE"),
    "unparsable Authorization": options().replace(b"OPTIONS sip:127.0.0.1", b"REGISTER sip:127.0.0.1")
        .replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 REGISTER")
        .replace(b"Content-Length", b'Authorization: Digest username="\r\nContent-Length'),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_messages_get_400_or_are_dropped_and_the_server_keeps_serving(server, name):
    reply = udp_exchange(server.port, BROKEN[name], timeout=0.3)
    assert status_of(reply) in (None, 400, 401)
    assert status_of(udp_exchange(server.port, options(branch="z9hG4bKafter"))) == 200


def test_a_missing_header_gets_400_naming_it_and_a_log_line(server):
    reply = udp_exchange(server.port, BROKEN["missing Call-ID"])
    assert reply.startswith(b"SIP/2.0 400 missing mandatory header(s): call-id")
    assert "malformed message from udp:127.0.0.1" in server.logs()


def test_a_stream_that_cannot_be_framed_is_closed_and_the_server_keeps_serving(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"INVITE sip:x SIP/2.0\r\n" + b"X-Junk: " + b"a" * 40_000)
        assert sock.recv(100) == b""  # closed by the server
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(options().replace(b"UDP", b"TCP"))
        assert sock.recv(2000).startswith(b"SIP/2.0 200")


def test_a_flood_of_garbage_is_bounded_and_survived(server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(2000):
            sock.sendto(b"\x00garbage" * (i % 50), ("127.0.0.1", server.port))
    assert status_of(udp_exchange(server.port, options(branch="z9hG4bKflood"), timeout=3)) == 200
    assert server.process.poll() is None


def test_the_server_listens_on_ipv6_loopback(data_dir):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = ServerProcess(data_dir, "--sip-host", "::1").start()
    try:
        message = options().replace(b"127.0.0.1:9", b"[::1]:9")
        reply = udp_exchange(server.port, message, family=socket.AF_INET6, host="::1")
        assert status_of(reply) == 200
    finally:
        server.stop()


async def _udp_exchange_async(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send a datagram from a raw socket and wait for the answer, without blocking the loop
    the peer runs on."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        await loop.sock_sendto(sock, data, ("127.0.0.1", port))
        reply, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 70_000), timeout)
        return reply


async def test_a_malformed_request_to_a_peer_gets_400_like_one_to_the_server(
        server, tmp_path, caplog):
    config = PeerConfig(data_dir=tmp_path / "peer", server=f"127.0.0.1:{server.port}",
                        user="nobody", password="pw", device="phone")
    caplog.set_level(logging.WARNING)
    async with Peer(config) as peer:
        reply = await _udp_exchange_async(peer.agent.port, BROKEN["missing Call-ID"])
        assert reply.startswith(b"SIP/2.0 400 missing mandatory header(s): call-id")
        assert "malformed message from udp:127.0.0.1" in caplog.text
        # and the peer keeps answering
        after = await _udp_exchange_async(peer.agent.port, options(branch="z9hG4bKafter"))
        assert status_of(after) == 200
