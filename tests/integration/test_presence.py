"""Presence through a real server: devices see the partners they may sync with come and go, and
nothing of the others; hostile SUBSCRIBEs and NOTIFYs are refused."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from control_server.store import DirectoryStore
from peer.config import PeerConfig
from peer.peer import Peer
from protocols.sip.reginfo import ContactEvent

from .conftest import ServerProcess

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


@pytest.fixture
def server(tmp_path):
    data_dir = tmp_path / "server"
    store = DirectoryStore.open(data_dir)
    store.realm("sipsync.test")
    for user, password in USERS.items():
        store.add_user(user, password)
    for user, device in (("alice", "laptop"), ("alice", "phone"), ("bob", "tablet"),
                         ("bob", "desktop"), ("carol", "phone")):
        store.add_device(user, device)
    store.add_share("bob", "tablet", "alice")
    store.close()
    process = ServerProcess(data_dir).start()
    yield process
    process.stop()


def device(server, tmp_path, user, name, transport="udp") -> Peer:
    return Peer(PeerConfig(data_dir=tmp_path / f"{user}-{name}", server=f"127.0.0.1:{server.port}",
                           transport=transport, user=user, password=USERS[user], device=name))


async def until(predicate, what: str, timeout: float = 10.0, peer: Peer | None = None) -> None:
    """Wait for the presence table to say so, woken by each NOTIFY."""
    async with asyncio.timeout(timeout):
        while not predicate():
            if peer is None:
                await asyncio.sleep(0.02)
            else:
                await peer.presence.changed()
    assert predicate(), what


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_device_sees_its_own_and_shared_devices_come_online_and_go(
        server, tmp_path, transport):
    laptop = device(server, tmp_path, "alice", "laptop", transport)
    async with laptop:
        await until(lambda: laptop.presence.subscribed, "subscribed")
        # Offline devices it may sync with are listed too; carol's phone and bob's desktop never.
        assert set(laptop.presence.devices) == {"alice/phone", "bob/tablet"}
        assert not laptop.presence.online("alice/phone")
        async with device(server, tmp_path, "alice", "phone"), \
                device(server, tmp_path, "bob", "tablet"), \
                device(server, tmp_path, "bob", "desktop"), \
                device(server, tmp_path, "carol", "phone"):
            await until(lambda: laptop.presence.online("alice/phone")
                        and laptop.presence.online("bob/tablet"), "both online", peer=laptop)
            state = laptop.presence.devices["alice/phone"]
            assert state.user_agent.startswith("sipsync-peer/") and state.online_since
        # Each unregistered on its way out: the laptop hears of both.
        await until(lambda: not laptop.presence.online("alice/phone")
                    and not laptop.presence.online("bob/tablet"), "both gone", peer=laptop)
        gone = laptop.presence.devices["alice/phone"]
        assert gone.event is ContactEvent.UNREGISTERED and gone.last_seen
        assert set(laptop.presence.devices) == {"alice/phone", "bob/tablet"}


async def test_a_share_removed_by_an_admin_hides_the_device(server, tmp_path):
    laptop = device(server, tmp_path, "alice", "laptop")
    async with laptop, device(server, tmp_path, "bob", "tablet"):
        await until(lambda: laptop.presence.online("bob/tablet"), "tablet online", peer=laptop)
        subprocess.run([sys.executable, "-m", "control_server.admin.cli", "--data-dir",
                        str(server.data_dir), "shares", "remove", "bob/tablet", "alice"],
                       check=True, capture_output=True)
        await until(lambda: not laptop.presence.online("bob/tablet"), "tablet hidden",
                    peer=laptop)
        assert laptop.presence.devices["bob/tablet"].reason == "no longer shared"


def raw_subscribe(port: int, uri: str, event: str = "reg") -> bytes:
    """An unauthenticated SUBSCRIBE from a plain socket: the server's first answer."""
    request = (f"SUBSCRIBE {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKsub{event};rport\r\n"
               "From: <sip:alice@sipsync.test;device=laptop>;tag=t1\r\n"
               f"To: <{uri}>\r\nCall-ID: sub-1\r\nCSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\n"
               f"Event: {event}\r\nExpires: 600\r\nContact: <sip:alice@127.0.0.1:9>\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(request, ("127.0.0.1", port))
        return sock.recv(65536)


def test_a_subscribe_for_another_event_gets_489_and_one_unauthenticated_gets_407(server):
    assert raw_subscribe(server.port, "sip:alice@sipsync.test", "presence").startswith(
        b"SIP/2.0 489")
    assert raw_subscribe(server.port, "sip:alice@sipsync.test").startswith(b"SIP/2.0 407")


async def test_an_unshared_device_and_an_unknown_one_get_the_same_403(server, tmp_path):
    laptop = device(server, tmp_path, "alice", "laptop")
    async with laptop:
        await until(lambda: laptop.presence.subscribed, "subscribed")
        answers = []
        for uri in ("sip:bob@sipsync.test;device=desktop", "sip:bob@sipsync.test;device=nope",
                    "sip:carol@sipsync.test", "sip:nobody@sipsync.test"):
            client = laptop.presence._client.__class__(
                laptop.agent, laptop.config.account(), "udp", call_id=f"probe-{len(answers)}",
                from_address="<sip:alice@127.0.0.1;device=laptop>")
            _, response = await client.send("SUBSCRIBE", uri, f"<{uri}>",
                                            laptop.config.server_endpoint, timeout=5,
                                            headers=[("Event", "reg"), ("Expires", "600")])
            answers.append((response.status_code, response.reason_phrase))
        assert set(answers) == {(403, "Not allowed to watch this resource")}


async def test_a_notify_with_a_broken_body_gets_400_and_changes_nothing(server, tmp_path):
    laptop = device(server, tmp_path, "alice", "laptop")
    async with laptop, device(server, tmp_path, "alice", "phone"):
        await until(lambda: laptop.presence.online("alice/phone"), "phone online", peer=laptop)
        before = dict(laptop.presence.devices)
        call_id = laptop.presence._client.call_id
        for n, body in enumerate((b"<reginfo", b"", b"<reginfo xmlns='x'/>")):
            notify = (f"NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad{n};rport\r\n"
                      "From: <sip:alice@sipsync.test>;tag=srv\r\nTo: <sip:alice@sipsync.test>;tag=x\r\n"
                      f"Call-ID: {call_id}\r\nCSeq: 99 NOTIFY\r\nMax-Forwards: 70\r\n"
                      "Event: reg\r\nSubscription-State: active;expires=60\r\n"
                      f"Content-Type: application/reginfo+xml\r\nContent-Length: {len(body)}\r\n\r\n"
                      ).encode() + body
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                await loop.sock_sendto(sock, notify, ("127.0.0.1", laptop.agent.port))
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
            assert reply.startswith(b"SIP/2.0 400"), reply[:80]
        assert laptop.presence.devices == before
