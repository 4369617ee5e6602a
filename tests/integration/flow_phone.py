"""A SIP device for tests over one flow, UDP or a TCP connection it keeps open: it registers
with a Call-ID of the test's choosing (so the test knows which worker owns it), places a call,
and answers one. Blocking sockets; every wait has a timeout."""

from __future__ import annotations

import itertools
import socket
import time
import zlib

from protocols.sip.digest_client import answer_challenges
from protocols.sip.message import SipRequest, SipResponse, parse_message
from protocols.sip.stream import StreamFramer

_numbers = itertools.count(1)

OFFER = (
    '<offer xmlns="urn:sipsync:session:1" version="1.0"><sessionId>s-{n}</sessionId>'
    "<sourceDevice>{caller}</sourceDevice><destinationDevice>{callee}</destinationDevice>"
    "<dataType>files</dataType><dataset>photos</dataset><direction>push</direction>"
    "<syncProtocol>rsync</syncProtocol><sourceIP>127.0.0.1</sourceIP>"
    "<sourcePort>40001</sourcePort><fingerprint algorithm=\"sha-256\">"
    + ":".join(["AB"] * 32) + "</fingerprint><token>caller-token-0123456789</token></offer>"
)


class FlowPhone:
    def __init__(self, server_port: int, transport: str = "udp") -> None:
        self.transport = transport
        self.server = ("127.0.0.1", server_port)
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(self.server, timeout=5)
        self.port = self.sock.getsockname()[1]
        self._framer = StreamFramer()
        self._queued: list[bytes] = []
        self.user = ""
        self.device = ""

    def close(self) -> None:
        self.sock.close()

    # -- the wire --------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def receive(self, timeout: float = 5.0) -> SipRequest | SipResponse:
        """The next message, or AssertionError after `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while not self._queued:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing received over {self.transport} in {timeout} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(70_000)
            except socket.timeout:
                continue
            if self.transport == "udp":
                self._queued.append(data)
            else:
                if not data:
                    raise AssertionError("the server closed the connection")
                self._queued += self._framer.feed(data)
        return parse_message(self._queued.pop(0), stream=self.transport != "udp")

    def final(self, method: str, timeout: float = 5.0) -> SipResponse:
        """The next final response to `method`, skipping provisional ones."""
        while True:
            message = self.receive(timeout)
            if (isinstance(message, SipResponse) and message.status_code >= 200
                    and message.cseq.method == method):
                return message

    def _request(self, method: str, uri: str, *, call_id: str, cseq: int, from_user: str,
                 to: str, to_tag: str = "", extra: tuple[str, ...] = (), body: str = "",
                 from_device: str = "") -> bytes:
        device = f";device={from_device}" if from_device else ""
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} 127.0.0.1:{self.port}"
            f";branch=z9hG4bKf{next(_numbers)};rport",
            f"From: <sip:{from_user}@127.0.0.1{device}>;tag=f{zlib.crc32(call_id.encode()):x}",
            f"To: {to}{to_tag}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{from_user}@127.0.0.1:{self.port};transport={self.transport}>",
            "Max-Forwards: 70",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sipsync-session+xml")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    # -- what a test asks for --------------------------------------------------------------------

    def register(self, user: str, password: str, device: str, call_id: str,
                 expires: int = 3600, timeout: float = 5.0) -> SipResponse:
        """REGISTER and answer the 401; returns the final answer to the credentials."""
        self.user, self.device = user, device
        to = f"<sip:{user}@127.0.0.1;device={device}>"
        uri = "sip:127.0.0.1"
        expiry = (f"Expires: {expires}",)
        self.send(self._request("REGISTER", uri, call_id=call_id, cseq=1, from_user=user,
                                to=to, extra=expiry))
        challenge = self.final("REGISTER", timeout)
        if challenge.status_code != 401:
            return challenge
        credentials = answer_challenges(challenge.headers.get("www-authenticate"), user,
                                        password, "REGISTER", uri)
        self.last_register = self._request(
            "REGISTER", uri, call_id=call_id, cseq=2, from_user=user, to=to,
            extra=expiry + (f"Authorization: {credentials}",))
        self.send(self.last_register)
        return self.final("REGISTER", timeout)

    def call(self, password: str, callee: str, call_id: str) -> SipResponse:
        """INVITE user/device `callee`, answer the 407, ACK the 200 along the recorded route;
        returns the 200 (or the failure)."""
        user, device = callee.split("/")
        uri = f"sip:{user}@127.0.0.1;device={device}"
        to = f"<{uri}>"
        body = OFFER.format(n=next(_numbers), caller=f"{self.user}/{self.device}", callee=callee)
        common = dict(call_id=call_id, from_user=self.user, to=to, body=body,
                      from_device=self.device)
        self.send(self._request("INVITE", uri, cseq=1, **common))
        challenge = self.final("INVITE")
        tag = _to_tag(challenge)
        self.send(self._request("ACK", uri, call_id=call_id, cseq=1, from_user=self.user, to=to,
                                to_tag=tag, from_device=self.device))
        if challenge.status_code != 407:
            return challenge
        credentials = answer_challenges(challenge.headers.get("proxy-authenticate"), self.user,
                                        password, "INVITE", uri)
        self.send(self._request("INVITE", uri, cseq=2,
                                extra=(f"Proxy-Authorization: {credentials}",), **common))
        answer = self.final("INVITE", timeout=10)
        self._dialog = (uri, to, _to_tag(answer), call_id,
                        [f"Route: {r}" for r in reversed(answer.headers.get("record-route"))])
        if answer.status_code == 200:
            self._in_dialog("ACK", 2)
        return answer

    def hang_up(self) -> SipResponse:
        self._in_dialog("BYE", 3)
        return self.final("BYE", timeout=10)

    def _in_dialog(self, method: str, cseq: int) -> None:
        uri, to, tag, call_id, routes = self._dialog
        self.send(self._request(method, uri, call_id=call_id, cseq=cseq, from_user=self.user,
                                to=to, to_tag=tag, extra=tuple(routes),
                                from_device=self.device))

    def answer_call(self, timeout: float = 10.0) -> SipRequest:
        """Wait for an INVITE, answer 200, and then take its ACK and its BYE (answered 200)."""
        invite = self.answer_invite(timeout)
        bye = self._next_request("BYE", timeout)
        self.send(_response(bye, 200, self))
        return invite

    def answer_invite(self, timeout: float = 10.0) -> SipRequest:
        """Wait for an INVITE, answer 200 and take its ACK: the session is established."""
        invite = self._next_request("INVITE", timeout)
        self.send(_response(invite, 200, self, to_tag=";tag=callee1"))
        self._next_request("ACK", timeout)
        return invite

    def _next_request(self, method: str, timeout: float) -> SipRequest:
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            if isinstance(message, SipRequest) and message.method == method:
                return message


def _to_tag(response: SipResponse) -> str:
    to = response.headers.get_first("to") or ""
    return ";tag=" + to.split(";tag=", 1)[1] if ";tag=" in to else ""


def _response(request: SipRequest, status: int, phone: FlowPhone, to_tag: str = "") -> bytes:
    """The phone's answer: Via, From, To, Call-ID and CSeq copied, Record-Route kept."""
    lines = [f"SIP/2.0 {status} {'OK' if status == 200 else 'Answer'}"]
    for via in request.headers.get("via"):
        lines.append(f"Via: {via}")
    for route in request.headers.get("record-route"):
        lines.append(f"Record-Route: {route}")
    to = request.headers.get_first("to") or ""
    lines += [
        f"From: {request.headers.get_first('from')}",
        f"To: {to}{to_tag if ';tag=' not in to else ''}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.headers.get_first('cseq')}",
        f"Contact: <sip:{phone.user}@127.0.0.1:{phone.port};transport={phone.transport}>",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
