"""Placing a sync session: INVITE with an offer through the server (answering its 407), ACK,
the data channel straight to the callee, progress in INFO, BYE with the outcome."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from protocols.channel.connecting import connect
from protocols.channel.errors import ChannelError
from protocols.channel.identity import DeviceIdentity
from protocols.sip.agent import RequestTimeout, SipAgent
from protocols.sip.dialog import Dialog
from protocols.sip.digest import DigestError
from protocols.sip.message import SipRequest, SipResponse
from protocols.sip.uac import OutOfDialogClient
from session_xml import (
    PROGRESS_CONTENT_TYPE,
    DataType,
    SESSION_CONTENT_TYPE,
    DescriptorError,
    Direction,
    Fingerprint,
    Phase,
    ProgressReport,
    Role,
    SessionDescriptor,
    SyncMode,
    SyncProtocol,
    build_descriptor,
    build_progress,
    check_answer,
    parse_descriptor,
)

from .config import ConfigError, Dataset, PeerConfig, check_name
from .sync_outcome import (
    EXIT_FAILED,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    ProgressCallback,
    SessionOutcome,
    report,
)
from .transfer_interface import TransferContext, TransferError
from .transfer_registry import state_dir, transfer_for

log = logging.getLogger(__name__)

INVITE_TIMEOUT = 70.0  # longer than the server's ring timeout, so its 408 arrives first
PROGRESS_EVERY = 0.5
# A session that ended while the server was away is told to it once it is back: the last
# progress report and the BYE again, after each of these pauses, until the server answers
# (the server listens for such late reports for an hour after its restart).
LATE_REPORT_PAUSES = (2.0, 4.0, 8.0, *(15.0,) * 118)  # about half an hour in all
# The tasks re-sending them, referenced here so that they live on after their session's caller.
_late_reports: set[asyncio.Task] = set()


class Caller:
    """One outgoing session, from INVITE to BYE."""

    def __init__(self, agent: SipAgent, config: PeerConfig, identity: DeviceIdentity,
                 dataset: Dataset, target: str, *, protocol: SyncProtocol | None = None,
                 direction: Direction = Direction.PUSH, mode: SyncMode | None = None,
                 progress: ProgressCallback | None = None, subject: str | None = None) -> None:
        user, sep, device = target.partition("/")
        if not sep:
            raise ConfigError(f"the target is USER/DEVICE, not {target!r}")
        self.target_user, self.target_device = check_name("user", user), check_name("device", device)
        self.agent, self.config, self.identity, self.dataset = agent, config, identity, dataset
        wanted = (protocol,) if protocol else dataset.protocols
        # Offer only what this device can run; the callee's answer picks among them.
        self.protocols = tuple(p for p in wanted if transfer_for(p) is not None)
        if not self.protocols:
            raise ConfigError(f"this device cannot run {', '.join(p.value for p in wanted)} "
                              f"for dataset {dataset.name!r} yet")
        self.direction, self.mode, self.progress = direction, mode, progress
        self.subject = subject  # what the server files the session as (a live sync's own)
        self.session_id = secrets.token_hex(12)
        self.call_id = f"{self.session_id}@{config.device}"
        self._token = secrets.token_urlsafe(24)
        self._last_report = 0.0
        self._reporting: asyncio.Future | None = None
        self._phase = Phase.CONNECTING
        self._counters: tuple[tuple[str, int], ...] = ()
        self._dialog: Dialog | None = None
        self._final: ProgressReport | None = None  # the last progress report, of a done or failed session
        self.answer: SessionDescriptor | None = None
        self._prepared: tuple[SyncProtocol, object] | None = None  # the transfer's early work
        self.ending: asyncio.Future | None = None  # the hang-up, once the data has moved

    # -- SIP -------------------------------------------------------------------------------------

    def _offer(self) -> SessionDescriptor:
        return SessionDescriptor(
            role=Role.OFFER, session_id=self.session_id,
            source_device=f"{self.config.user}/{self.config.device}",
            destination_device=f"{self.target_user}/{self.target_device}",
            data_type=self.dataset.data_type, dataset=self.dataset.name,
            direction=self.direction, sync_protocols=self.protocols,
            source_ip=self.config.data_host, source_port=self.agent.port,
            fingerprint=Fingerprint.parse(self.identity.fingerprint), token=self._token,
            sync_mode=self.mode,
        )

    async def _establish(self, offer: SessionDescriptor) -> tuple[SipRequest, SipResponse]:
        config, server = self.config, self.config.server_endpoint
        domain = config.realm_domain
        body = build_descriptor(offer)
        target = f"sip:{self.target_user}@{domain};device={self.target_device}"
        caller = f"<sip:{config.user}@{domain};device={config.device}>"
        # A fresh From tag; CSeq 1, and 2 when the server challenges.
        client = OutOfDialogClient(self.agent, config.account(), config.transport,
                                   call_id=self.call_id, from_address=caller)
        # The digest uri names the server we send to, as sipp does.
        headers = [("Subject", self.subject)] if self.subject else None
        return await client.send("INVITE", target, f"<{target}>", server, timeout=INVITE_TIMEOUT,
                                 digest_uri=f"sip:{server.hostport}", body=body,
                                 content_type=SESSION_CONTENT_TYPE, headers=headers)

    def _send_in_dialog(self, method: str, body: bytes = b"", content_type: str | None = None,
                        headers: list[tuple[str, str]] | None = None) -> SipRequest:
        assert self._dialog is not None
        return self._dialog.request(method, self.agent.host, self.agent.port,
                                    self.config.transport.upper(), body=body,
                                    content_type=content_type, headers=headers)

    # -- the whole session -----------------------------------------------------------------------

    async def establish(self) -> SessionOutcome | None:
        """INVITE through the server until the ACK is sent: None once the session stands (its
        answer in `self.answer`), otherwise the outcome that ended it."""
        offer = self._offer()
        try:
            invite, response = await self._establish(offer)
        except RequestTimeout as exc:
            return SessionOutcome(False, EXIT_UNREACHABLE, f"no answer from the server: {exc}",
                                  call_id=self.call_id)
        except (DigestError, ConfigError) as exc:
            return SessionOutcome(False, EXIT_FAILED, str(exc), call_id=self.call_id)
        if response.status_code >= 300:
            return SessionOutcome(False, EXIT_REFUSED, response.reason_phrase,
                                  status=response.status_code, call_id=self.call_id)
        self._dialog = Dialog.as_caller(invite, response)
        ack = self._send_in_dialog("ACK")
        self.agent.send_ack(self.call_id, bytes(ack), self.config.server_endpoint)
        try:
            self.answer = parse_descriptor(response.body)
            check_answer(offer, self.answer)
        except DescriptorError as exc:
            await self.hang_up(f"unusable answer: {exc.reason}")
            return SessionOutcome(False, EXIT_FAILED, f"the callee's answer: {exc.reason}",
                                  status=200, call_id=self.call_id)
        return None

    async def run(self) -> SessionOutcome:
        """The whole session: establish, move the data, hang up with the outcome (the outcome
        returns as soon as it is known; `ending` is the hang-up still under way)."""
        started = time.monotonic()
        self._prepare()
        ended = await self.establish()
        if ended is not None:
            return ended
        assert self.answer is not None
        outcome = await self._transfer(self.answer, started)
        # The outcome is known: the hang-up (the last progress report, then the BYE through the
        # server) goes on without keeping whoever asked waiting for the server's answers.
        self.ending = asyncio.ensure_future(self._end(None if outcome.ok else outcome.reason))
        return outcome

    async def _end(self, failure: str | None) -> None:
        if not await self.hang_up(failure):
            task = asyncio.ensure_future(self._report_late(failure))
            _late_reports.add(task)
            task.add_done_callback(_late_reports.discard)

    def _prepare(self) -> None:
        """Start what the first protocol offered can do before the callee answers (a folder's
        scan), for the answer that picks it."""
        protocol = self.protocols[0]
        transfer = transfer_for(protocol)
        assert transfer is not None  # we only offer what we can run
        remote = f"{self.target_user}/{self.target_device}"
        prepared = transfer.prepare(self.dataset, state_dir(self.config.data_dir,
                                                            self.dataset.name, remote))
        self._prepared = (protocol, prepared)

    async def _transfer(self, answer: SessionDescriptor, started: float) -> SessionOutcome:
        self._report(report(self.session_id, Phase.CONNECTING), force=True)
        protocol = answer.sync_protocols[0]
        transfer = transfer_for(protocol)
        assert transfer is not None  # we only offer what we can run
        remote = answer.destination_device
        prepared = self._prepared[1] if self._prepared and self._prepared[0] == protocol else None
        context = TransferContext(self.dataset, answer, remote,
                                  state_dir(self.config.data_dir, self.dataset.name, remote),
                                  self._progress, prepared)
        try:
            async with await connect(self.identity, str(answer.destination_ip),
                                     answer.destination_port, str(answer.fingerprint),
                                     answer.token) as channel:
                result = await transfer.as_caller(channel, context)
        except (ChannelError, TransferError) as exc:
            self._final = report(self.session_id, Phase.FAILED, error=str(exc)[:200])
            self._report(self._final, force=True)
            what = "data channel" if isinstance(exc, ChannelError) else "transfer"
            return SessionOutcome(False, EXIT_FAILED, f"{what}: {exc}", status=200,
                                  call_id=self.call_id)
        self._final = ProgressReport(self.session_id, Phase.DONE, result.bytes, result.bytes,
                                     result.records, result.records, counters=self._counters)
        self._report(self._final, force=True)  # the last counters stay with the session in the history
        return SessionOutcome(True, 0, "done", status=200, call_id=self.call_id,
                              bytes=result.bytes, files=result.files, records=result.records,
                              detail=result.detail, seconds=time.monotonic() - started,
                              skipped=result.skipped,
                              counts_records=self.dataset.data_type is not DataType.FILES)

    def _progress(self, phase: Phase, *, bytes_done: int = 0, bytes_total: int | None = None,
                  records_done: int = 0, records_total: int | None = None,
                  counters: dict[str, int] | None = None) -> None:
        changed = phase != self._phase
        self._phase = phase
        self._counters = tuple((counters or {}).items())
        self._report(ProgressReport(self.session_id, phase, bytes_done,
                                    _total(bytes_done, bytes_total), records_done,
                                    _total(records_done, records_total),
                                    counters=self._counters), force=changed)

    def _report(self, progress, *, force: bool = False) -> None:
        """Show progress locally, and tell the server at most every half second."""
        if self.progress is not None:
            self.progress(progress)
        now = time.monotonic()
        if self._dialog is None or (not force and now - self._last_report < PROGRESS_EVERY):
            return
        self._last_report = now
        info = self._send_in_dialog("INFO", build_progress(progress), PROGRESS_CONTENT_TYPE)
        self._reporting = asyncio.ensure_future(self._quietly(info))

    async def _quietly(self, request: SipRequest) -> None:
        try:
            await self.agent.request(request, self.config.server_endpoint, timeout=10.0)
        except RequestTimeout:
            log.debug("progress report for %s went unanswered", self.call_id)

    async def hang_up(self, failure: str | None = None) -> bool:
        """BYE through the server; a failure travels as its Reason, for the server's history.
        Whether the server answered."""
        if self._reporting is not None:
            await self._reporting  # the last progress report lands before the session ends
        headers = [("Reason", f'SIP;cause=500;text="{_quoted(failure)}"')] if failure else None
        bye = self._send_in_dialog("BYE", headers=headers)
        try:
            await self.agent.request(bye, self.config.server_endpoint, timeout=10.0)
        except RequestTimeout:
            log.info("BYE for %s went unanswered; telling the server again later", self.call_id)
            return False
        finally:
            self.agent.forget_ack(self.call_id)
        return True

    async def _report_late(self, failure: str | None) -> None:
        """The server did not hear how the session ended (it was down or restarting): tell it
        again, the last progress report first, until it answers, so its history is true."""
        for pause in LATE_REPORT_PAUSES:
            await asyncio.sleep(pause)
            self._reporting = None
            if self._final is not None:  # to the server alone: the person saw it already
                info = self._send_in_dialog("INFO", build_progress(self._final), PROGRESS_CONTENT_TYPE)
                await self._quietly(info)
            if await self.hang_up(failure):
                log.info("the server heard late how session %s ended", self.call_id)
                return
        log.warning("the server never heard how session %s ended", self.call_id)


def _total(done: int, total: int | None) -> int | None:
    return None if total is None else max(total, done)


def _quoted(text: str) -> str:
    return text.replace("\\", "/").replace('"', "'").replace("\r", " ").replace("\n", " ")[:200]
