"""The XML session descriptor: schema, build, parse, offer/answer."""

from .codec import (
    PROGRESS_CONTENT_TYPE,
    SESSION_CONTENT_TYPE,
    build_descriptor,
    build_progress,
    parse_descriptor,
    parse_progress,
)
from .descriptor import (
    LIVE_SYNC_SUBJECT,
    DataType,
    Direction,
    Role,
    SessionDescriptor,
    SyncMode,
    SyncProtocol,
)
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

__all__ = [
    "LIVE_SYNC_SUBJECT",
    "FORMAT_VERSION",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "NAMESPACE",
    "PROGRESS_CONTENT_TYPE",
    "SESSION_CONTENT_TYPE",
    "BodyTooLarge",
    "DataType",
    "DescriptorError",
    "Direction",
    "Fingerprint",
    "InvalidValue",
    "MalformedBody",
    "NegotiationError",
    "NotAcceptable",
    "Phase",
    "ProgressReport",
    "Role",
    "SessionDescriptor",
    "SyncMode",
    "SyncProtocol",
    "UnsupportedVersion",
    "build_descriptor",
    "build_progress",
    "check_answer",
    "negotiate",
    "parse_descriptor",
    "parse_progress",
]
