"""The real server against RFC 3261, 3581 and 4475, over UDP from raw sockets: the torture
messages each get the answer the RFC expects, every answer the server builds says where its
request came from (`received`, `rport`) and carries a To tag when final, and a user's two plain
phones, which name no device, are two bindings that both ring."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys

import pytest
from aiosipua.message import SipMessage

from control_server.store import DirectoryStore
from protocols.sip.message import SipRequest, SipResponse, response_to

from ..control_server.sip_client import answer
from ..sip.rfc4475 import ANSWERS, message
from ..waiting import wait_until
from .conftest import ServerProcess

REALM = "sipsync.test"
_numbers = itertools.count(1)


class Phone:
    """A UDP socket on loopback that speaks just enough SIP for these tests."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, server_port: int, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", server_port))

    def receive(self) -> SipRequest | SipResponse:
        """The next message, or a failed test when none comes within the socket's timeout."""
        try:
            data = self.sock.recvfrom(70_000)[0]
        except socket.timeout:
            raise AssertionError("no SIP message came within 5 s") from None
        # aiosipua's lenient reader: an answer to a broken request echoes what was broken.
        return SipMessage.parse(data)

    def response_to(self, call_id: str, *, skipping_provisional: bool = False) -> SipResponse:
        """The next response of the call, passing over retransmitted answers to earlier ones."""
        while True:
            reply = self.receive()
            if not isinstance(reply, SipResponse) or reply.call_id != call_id:
                continue
            if skipping_provisional and reply.status_code < 200:
                continue
            return reply

    def request(self, method: str, uri: str, *, user: str, call_id: str, cseq: int = 1,
                headers: tuple[str, ...] = (), from_params: str = "",
                body: bytes = b"") -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKc{next(_numbers)};rport",
            f"From: <sip:{user}@{REALM}{from_params}>;tag=f{self.port}",
            f"To: <{uri}>" if method != "REGISTER" else f"To: <sip:{user}@{REALM}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            *headers,
            f"Content-Length: {len(body)}",
        ]
        return "\r\n".join(lines).encode() + b"\r\n\r\n" + body

    def register(self, server_port: int, user: str, password: str, contact: str) -> SipResponse:
        call_id = f"reg-{self.port}"
        headers = (f"Contact: {contact}", "Expires: 60")
        self.send(server_port, self.request("REGISTER", f"sip:{REALM}", user=user,
                                            call_id=call_id, headers=headers))
        challenge = self.response_to(call_id)
        assert challenge.status_code == 401
        credentials = answer(challenge.headers.get("www-authenticate")[0], user=user,
                             password=password, method="REGISTER", uri=f"sip:{REALM}")
        self.send(server_port, self.request("REGISTER", f"sip:{REALM}", user=user,
                                            call_id=call_id, cseq=2,
                                            headers=headers + (credentials,)))
        return self.response_to(call_id)


@pytest.fixture(scope="module")
def conformance_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("conformance") / "data"
    store = DirectoryStore.open(data_dir)
    store.realm(REALM)
    store.add_user("alice", "alice-pw")
    store.add_user("carol", "carol-pw")  # registers a device that must not ring alice's phones
    store.close()
    server = ServerProcess(data_dir).start()
    yield server
    server.stop()


@pytest.fixture
def phone():
    phones: list[Phone] = []

    def make() -> Phone:
        phones.append(Phone())
        return phones[-1]

    yield make
    for each in phones:
        each.close()


def options(phone: Phone, call_id: str) -> bytes:
    return phone.request("OPTIONS", "sip:127.0.0.1", user="monitor", call_id=call_id)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_each_rfc4475_message_gets_the_answer_the_rfc_expects_and_options_still_work(
        conformance_server, phone, name):
    sender = phone()
    sender.send(conformance_server.port, message(name))
    probe = f"probe-{name}"
    if ANSWERS[name] is None:
        # Nothing is owed: the OPTIONS sent after it must be the first thing answered.
        sender.send(conformance_server.port, options(sender, probe))
        first = sender.receive()
        assert isinstance(first, SipResponse) and first.call_id == probe
        assert first.status_code == 200
        return
    first = sender.receive()
    assert isinstance(first, SipResponse)
    assert first.status_code == ANSWERS[name], (first.status_code, first.reason_phrase)
    sender.send(conformance_server.port, options(sender, probe))
    assert sender.response_to(probe).status_code == 200


def assert_says_where_it_came_from(response: SipResponse, phone: Phone) -> None:
    via = response.via[0]
    assert via.params.get("received") == "127.0.0.1"
    assert via.params.get("rport") == str(phone.port)


def assert_final_with_to_tag(response: SipResponse) -> None:
    assert response.status_code >= 200 and response.to_addr.tag


