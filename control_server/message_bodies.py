"""What the control server reads from SIP message bodies: the session descriptor of an INVITE or
its answer (recorded when it parses, never required) and the progress reports peers send in INFO."""

from __future__ import annotations

import logging

from protocols.sip.message import SipMessage, SipRequest
from session_xml import (
    PROGRESS_CONTENT_TYPE,
    SESSION_CONTENT_TYPE,
    DescriptorError,
    parse_descriptor,
    parse_progress,
)

log = logging.getLogger(__name__)


def _content_type(message: SipMessage) -> str:
    return (message.headers.get_first("content-type") or "").split(";")[0].strip().lower()


def describe(message: SipMessage) -> tuple[str | None, str | None, str | None]:
    """Data type, protocols (the offer's in preference order, or the answer's one) and dataset."""
    if not message.body or _content_type(message) != SESSION_CONTENT_TYPE:
        return None, None, None
    try:
        offer = parse_descriptor(message.body)
    except DescriptorError as exc:
        # The callee judges the offer; the server only records what it can read.
        log.info("session %s carries an unreadable descriptor: %s", message.call_id, exc.reason)
        return None, None, None
    protocols = ",".join(p.value for p in offer.sync_protocols)
    return offer.data_type.value, protocols, offer.dataset


def read_progress(request: SipRequest) -> dict | None:
    """The latest progress of a session as a small dict: phase, bytes and records, error."""
    if _content_type(request) != PROGRESS_CONTENT_TYPE:
        return None
    try:
        report = parse_progress(request.body)
    except DescriptorError as exc:
        log.info("INFO %s carries an unreadable progress report: %s", request.call_id, exc.reason)
        return None
    progress = {"phase": report.phase.value, "bytes": report.bytes_done,
                "records": report.records_done}
    if report.bytes_total is not None:
        progress["bytes_total"] = report.bytes_total
    if report.records_total is not None:
        progress["records_total"] = report.records_total
    if report.error:
        progress["error"] = report.error
    progress.update(report.counters)  # what the protocol counts: bytesLiteral, conflicts...
    return progress
