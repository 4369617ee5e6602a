"""The asyncio SIP driver under the control server and the peers: one transport, the
transaction layer, one timer on one clock, and the one place a malformed request gets its 400.

What to do with a message is the core's (a registrar and proxy, or a device's user agent): the
driver parses, matches responses to client transactions, hands the rest to the core and carries
out the effects it gets back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .effects import ClientTimeout, Effect, Transmit
from .endpoint import Endpoint
from .message import (
    SipParseError,
    SipRequest,
    SipResponse,
    note_source,
    parse_message,
    response_to,
)
from .transaction import ClientTransaction, ServerTransaction, TransactionLayer
from .transport import SipTransport

log = logging.getLogger(__name__)

# The counters the driver keeps in the dict it is given.
COUNTERS = ("received", "bytes_received", "malformed")


class SipCore(Protocol):
    """What runs on the driver. Every method is called with the driver's clock (`now`, wall
    time, the one the transaction layer runs on) and returns the effects to carry out."""

    def request_received(self, request: SipRequest, source: Endpoint,
                         now: float) -> list[Effect]:
        """Any request that parsed, ACKs included: the core feeds the transaction layer
        itself, as a stateless answer (a REGISTER) needs no transaction."""

    def response_received(self, transaction: ClientTransaction, response: SipResponse,
                          now: float) -> list[Effect]:
        """A response that matched a client transaction and must go up."""

    def stray_response(self, response: SipResponse, now: float) -> list[Effect]:
        """A response that matched no transaction."""

    def client_timeout(self, timeout: ClientTimeout, now: float) -> list[Effect]:
        """A client transaction got no final response (timer B or F)."""

    def next_deadline(self) -> float | None:
        """The core's own earliest timer beside the transaction layer's, if it keeps any."""

    def expire(self, now: float) -> list[Effect]:
        """Run the core's own timers that are due."""


# A reader of raw bytes that answers the requests it knows cheaply (the server's REGISTERs),
# returning None for any message the general parser is to read.
Shortcut = Callable[[bytes, Endpoint, float], "list[Effect] | None"]


class SipDriver:
    def __init__(self, core: SipCore, *, counters: dict[str, int] | None = None,
                 shortcut: Shortcut | None = None) -> None:
        self.core = core
        self.shortcut = shortcut
        self.layer = TransactionLayer()
        self.transport = SipTransport(self._received)
        # Shared with the owner when given, so its metrics show these beside its own counts.
        self.counters = counters if counters is not None else {}
        for name in COUNTERS:
            self.counters.setdefault(name, 0)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        # Offered every message first, before it is counted or parsed: True when it belongs to
        # another worker of the server and was handed to it.
        self.dispatch: Callable[[bytes, Endpoint], bool] | None = None

    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def port(self) -> int:
        return self.transport.port

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        await self.transport.start(host, port, reuse_port=reuse_port)

    async def adopt(self, udp_sock: Any, tcp_sock: Any) -> None:
        """Serve sockets bound by a supervisor and shared with other workers."""
        await self.transport.adopt(udp_sock, tcp_sock)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.transport.close()

    # -- sending ---------------------------------------------------------------------------------

    def send_request(self, request: SipRequest, destination: Endpoint,
                     context: Any = None) -> ClientTransaction:
        """Start a client transaction for the request and send it."""
        now = time.time()
        transaction, effects = self.layer.send_request(request, destination, now, context=context)
        self.carry_out(effects, now)
        return transaction

    def respond(self, transaction: ServerTransaction, response: SipResponse) -> None:
        now = time.time()
        self.carry_out(self.layer.respond(transaction, response.status_code, bytes(response), now),
                       now)

    def send(self, data: bytes, destination: Endpoint) -> None:
        """Send outside any transaction (the ACK of a 2xx is end to end)."""
        self.transport.send(data, destination)

    def carry_out(self, effects: list[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self.transport.send(effect.data, effect.destination)
            elif isinstance(effect, ClientTimeout):
                self.carry_out(self.core.client_timeout(effect, now), now)
        self._schedule()

    # -- receiving -------------------------------------------------------------------------------

    def _received(self, data: bytes, source: Endpoint) -> None:
        if self.dispatch is not None and self.dispatch(data, source):
            return
        self.handle(data, source)

    def handle(self, data: bytes, source: Endpoint) -> None:
        """A message from `source`, to be handled here (the socket's or another worker's)."""
        counters = self.counters
        counters["received"] += 1
        counters["bytes_received"] += len(data)
        now = time.time()
        if self.shortcut is not None:
            try:
                effects = self.shortcut(data, source, now)
            except Exception:
                # The general path reads it again and answers, with a 500 if it fails there too.
                log.exception("the shortcut failed on a message from %s", source)
                effects = None
            if effects is not None:
                self.carry_out(effects, now)
                return
        try:
            message = parse_message(data, stream=source.reliable)
        except SipParseError as exc:
            self._malformed(exc, source)
            return
        try:
            if isinstance(message, SipRequest):
                note_source(message, source)  # every answer to it says where it came from
                effects = self.core.request_received(message, source, now)
            else:
                transaction, effects = self.layer.receive_response(message, now)
                if transaction is not None:
                    effects += self.core.response_received(transaction, message, now)
                elif not effects:
                    effects = self.core.stray_response(message, now)
        except Exception:
            log.exception("failed handling a message from %s", source)
            if isinstance(message, SipRequest) and message.method != "ACK":
                effects = [Transmit(bytes(response_to(message, 500, "Internal error")), source)]
            else:
                effects = []
        self.carry_out(effects, now)

    def _malformed(self, error: SipParseError, source: Endpoint) -> None:
        self.counters["malformed"] += 1
        log.warning("malformed message from %s: %s", source, error.reason)
        request = error.request
        # A response is never answered, nor an ACK; a request without a Via has nowhere to go.
        if request is not None and request.method != "ACK" and any(request.headers.get("via")):
            try:
                note_source(request, source)
                response = response_to(request, error.status, error.reason[:120])
                self.transport.send(bytes(response), source)
            except (ValueError, IndexError):
                pass  # too broken to answer: dropped, and logged above

    # -- the one timer ---------------------------------------------------------------------------

    def _schedule(self) -> None:
        due = self.layer.next_deadline()
        core_due = self.core.next_deadline()
        if core_due is not None and (due is None or core_due < due):
            due = core_due
        if due is None or (self._timer is not None and due >= self._timer_at):
            return
        if self._timer is not None:
            self._timer.cancel()
        # Deadlines are wall-clock times (the layer's `now`); only the delay goes to the loop.
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - time.time()),
                                                            self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        now = time.time()
        effects = self.layer.expire(now)
        effects += self.core.expire(now)
        self.carry_out(effects, now)
