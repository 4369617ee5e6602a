"""A control server driven in process, without sockets for its requests: a device REGISTERs by
handing the server its messages and reading the answers from the effects."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from control_server.config import ServerConfig
from control_server.server import ControlServer
from protocols.sip.effects import Transmit
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import SipResponse, parse_message

from .sip_client import answer, build

PHONE = Endpoint("udp", "127.0.0.1", 5071)


def server_on(url: str, tmp_path, node: str, **settings) -> ControlServer:
    """A server on the store `url` ("": SQLite in tmp_path/node) named `node`."""
    settings = {"data_dir": tmp_path / node, **settings}
    return ControlServer(ServerConfig(store=url, sip_port=0, admin=False, node_name=node,
                                      **settings))


@asynccontextmanager
async def running_server(url: str, tmp_path, node: str,
                         **settings) -> AsyncIterator[ControlServer]:
    """`server_on`'s server, started, and stopped cleanly when the block ends."""
    server = server_on(url, tmp_path, node, **settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def answered(effects) -> SipResponse:
    (sent,) = [e for e in effects if isinstance(e, Transmit)]
    response = parse_message(sent.data)
    assert isinstance(response, SipResponse)
    return response


def register(server: ControlServer, user="alice", password="pw", device="phone", *,
             answer_to: ControlServer | None = None, source: Endpoint = PHONE,
             at: float | None = None, expires: int = 60) -> int:
    """The status of a REGISTER answering `server`'s challenge, sent to `answer_to` (or to it)
    from `source`, at the time `at` (now if None)."""
    return register_answer(server, user, password, device, answer_to=answer_to, source=source,
                           at=at, expires=expires).status_code


def register_answer(server: ControlServer, user="alice", password="pw", device="phone", *,
                    answer_to: ControlServer | None = None, source: Endpoint = PHONE,
                    at: float | None = None, expires: int = 60) -> SipResponse:
    """`register`'s final answer, whole."""
    to = f"<sip:{user}@sipsync;device={device}>"
    headers = [f"Contact: <sip:{user}@{source.host}:{source.port}>", f"Expires: {expires}"]
    first = build("REGISTER", "sip:sipsync", user=user, to=to, headers=headers, cseq=1)
    now = time.time() if at is None else at
    challenge = answered(server.request_received(first, source, now))
    credentials = answer(challenge.headers.get("www-authenticate")[0], user=user,
                         password=password, method="REGISTER", uri="sip:sipsync")
    second = build("REGISTER", "sip:sipsync", user=user, to=to, headers=headers + [credentials],
                   cseq=2)
    return answered((answer_to or server).request_received(second, source, now))


async def crash(server: ControlServer) -> None:
    """What a killed server leaves: its sockets and its store connection gone, and nothing
    written that its last flush had not written."""
    for task in server._tasks:
        task.cancel()
    await server.driver.close()
    server._writer.shutdown(wait=True)
    server.database.close()
