"""A SIP user agent on the SIP driver: requests that can be awaited until their final response,
and received requests handed on with their server transaction. Devices use it; what to do with
a request or a response is theirs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .driver import SipDriver
from .effects import ClientTimeout, Effect, Transmit
from .endpoint import Endpoint, bracketed
from .message import SipRequest, SipResponse, response_to
from .transaction import ClientTransaction, ServerTransaction, TransactionLayer

log = logging.getLogger(__name__)

# What the agent hands its owner: a new request with its server transaction (None for an ACK).
RequestHandler = Callable[[SipRequest, ServerTransaction | None], Awaitable[None]]


class RequestTimeout(Exception):
    """No final response arrived (timer B or F, or the caller's own limit)."""


@dataclass(eq=False)
class _Pending:
    final: asyncio.Future[SipResponse]
    provisional: Callable[[SipResponse], None] | None


class SipAgent:
    """A user agent core on the SIP driver: requests it sends can be awaited, requests it
    receives go to the handler, each in a task of its own."""

    def __init__(self, handler: RequestHandler) -> None:
        self._handler = handler
        self.driver = SipDriver(self)
        self._tasks: set[asyncio.Task] = set()
        self._acks: dict[str, tuple[bytes, Endpoint]] = {}

    @property
    def layer(self) -> TransactionLayer:
        return self.driver.layer

    @property
    def host(self) -> str:
        return self.driver.host

    @property
    def port(self) -> int:
        return self.driver.port

    @property
    def hostport(self) -> str:
        """Our host:port as a Via or Contact writes it."""
        return f"{bracketed(self.host)}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.driver.start(host, port)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.driver.close()

    # -- sending ---------------------------------------------------------------------------------

    async def request(
        self,
        request: SipRequest,
        destination: Endpoint,
        *,
        timeout: float | None = None,
        provisional: Callable[[SipResponse], None] | None = None,
    ) -> SipResponse:
        """Send a request in a new client transaction and wait for its final response."""
        pending = _Pending(asyncio.get_running_loop().create_future(), provisional)
        self.driver.send_request(request, destination, context=pending)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives with the answer, and a stopping device would then never stop.
            async with asyncio.timeout(timeout):
                return await asyncio.shield(pending.final)
        except TimeoutError:
            # The transaction still ends by itself later; nobody waits for it any more.
            pending.final.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise RequestTimeout(f"no answer to {request.method} within {timeout:g} s") from None

    def send_ack(self, call_id: str, data: bytes, destination: Endpoint) -> None:
        """Send the ACK for a 2xx, and send it again should the 2xx come again (the first ACK
        was lost), until the dialog is forgotten."""
        self._acks[call_id] = (data, destination)
        self.driver.send(data, destination)

    def forget_ack(self, call_id: str) -> None:
        self._acks.pop(call_id, None)

    def respond(self, txn: ServerTransaction, response: SipResponse) -> None:
        self.driver.respond(txn, response)

    # -- what the driver hands us ----------------------------------------------------------------

    def request_received(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        if request.method == "ACK":
            if not self.layer.absorb_ack(request, now):
                self._spawn(self._handler(request, None))
            return []
        txn, effects = self.layer.receive_request(request, source, now)
        if txn is not None:
            self._spawn(self._handle(request, txn))
        return effects

    def response_received(self, transaction: ClientTransaction, response: SipResponse,
                          now: float) -> list[Effect]:
        pending = transaction.context
        if isinstance(pending, _Pending):
            if response.status_code < 200:
                if pending.provisional is not None:
                    pending.provisional(response)
            elif not pending.final.done():
                pending.final.set_result(response)
        return []

    def stray_response(self, response: SipResponse, now: float) -> list[Effect]:
        # A 2xx to our INVITE again: the ACK we sent was lost, so it goes again.
        if 200 <= response.status_code < 300 and response.cseq.method == "INVITE":
            ack = self._acks.get(response.call_id or "")
            if ack is not None:
                return [Transmit(*ack)]
        return []

    def client_timeout(self, timeout: ClientTimeout, now: float) -> list[Effect]:
        pending = timeout.transaction.context
        if isinstance(pending, _Pending) and not pending.final.done():
            method = timeout.transaction.request.method
            pending.final.set_exception(RequestTimeout(f"no answer to {method}"))
        return []

    def next_deadline(self) -> float | None:
        return None  # every timer of ours is a transaction's

    def expire(self, now: float) -> list[Effect]:
        return []

    async def _handle(self, request: SipRequest, txn: ServerTransaction) -> None:
        try:
            await self._handler(request, txn)
        except Exception:
            log.exception("failed handling %s %s", request.method, request.call_id)
            self.respond(txn, response_to(request, 500, "Internal error"))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
