"""Answering sync sessions: an INVITE for a dataset this device serves gets 200 with an answer
(the protocol picked, a data endpoint opened for this session alone, our fingerprint, a fresh
token); anything else a refusal with its reason. Then the caller connects and the data moves."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols.channel.listening import Listener, listen
from protocols.channel.errors import ChannelError
from protocols.channel.identity import DeviceIdentity
from protocols.sip.agent import RequestTimeout, SipAgent
from protocols.sip.dialog import Dialog
from protocols.sip.message import SipRequest, new_tag, response_to, user_of
from protocols.sip.transaction import ServerTransaction
from session_xml import (
    SESSION_CONTENT_TYPE,
    DescriptorError,
    Direction,
    Fingerprint,
    SessionDescriptor,
    build_descriptor,
    negotiate,
    parse_descriptor,
)

from .config import Dataset, PeerConfig
from .live_schedule import PartnerDirection
from .transfer_interface import TransferContext, TransferError
from .transfer_registry import state_dir, transfer_for

log = logging.getLogger(__name__)

# How long the data endpoint waits for the caller, who connects as soon as it has our answer:
# also the longest a caller that vanished before connecting keeps the dataset busy.
ACCEPT_TIMEOUT = 10.0


# What a partner may ask for, by the direction this device set for it (the caller's view: push
# sends the caller's changes here, pull takes ours there).
_ALLOWED = {
    PartnerDirection.TWO_WAY: frozenset(Direction),
    PartnerDirection.RECEIVE_ONLY: frozenset({Direction.PUSH, Direction.MIRROR}),
    PartnerDirection.SEND_ONLY: frozenset({Direction.PULL}),
}

class Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(eq=False)
class IncomingSession:
    call_id: str
    offer: SessionDescriptor
    answer: SessionDescriptor
    dataset: Dataset
    dialog: Dialog
    listener: Listener
    task: asyncio.Task | None = None
    connected: bool = False
    # The dataset is busy while the data may still move: until the channel is done or broken, not
    # until the dialog ends (a BYE may be long in coming when the caller or the server died).
    holds_dataset: bool = True
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = ""


class Callee:
    def __init__(self, agent: SipAgent, config: PeerConfig, identity: DeviceIdentity) -> None:
        self.agent, self.config, self.identity = agent, config, identity
        self.sessions: dict[str, IncomingSession] = {}
        # Live sync listens: is our own INVITE for (dataset, USER/DEVICE) under way (glare)?
        self.starting: Callable[[str, str], bool] = lambda dataset, device: False
        # ...and hears (session, busy, ok) when a session the partner started begins and ends.
        self.on_session: Callable[[IncomingSession, bool, bool], None] = lambda s, busy, ok: None

    def _check(self, request: SipRequest) -> tuple[SessionDescriptor, Dataset]:
        """The offer and the dataset it asks for, or the refusal to send."""
        content_type = (request.headers.get_first("content-type") or "").split(";")[0].strip()
        if content_type != SESSION_CONTENT_TYPE:
            raise Refusal(415, f"expected a {SESSION_CONTENT_TYPE} body")
        try:
            offer = parse_descriptor(request.body)
        except DescriptorError as exc:
            raise Refusal(exc.sip_status, exc.reason) from None
        dataset = self.config.datasets.get(offer.dataset)
        if dataset is None:
            raise Refusal(488, f"this device serves no dataset {offer.dataset!r}")
        if dataset.data_type is not offer.data_type:
            raise Refusal(488, f"dataset {dataset.name!r} holds {dataset.data_type}, not {offer.data_type}")
        caller = user_of(request.headers.get_first("from") or "")
        partner = next((p for p in dataset.partners if p.device == offer.source_device), None)
        if caller != self.config.user and caller not in dataset.allow and partner is None:
            raise Refusal(403, f"{caller} may not sync dataset {dataset.name!r}")
        if partner is not None and offer.direction not in _ALLOWED[partner.direction]:
            allowed = " or ".join(d.value for d in _ALLOWED[partner.direction])
            raise Refusal(488, f"dataset {dataset.name!r} is {partner.direction.value} with "
                               f"{offer.source_device}: {allowed} only")
        if self.starting(dataset.name, offer.source_device):
            # Both sides invited at once (RFC 3261 14.1): each answers 491 and retries later.
            raise Refusal(491, f"a session for dataset {dataset.name!r} is starting the other way")
        if any(s.holds_dataset and s.dataset.name == dataset.name for s in self.sessions.values()):
            raise Refusal(486, f"dataset {dataset.name!r} is in another session")
        return offer, dataset

    async def invite(self, request: SipRequest, txn: ServerTransaction) -> None:
        call_id = request.call_id or ""
        try:
            offer, dataset = self._check(request)
            token = secrets.token_urlsafe(24)
            listener = await listen(self.identity, str(offer.fingerprint), token,
                                    host=self.config.data_host)
            runnable = [p for p in dataset.protocols if transfer_for(p) is not None]
            try:
                answer = negotiate(offer, {dataset.data_type: runnable},
                                   address=self.config.data_host, port=listener.port,
                                   fingerprint=Fingerprint.parse(self.identity.fingerprint),
                                   token=token)
            except DescriptorError as exc:
                await listener.close()
                raise Refusal(exc.sip_status, exc.reason) from None
        except Refusal as refusal:
            log.info("refused session %s: %s %s", call_id, refusal.status, refusal.reason)
            self.agent.respond(txn, response_to(request, refusal.status, refusal.reason,
                                                to_tag=new_tag()))
            return
        tag = new_tag()
        session = IncomingSession(call_id, offer, answer, dataset, Dialog.as_callee(request, tag),
                                  listener)
        self.sessions[call_id] = session
        self.on_session(session, True, True)
        headers = [("Record-Route", r) for r in request.headers.get("record-route")]
        headers += [("Contact", f"<sip:{self.config.user}@{self.agent.hostport};"
                                f"transport={self.config.transport}>"),
                    ("Content-Type", SESSION_CONTENT_TYPE)]
        self.agent.respond(txn, response_to(request, 200, to_tag=tag, headers=headers,
                                            body=build_descriptor(answer)))
        log.info("accepted session %s from %s for dataset %s over %s", call_id,
                 offer.source_device, dataset.name, answer.sync_protocols[0])
        session.task = asyncio.ensure_future(self._serve(session))

    async def _serve(self, session: IncomingSession) -> None:
        failure = None
        transfer = transfer_for(session.answer.sync_protocols[0])
        assert transfer is not None  # we only answer with what we can run
        remote = session.offer.source_device
        state = state_dir(self.config.data_dir, session.dataset.name, remote)
        try:
            # Started now, it runs while the caller connects (a folder's scan).
            prepared = transfer.prepare(session.dataset, state)
            context = TransferContext(session.dataset, session.offer, remote, state,
                                      lambda *args, **kwargs: None,  # the caller reports progress
                                      prepared)
            channel = await session.listener.accept(timeout=ACCEPT_TIMEOUT)
            session.connected = True
            async with channel:
                result = await transfer.as_callee(channel, context)
            session.outcome = result.detail or f"{result.files} file(s), {result.bytes} bytes"
            log.info("session %s done: %s", session.call_id, session.outcome)
        except (ChannelError, TransferError) as exc:
            what = "data channel" if isinstance(exc, ChannelError) else "transfer"
            failure = f"{what}: {exc}"
            session.outcome = failure
            log.warning("session %s failed: %s", session.call_id, failure)
        except asyncio.CancelledError:
            self.sessions.pop(session.call_id, None)
            raise
        finally:
            session.holds_dataset = False
            await session.listener.close()
            self.on_session(session, False, session.connected and failure is None)
        if failure is not None:
            await self._bye(session, failure)
        # The caller's BYE ends a good session; give it time, then stop waiting.
        try:
            await asyncio.wait_for(session.ended.wait(), 60.0)
        except asyncio.TimeoutError:
            log.info("no BYE for %s: ending it", session.call_id)
        self.sessions.pop(session.call_id, None)

    async def _bye(self, session: IncomingSession, reason: str) -> None:
        text = reason.replace('"', "'").replace("\r", " ").replace("\n", " ")[:200]
        bye = session.dialog.request("BYE", self.agent.host, self.agent.port,
                                     self.config.transport.upper(),
                                     headers=[("Reason", f'SIP;cause=500;text="{text}"')])
        try:
            await self.agent.request(bye, self.config.server_endpoint, timeout=10.0)
        except RequestTimeout:
            pass
        session.ended.set()

    def bye(self, request: SipRequest, txn: ServerTransaction) -> None:
        session = self.sessions.get(request.call_id or "")
        self.agent.respond(txn, response_to(request, 200 if session else 481))
        if session is None:
            return
        session.ended.set()
        if not session.connected and session.task is not None:
            # The caller hung up before connecting: free the data endpoint and the dataset now.
            session.task.cancel()

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            if session.task is not None:
                session.task.cancel()
            await session.listener.close()
