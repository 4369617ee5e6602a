"""A bare SIP phone on one UDP socket, bound to a loopback address of the test's choosing (all
of 127.0.0.0/8 reaches the server), so that an attacker and a user's device come from different
addresses: REGISTER and INVITE with digest, each answer timed."""

from __future__ import annotations

import itertools
import socket
import time
from dataclasses import dataclass

from protocols.sip.digest_client import answer_challenges
from protocols.sip.message import SipResponse, parse_message

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no final answer before the timeout
    reason: str
    seconds: float  # from sending the request to its final answer (or the timeout)
    response: SipResponse | None = None


class SipPhone:
    def __init__(self, address: str, server_port: int, *, user_agent: str = "test-phone") -> None:
        self.address = address
        self.server = ("127.0.0.1", server_port)
        self.user_agent = user_agent
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipPhone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a test asks for --------------------------------------------------------------------

    def register(self, user: str, password: str, *, timeout: float = 2.0) -> Answer:
        """REGISTER, answer the 401 with credentials, and return the answer to those."""
        call_id = f"reg-{next(_numbers)}@{self.address}"
        first = self._request("REGISTER", "sip:127.0.0.1", user, user, call_id, 1, timeout)
        if first.status != 401:
            return first
        credentials = answer_challenges(first.response.headers.get("www-authenticate"), user,
                                        password, "REGISTER", "sip:127.0.0.1")
        return self._request("REGISTER", "sip:127.0.0.1", user, user, call_id, 2, timeout,
                             ("Authorization", credentials))

    def invite(self, user: str, password: str, target: str, *, timeout: float = 2.0) -> Answer:
        """INVITE `target` (user or user;device=NAME) as `user`, answering the 407."""
        to_user, _, params = target.partition(";")
        uri = f"sip:{to_user}@127.0.0.1" + (f";{params}" if params else "")
        call_id = f"inv-{next(_numbers)}@{self.address}"
        first = self._request("INVITE", uri, user, to_user, call_id, 1, timeout)
        if first.status != 407:
            return first
        self._ack(first.response, uri)
        credentials = answer_challenges(first.response.headers.get("proxy-authenticate"), user,
                                        password, "INVITE", uri)
        final = self._request("INVITE", uri, user, to_user, call_id, 2, timeout,
                              ("Proxy-Authorization", credentials))
        if final.response is not None and final.status >= 300:
            self._ack(final.response, uri)
        return final

    def options(self, *, timeout: float = 0.5) -> Answer:
        return self._request("OPTIONS", "sip:127.0.0.1", "monitor", "monitor",
                             f"opt-{next(_numbers)}", 1, timeout)

    def send_options(self) -> None:
        """An OPTIONS sent without waiting, for floods."""
        self.sock.sendto(self._build("OPTIONS", "sip:127.0.0.1", "monitor", "monitor",
                                     f"opt-{next(_numbers)}", 1, f"z9hG4bK{next(_numbers)}"),
                         self.server)

    def answers_waiting(self, timeout: float = 0.5) -> int:
        """How many datagrams arrive until `timeout` seconds pass without one."""
        self.sock.settimeout(timeout)
        count = 0
        while True:
            try:
                self.sock.recvfrom(70_000)
            except socket.timeout:
                return count
            count += 1

    # -- the wire --------------------------------------------------------------------------------

    def _build(self, method: str, uri: str, user: str, to_user: str, call_id: str, cseq: int,
               branch: str, *extra: tuple[str, str], to_tag: str = "") -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.address}:{self.port};branch={branch};rport",
            f"From: <sip:{user}@127.0.0.1>;tag=t{call_id.split('@')[0]}",
            f"To: <sip:{to_user}@127.0.0.1>{to_tag}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{user}@{self.address}:{self.port}>",
            "Max-Forwards: 70",
            f"User-Agent: {self.user_agent}",
            *(f"{name}: {value}" for name, value in extra),
            "Content-Length: 0",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _request(self, method: str, uri: str, user: str, to_user: str, call_id: str, cseq: int,
                 timeout: float, *extra: tuple[str, str]) -> Answer:
        branch = f"z9hG4bK{next(_numbers)}x{int(time.monotonic() * 1e6)}"
        data = self._build(method, uri, user, to_user, call_id, cseq, branch, *extra)
        started = time.monotonic()
        self.sock.sendto(data, self.server)
        deadline = started + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Answer(None, "", time.monotonic() - started)
            self.sock.settimeout(left)
            try:
                reply, _ = self.sock.recvfrom(70_000)
            except socket.timeout:
                continue
            message = parse_message(reply)
            if not isinstance(message, SipResponse) or branch not in reply.decode(errors="replace"):
                continue
            if message.status_code >= 200:
                return Answer(message.status_code, message.reason_phrase,
                              time.monotonic() - started, message)

    def _ack(self, response: SipResponse, uri: str) -> None:
        """The ACK of a non-2xx final answer to an INVITE: same branch, so the server's
        transaction stops retransmitting."""
        via = response.headers.get_first("via") or ""
        branch = via.split("branch=", 1)[1].split(";", 1)[0]
        to = response.headers.get_first("to") or ""
        to_tag = ";tag=" + to.split(";tag=", 1)[1] if ";tag=" in to else ""
        call_id = response.call_id or ""
        user = (response.headers.get_first("from") or "").split("sip:", 1)[1].split("@", 1)[0]
        to_user = to.split("sip:", 1)[1].split("@", 1)[0]
        self.sock.sendto(self._build("ACK", uri, user, to_user, call_id, response.cseq.seq,
                                     branch, to_tag=to_tag), self.server)
