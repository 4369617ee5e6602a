"""What the control server reads from session bodies: the descriptor of an INVITE (recorded when
it parses, never required) and the progress reports peers send in INFO."""

from __future__ import annotations

import logging

from protocols.sip.message import SipRequest

log = logging.getLogger(__name__)


def describe(request: SipRequest) -> tuple[str | None, str | None, str | None]:
    """Data type, offered protocol(s) and dataset of an INVITE's descriptor, when it has one."""
    return None, None, None


def read_progress(request: SipRequest) -> dict | None:
    return None