def test_every_kind_of_answer_says_where_its_request_came_from(conformance_server, phone):
    port = conformance_server.port
    caller = phone()
    answers: list[SipResponse] = []

    def exchange(data: bytes, call_id: str, **options) -> SipResponse:
        caller.send(port, data)
        answers.append(caller.response_to(call_id, **options))
        return answers[-1]

    # 401 and 200 to REGISTER
    ok = caller.register(port, "carol", "carol-pw", f"<sip:carol@127.0.0.1:{caller.port}>")
    assert ok.status_code == 200
    answers.append(ok)
    # 100 and 407 to INVITE, then its ACK
    invite = caller.request("INVITE", f"sip:alice@{REALM}", user="carol", call_id="inv-kinds",
                            headers=(f"Contact: <sip:carol@127.0.0.1:{caller.port}>",))
    assert exchange(invite, "inv-kinds").status_code == 100
    challenge = caller.response_to("inv-kinds", skipping_provisional=True)
    answers.append(challenge)
    assert challenge.status_code == 407
    # 200 to OPTIONS, 405, 501, 416, 420, 400 and 505
    exchange(options(caller, "opt-kinds"), "opt-kinds")
    for method, uri, call_id, status, extra in (
            ("MESSAGE", f"sip:alice@{REALM}", "k405", 405, ()),
            ("FROB", f"sip:alice@{REALM}", "k501", 501, ()),
            ("OPTIONS", "tel:+15550100", "k416", 416, ()),
            ("OPTIONS", "sip:127.0.0.1", "k420", 420, ("Require: nothingSupportsThis",)),
    ):
        reply = exchange(caller.request(method, uri, user="carol", call_id=call_id,
                                        headers=extra), call_id)
        assert reply.status_code == status
    bad = options(caller, "k400").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    assert exchange(bad, "k400").status_code == 400
    old = options(caller, "k505").replace(b"127.0.0.1 SIP/2.0", b"127.0.0.1 SIP/3.0", 1)
    assert exchange(old, "k505").status_code == 505
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 100, 407, 200, 405, 501, 416, 420, 400, 505]
    for reply in answers:
        assert_says_where_it_came_from(reply, caller)
        if reply.status_code >= 200:
            assert_final_with_to_tag(reply)
    assert answers[1].to_addr.tag is None  # 100 Trying makes no dialog
    assert "OPTIONS" not in answers[4].headers.get_first("allow")


def ack_for(invite: bytes, response: SipResponse) -> bytes:
    """The ACK of a non-2xx final answer: the INVITE's Via, its CSeq number, the answer's To."""
    head = invite.split(b"\r\n\r\n", 1)[0].decode()
    lines = []
    for line in head.split("\r\n"):
        if line.startswith("INVITE "):
            line = "ACK " + line[len("INVITE "):]
        elif line.startswith("CSeq: "):
            line = line.replace("INVITE", "ACK")
        elif line.startswith("To: "):
            line = "To: " + response.headers.get_first("to")
        elif line.startswith(("Content-Length", "Contact")):
            continue
        lines.append(line)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def online_devices(data_dir) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir),
         "online", "--json"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_two_plain_phones_of_one_user_are_two_bindings_and_both_ring(conformance_server, phone):
    port = conformance_server.port
    desk, pocket, laptop = phone(), phone(), phone()
    for each in (desk, pocket):
        contact = f"<sip:alice@127.0.0.1:{each.port}>"
        assert each.register(port, "alice", "alice-pw", contact).status_code == 200
    assert laptop.register(port, "alice", "alice-pw",
                           f"<sip:alice@127.0.0.1:{laptop.port};device=laptop>").status_code == 200

    def phones_online() -> list[str] | None:
        devices = [row["device"] for row in online_devices(conformance_server.data_dir)
                   if row["user"] == "alice" and row["device"].startswith("contact-")]
        return devices if len(set(devices)) >= 2 else None

    assert len(set(wait_until(phones_online, what="both plain phones online"))) >= 2

    call_id = "ring-both"
    uri = f"sip:alice@{REALM}"
    contact = (f"Contact: <sip:alice@127.0.0.1:{laptop.port};device=laptop>",)
    first = laptop.request("INVITE", uri, user="alice", call_id=call_id,
                           from_params=";device=laptop", headers=contact)
    laptop.send(port, first)
    challenge = laptop.response_to(call_id, skipping_provisional=True)
    assert challenge.status_code == 407
    laptop.send(port, ack_for(first, challenge))
    credentials = answer(challenge.headers.get("proxy-authenticate")[0], user="alice",
                         password="alice-pw", method="INVITE", uri=uri,
                         header="Proxy-Authorization")
    laptop.send(port, laptop.request("INVITE", uri, user="alice", call_id=call_id, cseq=2,
                                     from_params=";device=laptop",
                                     headers=contact + (credentials,)))
    rung = []
    for each in (desk, pocket):
        invite = each.receive()
        assert isinstance(invite, SipRequest) and invite.method == "INVITE"
        assert invite.uri == f"sip:alice@127.0.0.1:{each.port}"
        rung.append(each)
        each.send(port, bytes(response_to(invite, 486)))
    assert rung == [desk, pocket]
    # Both branches failed: the caller gets the busy answer once both phones said so.
    assert laptop.response_to(call_id, skipping_provisional=True).status_code == 486
