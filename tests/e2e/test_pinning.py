"""Pinning through the whole path: a caller that got a real answer through the server but
presents another certificate is refused, nothing is written, and the history says why."""

from __future__ import annotations

import pytest

from peer import config as peer_config
from peer.caller import Caller
from peer.config import Dataset, PeerConfig
from peer.peer import Peer
from protocols.channel.connecting import connect
from protocols.channel.errors import ChannelError
from protocols.channel.identity import DeviceIdentity
from session_xml import DataType, SyncProtocol

from ..waiting import wait_until


def make_peer(root, name: str, port: int, folder) -> Peer:
    folder.mkdir(parents=True, exist_ok=True)
    dataset = Dataset("photos", DataType.FILES, folder, (SyncProtocol.RSYNC,))
    config = PeerConfig(data_dir=root / name, server=f"127.0.0.1:{port}", user="alice",
                        password="alice-pw", device=name, datasets={"photos": dataset})
    peer_config.save(config)
    return Peer(config)


async def test_a_caller_presenting_another_certificate_is_refused_and_nothing_is_written(
        deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    server = deployment.start_server()
    (tmp_path / "phone-photos").mkdir()
    (tmp_path / "phone-photos" / "keep.txt").write_bytes(b"untouched")
    phone = make_peer(tmp_path, "phone", server.port, tmp_path / "phone-photos")
    laptop = make_peer(tmp_path, "laptop", server.port, tmp_path / "laptop-photos")
    (tmp_path / "laptop-photos" / "new.txt").write_bytes(b"must not arrive")
    async with phone, laptop:
        await phone.wait_online()
        await laptop.wait_online()
        session = Caller(laptop.agent, laptop.config, laptop.identity,
                         laptop.config.datasets["photos"], "alice/phone")
        assert await session.establish() is None
        answer = session.answer
        impostor = DeviceIdentity.load_or_create(tmp_path / "impostor", "laptop")
        with pytest.raises(ChannelError, match="certificate|authenticat|pin"):
            await connect(impostor, str(answer.destination_ip), answer.destination_port,
                          str(answer.fingerprint), answer.token)
        await session.hang_up("pinning test: the impostor was refused")
    assert [p.name for p in (tmp_path / "phone-photos").iterdir()] == ["keep.txt"]
    assert (tmp_path / "phone-photos" / "keep.txt").read_bytes() == b"untouched"
    failed = wait_until(lambda: [s for s in deployment.history() if s["state"] == "failed"],
                        what="the session in history")
    assert failed[0]["callee"] == "alice/phone"
