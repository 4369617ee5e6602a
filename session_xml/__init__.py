"""The XML session descriptor: schema, build, parse, offer/answer.

The names below are loaded on first use (PEP 562): the enums of `descriptor` and `progress` are
plain Python, while the codec pulls in lxml, which a short command such as `sipsync-peer invite`
does not need."""

from __future__ import annotations

from protocols.lazy_exports import lazy_exports
from typing import TYPE_CHECKING

_HOME = {
    "PROGRESS_CONTENT_TYPE": "codec", "SESSION_CONTENT_TYPE": "codec", "build_descriptor": "codec",
    "build_progress": "codec", "parse_descriptor": "codec", "parse_progress": "codec",
    "DataType": "vocabulary", "Direction": "vocabulary", "LIVE_SYNC_SUBJECT": "descriptor",
    "Role": "vocabulary", "SessionDescriptor": "descriptor", "SyncMode": "vocabulary",
    "SyncProtocol": "vocabulary",
    "BodyTooLarge": "errors", "DescriptorError": "errors", "InvalidValue": "errors",
    "MalformedBody": "errors", "NegotiationError": "errors", "NotAcceptable": "errors",
    "UnsupportedVersion": "errors",
    "Fingerprint": "fingerprint",
    "FORMAT_VERSION": "schema", "MAX_BODY_BYTES": "schema", "MAX_DEPTH": "schema",
    "NAMESPACE": "schema",
    "check_answer": "negotiation", "negotiate": "negotiation",
    "Phase": "progress", "ProgressReport": "progress",
}

__all__ = sorted(_HOME)


__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())


if TYPE_CHECKING:
    from .codec import (
        PROGRESS_CONTENT_TYPE,
        SESSION_CONTENT_TYPE,
        build_descriptor,
        build_progress,
        parse_descriptor,
        parse_progress,
    )
    from .descriptor import LIVE_SYNC_SUBJECT, SessionDescriptor
    from .errors import (
        BodyTooLarge,
        DescriptorError,
        InvalidValue,
        MalformedBody,
        NegotiationError,
        NotAcceptable,
        UnsupportedVersion,
    )
    from .fingerprint import Fingerprint
    from .schema import FORMAT_VERSION, MAX_BODY_BYTES, MAX_DEPTH, NAMESPACE
    from .negotiation import check_answer, negotiate
    from .progress import Phase, ProgressReport
    from .vocabulary import DataType, Direction, Role, SyncMode, SyncProtocol
