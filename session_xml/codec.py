"""Session descriptors and progress reports to and from their XML bodies."""

from __future__ import annotations

from lxml import etree

from .descriptor import DataType, Role, SessionDescriptor, SyncProtocol
from .errors import NegotiationError
from .fingerprint import Fingerprint
from .schema import FORMAT_VERSION, NAMESPACE, load
from .progress import ProgressReport

SESSION_CONTENT_TYPE = "application/sipsync-session+xml"
PROGRESS_CONTENT_TYPE = "application/sipsync-progress+xml"


def parse_descriptor(data: bytes) -> SessionDescriptor:
    """The offer or answer in `data`; DescriptorError (with its SIP status) if refused."""
    root = load(data, (Role.OFFER, Role.ANSWER))
    role = Role(etree.QName(root).localname)
    fields = _Fields(root)
    return SessionDescriptor(
        role=role,
        session_id=fields.one("sessionId"),
        source_device=fields.one("sourceDevice"),
        destination_device=fields.one("destinationDevice"),
        data_type=_known_data_type(fields.one("dataType")),
        dataset=fields.one("dataset"),
        direction=fields.one("direction"),
        sync_mode=fields.optional("syncMode"),
        sync_protocols=_known_protocols(role, fields.texts("syncProtocol")),
        source_ip=fields.one("sourceIP"),
        source_port=fields.number("sourcePort"),
        destination_ip=fields.optional("destinationIP"),
        destination_port=fields.optional_number("destinationPort"),
        fingerprint=Fingerprint.parse(fields.one("fingerprint"), fields.attribute("fingerprint", "algorithm")),
        token=fields.one("token"),
    )


def build_descriptor(descriptor: SessionDescriptor) -> bytes:
    if not isinstance(descriptor, SessionDescriptor):
        raise TypeError(f"expected a SessionDescriptor, not {type(descriptor).__name__}")
    d = descriptor
    root = _root(d.role)
    _add(root, "sessionId", d.session_id)
    _add(root, "sourceDevice", d.source_device)
    _add(root, "destinationDevice", d.destination_device)
    _add(root, "dataType", d.data_type)
    _add(root, "dataset", d.dataset)
    _add(root, "direction", d.direction)
    _add(root, "syncMode", d.sync_mode)
    for protocol in d.sync_protocols:
        _add(root, "syncProtocol", protocol)
    _add(root, "sourceIP", d.source_ip)
    _add(root, "sourcePort", d.source_port)
    _add(root, "destinationIP", d.destination_ip)
    _add(root, "destinationPort", d.destination_port)
    fingerprint = etree.SubElement(root, f"{{{NAMESPACE}}}fingerprint", algorithm=d.fingerprint.algorithm)
    fingerprint.text = str(d.fingerprint)
    _add(root, "token", d.token)
    return _serialize(root)


def parse_progress(data: bytes) -> ProgressReport:
    fields = _Fields(load(data, ("progress",)))
    return ProgressReport(
        session_id=fields.one("sessionId"),
        phase=fields.one("phase"),
        bytes_done=fields.number("bytesDone"),
        bytes_total=fields.optional_number("bytesTotal"),
        records_done=fields.number("recordsDone"),
        records_total=fields.optional_number("recordsTotal"),
        error=fields.optional("error", strip=False),
        counters=fields.counters(),
    )


def build_progress(report: ProgressReport) -> bytes:
    if not isinstance(report, ProgressReport):
        raise TypeError(f"expected a ProgressReport, not {type(report).__name__}")
    root = _root("progress")
    _add(root, "sessionId", report.session_id)
    _add(root, "phase", report.phase)
    _add(root, "bytesDone", report.bytes_done)
    _add(root, "bytesTotal", report.bytes_total)
    _add(root, "recordsDone", report.records_done)
    _add(root, "recordsTotal", report.records_total)
    _add(root, "error", report.error)
    for name, value in report.counters:
        etree.SubElement(root, f"{{{NAMESPACE}}}counter", {"name": name}).text = str(value)
    return _serialize(root)


class _Fields:
    """Text of the root's children by local name; the schema has already vouched for their count."""

    def __init__(self, root: etree._Element) -> None:
        self._root = root

    def texts(self, name: str, strip: bool = True) -> list[str]:
        texts = (element.text or "" for element in self._root.iterchildren(f"{{{NAMESPACE}}}{name}"))
        return [text.strip() if strip else text for text in texts]

    def one(self, name: str) -> str:
        (text,) = self.texts(name)
        return text

    def optional(self, name: str, strip: bool = True) -> str | None:
        texts = self.texts(name, strip)
        return texts[0] if texts else None

    def number(self, name: str) -> int:
        return int(self.one(name))

    def optional_number(self, name: str) -> int | None:
        text = self.optional(name)
        return None if text is None else int(text)

    def counters(self) -> tuple[tuple[str, int], ...]:
        elements = self._root.iterchildren(f"{{{NAMESPACE}}}counter")
        return tuple((e.get("name").strip(), int((e.text or "").strip())) for e in elements)

    def attribute(self, name: str, attribute: str) -> str:
        return self._root.find(f"{{{NAMESPACE}}}{name}").get(attribute).strip()


# Data types and protocols are where the format grows: a word we do not know is a
# negotiation failure (488), not a malformed body (400), and an unknown protocol in an
# offer is skipped so that the ones we know can still be chosen.
_PROTOCOL_WORDS = frozenset(protocol.value for protocol in SyncProtocol)


def _known_data_type(word: str) -> DataType:
    try:
        return DataType(word)
    except ValueError:
        raise NegotiationError(f"data type {word!r} is not known to this device") from None


def _known_protocols(role: Role, words: list[str]) -> tuple[SyncProtocol, ...]:
    known = tuple(SyncProtocol(word) for word in words if word in _PROTOCOL_WORDS)
    # An answer must name a protocol from the offer, so there an unknown word is a failure too.
    if not known or (role is Role.ANSWER and len(known) != len(words)):
        raise NegotiationError(f"no protocol this device knows among: {', '.join(words)}")
    return known


def _root(name: str) -> etree._Element:
    return etree.Element(f"{{{NAMESPACE}}}{name}", {"version": FORMAT_VERSION}, nsmap={None: NAMESPACE})


def _add(root: etree._Element, name: str, value: object) -> None:
    if value is not None:
        etree.SubElement(root, f"{{{NAMESPACE}}}{name}").text = str(value)


def _serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
