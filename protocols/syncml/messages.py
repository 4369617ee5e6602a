"""SyncML-like messages: frozen dataclasses and their XML codec (lxml; decoding goes through the
shared hardened parser, with this protocol's size cap and depth limit)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Union

from lxml import etree

from protocols.syncml.modes import SyncMode
from protocols.syncml.records import ChangeKind
from protocols.untrusted_xml import UntrustedXmlError, XmlTooLarge, parse_untrusted

PROTOCOL = "sipsync-syncml/1"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_ID_CHARS = 255
# Our messages are seven elements deep (SyncML, SyncBody, Sync, Add, Item, Meta, Type).
MAX_DEPTH = 16


class MessageError(Exception):
    """A message that cannot be accepted; `code` is the Status code sent back."""

    def __init__(self, reason: str, code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class Header:
    session_id: str
    msg_id: int
    source: str  # sending device
    target: str  # receiving device


@dataclass(frozen=True, slots=True)
class Alert:
    cmd_id: int
    mode: SyncMode
    dataset: str
    last: str
    next: str


@dataclass(frozen=True, slots=True)
class Status:
    cmd_id: int
    msg_ref: int
    cmd_ref: int  # 0: the message header itself
    cmd: str
    code: int
    ref: str = ""  # the item id of an item command, as the receiver of the Status knows it
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    source: str  # sender's id
    target: str = ""  # receiver's id, when the sender knows it differs
    content_type: str = ""
    modified: float = 0.0
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class ItemCommand:
    cmd_id: int
    kind: ChangeKind
    item: Item


@dataclass(frozen=True, slots=True)
class Sync:
    cmd_id: int
    dataset: str
    commands: tuple[ItemCommand, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of an inventory: an item's id and content hash, not its content."""

    source: str
    target: str
    hash: str
    modified: float
    deleted: bool


@dataclass(frozen=True, slots=True)
class Inventory:
    """Extension for slow sync and refresh: compare by hash first, fetch content with Get."""

    cmd_id: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Get:
    cmd_id: int
    ids: tuple[str, ...]  # ids as the receiver of the Get knows them


@dataclass(frozen=True, slots=True)
class MapItem:
    source: str  # sender's id
    target: str  # receiver's id


@dataclass(frozen=True, slots=True)
class Map:
    cmd_id: int
    items: tuple[MapItem, ...]


Command = Union[Alert, Status, Sync, Inventory, Get, Map]


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    commands: tuple[Command, ...]
    final: bool  # the last message of a package


# --- encoding -----------------------------------------------------------------------------------

