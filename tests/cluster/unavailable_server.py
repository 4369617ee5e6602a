"""A server in the balancer's list that is up but cannot serve: it passes the health checks
(200 to OPTIONS) and answers every other request with one fixed status, as an overloaded or
broken server would."""

from __future__ import annotations

import socket
import threading

from protocols.sip.message import SipRequest, parse_message, response_to


class UnavailableServer:
    def __init__(self, status: int) -> None:
        self.status = status
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.refused: list[str] = []  # the methods it answered with `status`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> UnavailableServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            request = parse_message(data)
            if not isinstance(request, SipRequest) or request.method == "ACK":
                continue
            status = 200 if request.method == "OPTIONS" else self.status
            if status != 200:
                self.refused.append(request.method)
            self.sock.sendto(bytes(response_to(request, status, to_tag="unavailable")), source)
