"""A SIP user agent's asyncio glue: one transport, the transaction layer and its timers, and
requests that can be awaited until their final response. Devices use it; what to do with a
request or a response is theirs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .endpoint import Endpoint
from .message import SipParseError, SipRequest, SipResponse, parse_message, response_to
from .effects import ClientTimeout, Effect, Transmit
from .transaction import ServerTransaction, TransactionLayer
from .transport import SipTransport

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
    def __init__(self, handler: RequestHandler) -> None:
        self._handler = handler
        self.layer = TransactionLayer()
        self.transport = SipTransport(self._received)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._acks: dict[str, tuple[bytes, Endpoint]] = {}

    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def port(self) -> int:
        return self.transport.port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.transport.start(host, port)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()

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
        _, effects = self.layer.send_request(request, destination, time.time(), context=pending)
        self._carry_out(effects)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.final), timeout)
        except asyncio.TimeoutError:
            # The transaction still ends by itself later; nobody waits for it any more.
            pending.final.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise RequestTimeout(f"no answer to {request.method} within {timeout:g} s") from None

    def send_ack(self, call_id: str, data: bytes, destination: Endpoint) -> None:
        """Send the ACK for a 2xx, and send it again should the 2xx come again (the first ACK
        was lost), until the dialog is forgotten."""
        self._acks[call_id] = (data, destination)
        self.transport.send(data, destination)

    def forget_ack(self, call_id: str) -> None:
        self._acks.pop(call_id, None)

    def respond(self, txn: ServerTransaction, response: SipResponse) -> None:
        self._carry_out(self.layer.respond(txn, response.status_code, bytes(response), time.time()))

    # -- receiving -------------------------------------------------------------------------------

    def _received(self, data: bytes, source: Endpoint) -> None:
        now = time.time()
        try:
            message = parse_message(data, stream=source.reliable)
        except SipParseError as exc:
            log.warning("malformed message from %s: %s", source, exc.reason)
            return
        if isinstance(message, SipResponse):
            txn, effects = self.layer.receive_response(message, now)
            self._carry_out(effects)
            if txn is None and 200 <= message.status_code < 300:
                ack = self._acks.get(message.call_id or "")
                if ack is not None and message.cseq.method == "INVITE":
                    self.transport.send(*ack)
                return
            if txn is not None and isinstance(txn.context, _Pending):
                pending = txn.context
                if message.status_code < 200:
                    if pending.provisional is not None:
                        pending.provisional(message)
                elif not pending.final.done():
                    pending.final.set_result(message)
            return
        if message.method == "ACK":
            if not self.layer.absorb_ack(message, now):
                self._spawn(self._handler(message, None))
            return
        txn, effects = self.layer.receive_request(message, source, now)
        self._carry_out(effects)
        if txn is not None:
            self._spawn(self._handle(message, txn))

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

    # -- timers ----------------------------------------------------------------------------------

    def _carry_out(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                self.transport.send(effect.data, effect.destination)
            elif isinstance(effect, ClientTimeout):
                pending = effect.transaction.context
                if isinstance(pending, _Pending) and not pending.final.done():
                    method = effect.transaction.request.method
                    pending.final.set_exception(RequestTimeout(f"no answer to {method}"))
        self._schedule()

    def _schedule(self) -> None:
        due = self.layer.next_deadline()
        if due is None:
            return
        if self._timer is not None:
            if self._timer.when() <= asyncio.get_running_loop().time() + (due - time.time()):
                return
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - time.time()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._carry_out(self.layer.expire(time.time()))