_XML_SAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(parent: etree._Element, tag: str, value: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = value
    return element


def _locuri(parent: etree._Element, tag: str, value: str) -> None:
    _text(etree.SubElement(parent, tag), "LocURI", value)


def _encode_item(parent: etree._Element, item: Item) -> None:
    element = etree.SubElement(parent, "Item")
    _locuri(element, "Source", item.source)
    if item.target:
        _locuri(element, "Target", item.target)
    meta = etree.SubElement(element, "Meta")
    _text(meta, "Type", item.content_type)
    _text(meta, "Modified", repr(item.modified))
    if item.content is not None:
        try:
            text = item.content.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or _XML_SAFE.search(text):
            # content XML cannot carry travels as base64
            _text(meta, "Format", "b64")
            text = base64.b64encode(item.content).decode("ascii")
        _text(element, "Data", text)


def _encode_command(body: etree._Element, command: Command) -> None:
    name = type(command).__name__
    element = etree.SubElement(body, name)
    _text(element, "CmdID", str(command.cmd_id))
    if isinstance(command, Alert):
        _text(element, "Data", str(command.mode.alert_code))
        item = etree.SubElement(element, "Item")
        _locuri(item, "Target", command.dataset)
        anchor = etree.SubElement(etree.SubElement(item, "Meta"), "Anchor")
        _text(anchor, "Last", command.last)
        _text(anchor, "Next", command.next)
    elif isinstance(command, Status):
        _text(element, "MsgRef", str(command.msg_ref))
        _text(element, "CmdRef", str(command.cmd_ref))
        _text(element, "Cmd", command.cmd)
        if command.ref:
            _text(element, "SourceRef", command.ref)
        _text(element, "Data", str(command.code))
        if command.reason:
            _text(etree.SubElement(element, "Item"), "Data", command.reason)
    elif isinstance(command, Sync):
        _locuri(element, "Target", command.dataset)
        for sub in command.commands:
            child = etree.SubElement(element, sub.kind.value)
            _text(child, "CmdID", str(sub.cmd_id))
            _encode_item(child, sub.item)
    elif isinstance(command, Inventory):
        for entry in command.entries:
            attributes = {"i": entry.source, "h": entry.hash, "m": repr(entry.modified)}
            if entry.target:
                attributes["t"] = entry.target
            if entry.deleted:
                attributes["d"] = "1"
            etree.SubElement(element, "E", attributes)
    elif isinstance(command, Get):
        for item_id in command.ids:
            _locuri(etree.SubElement(element, "Item"), "Target", item_id)
    elif isinstance(command, Map):
        for map_item in command.items:
            child = etree.SubElement(element, "MapItem")
            _locuri(child, "Target", map_item.target)
            _locuri(child, "Source", map_item.source)


def encode(message: Message) -> bytes:
    root = etree.Element("SyncML")
    header = etree.SubElement(root, "SyncHdr")
    _text(header, "VerDTD", "1.2")
    _text(header, "VerProto", PROTOCOL)
    _text(header, "SessionID", message.header.session_id)
    _text(header, "MsgID", str(message.header.msg_id))
    _locuri(header, "Target", message.header.target)
    _locuri(header, "Source", message.header.source)
    body = etree.SubElement(root, "SyncBody")
    for command in message.commands:
        _encode_command(body, command)
    if message.final:
        etree.SubElement(body, "Final")
    return etree.tostring(root, encoding="utf-8", xml_declaration=False)


# --- decoding -----------------------------------------------------------------------------------

def _child(element: etree._Element, tag: str) -> etree._Element:
    child = element.find(tag)
    if child is None:
        raise MessageError(f"<{element.tag}> lacks <{tag}>")
    return child


def _str(element: etree._Element, tag: str, *, required: bool = True) -> str:
    child = element.find(tag)
    if child is None:
        if required:
            raise MessageError(f"<{element.tag}> lacks <{tag}>")
        return ""
    return child.text or ""


def _int(element: etree._Element, tag: str) -> int:
    text = _str(element, tag)
    # isdigit alone also accepts digits int() refuses (superscripts such as '\u00b2')
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise MessageError(f"<{tag}> is not a number: {text[:40]!r}")
    return int(text)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MessageError(f"not a time: {text[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise MessageError(f"not a time: {text[:40]!r}")
    return value


def _item_id(text: str | None) -> str:
    if not text or len(text) > MAX_ID_CHARS:
        raise MessageError("an item id is empty or too long")
    return text


def _locuri_of(element: etree._Element, tag: str, *, required: bool = True) -> str:
    holder = element.find(tag)
    if holder is None:
        if required:
            raise MessageError(f"<{element.tag}> lacks <{tag}>")
        return ""
    return _str(holder, "LocURI")


def _decode_item(element: etree._Element, kind: ChangeKind) -> Item:
    item = _child(element, "Item")
    meta = _child(item, "Meta")
    source = _item_id(_locuri_of(item, "Source"))
    target = _locuri_of(item, "Target", required=False)
    if target:
        _item_id(target)
    data = item.find("Data")
    content = None
    if kind is not ChangeKind.DELETE:
        if data is None:
            raise MessageError(f"<{kind.value}> of {source!r} carries no <Data>")
        text = data.text or ""
        if _str(meta, "Format", required=False) == "b64":
            try:
                content = base64.b64decode(text, validate=True)
            except ValueError:
                raise MessageError(f"bad base64 in {source!r}") from None
        else:
            content = text.encode("utf-8")
    return Item(source, target, _str(meta, "Type"), _float(_str(meta, "Modified")), content)


def _decode_command(element: etree._Element) -> Command:
    tag = element.tag
    cmd_id = _int(element, "CmdID")
    if tag == "Alert":
        code = _int(element, "Data")
        try:
            mode = SyncMode.from_alert_code(code)
        except ValueError as error:
            raise MessageError(str(error), 406) from None
        item = _child(element, "Item")
        anchor = _child(_child(item, "Meta"), "Anchor")
        return Alert(cmd_id, mode, _locuri_of(item, "Target"), _str(anchor, "Last"), _str(anchor, "Next"))
    if tag == "Status":
        reason_item = element.find("Item")
        return Status(
            cmd_id,
            _int(element, "MsgRef"),
            _int(element, "CmdRef"),
            _str(element, "Cmd"),
            _int(element, "Data"),
            _str(element, "SourceRef", required=False),
            _str(reason_item, "Data", required=False) if reason_item is not None else "",
        )
    if tag == "Sync":
        commands = []
        for child in element:
            if child.tag in ("CmdID", "Target", "Source"):
                continue
            try:
                kind = ChangeKind(child.tag)
            except ValueError:
                raise MessageError(f"unknown command <{child.tag}> in <Sync>", 406) from None
            commands.append(ItemCommand(_int(child, "CmdID"), kind, _decode_item(child, kind)))
        return Sync(cmd_id, _locuri_of(element, "Target"), tuple(commands))
    if tag == "Inventory":
        entries = []
        for child in element.iterchildren("E"):
            get = child.get
            entries.append(
                Entry(_item_id(get("i")), get("t") or "", get("h") or "", _float(get("m") or ""), get("d") == "1")
            )
        return Inventory(cmd_id, tuple(entries))
    if tag == "Get":
        return Get(cmd_id, tuple(_item_id(_locuri_of(item, "Target")) for item in element.iterchildren("Item")))
    if tag == "Map":
        items = tuple(
            MapItem(_item_id(_locuri_of(child, "Source")), _item_id(_locuri_of(child, "Target")))
            for child in element.iterchildren("MapItem")
        )
        return Map(cmd_id, items)
    raise MessageError(f"unknown command <{tag}>", 406)


def decode(data: bytes) -> Message:
    """Parse one message; anything malformed, oversized or hostile raises MessageError."""
    try:
        root = parse_untrusted(data, max_bytes=MAX_MESSAGE_BYTES, max_depth=MAX_DEPTH)
    except XmlTooLarge as error:
        raise MessageError(f"message of {error.size} bytes exceeds {error.limit}", 413) from None
    except UntrustedXmlError as error:
        raise MessageError(error.reason) from None
    if root.tag != "SyncML":
        raise MessageError(f"root element is <{root.tag}>, not <SyncML>")
    header_element = _child(root, "SyncHdr")
    if _str(header_element, "VerProto") != PROTOCOL:
        raise MessageError("unsupported protocol version", 505)
    header = Header(
        _str(header_element, "SessionID"),
        _int(header_element, "MsgID"),
        _locuri_of(header_element, "Source"),
        _locuri_of(header_element, "Target"),
    )
    body = _child(root, "SyncBody")
    commands = []
    final = False
    for element in body:
        if not isinstance(element.tag, str):
            continue
        if element.tag == "Final":
            final = True
            continue
        commands.append(_decode_command(element))
    return Message(header, tuple(commands), final)
