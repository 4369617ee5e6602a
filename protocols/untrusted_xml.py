"""The one way sipsync parses XML it did not write: bytes from a peer or the network to an element
tree, refusing anything hostile (oversize, not UTF-8, a DTD, entities, deep nesting) first."""

from __future__ import annotations

from functools import lru_cache

from lxml import etree


class UntrustedXmlError(Exception):
    """The bytes were refused; `reason` is meant for a person. Each format wraps it in its own error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class XmlTooLarge(UntrustedXmlError):
    """Over the caller's size cap; refused before any decoding or parsing."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"body is {size} bytes; the limit is {limit}")
        self.size = size
        self.limit = limit


def parser() -> etree.XMLParser:
    """A parser that never loads a DTD, expands an entity or touches the network."""
    # A fresh parser per body: lxml parsers keep state and are not safe to share across threads.
    return etree.XMLParser(
        # The text checked below is the text parsed: an encoding declaration (UTF-7, EBCDIC)
        # cannot turn checked bytes into a DOCTYPE the check did not see.
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(data: bytes, *, max_bytes: int, max_depth: int) -> etree._Element:
    """The root element of `data`, at most `max_bytes` long and `max_depth` elements deep (the root
    is depth 1); UntrustedXmlError (XmlTooLarge for the size) if refused."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a body is bytes, not {type(data).__name__}")
    if max_depth < 1:
        raise ValueError(f"max_depth is at least 1 (the root), not {max_depth}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise XmlTooLarge(len(data), max_bytes)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedXmlError(f"body is not UTF-8 (bad byte at offset {exc.start})") from None
    # UTF-8 with no NUL rules out UTF-16/32, so a DTD cannot hide from this check, and entity
    # tricks (billion laughs, XXE) never reach the parser. UTF-8 keeps ASCII as it is, so the
    # bytes can be searched directly.
    if b"\x00" in data:
        raise UntrustedXmlError("body contains a NUL character")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UntrustedXmlError("DTDs and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError as exc:
        raise UntrustedXmlError(f"not well-formed XML: {exc.msg}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise UntrustedXmlError("DTDs and entity declarations are not allowed")
    if _deeper_than(max_depth)(root):
        raise UntrustedXmlError(f"elements are nested more than {max_depth} deep")
    return root


@lru_cache(maxsize=8)
def _deeper_than(max_depth: int) -> etree.XPath:
    # One XPath walk in C rather than a Python loop over every element: is there an element
    # `max_depth` steps below the root, that is at depth max_depth + 1?
    return etree.XPath("boolean(" + "/".join(["*"] * max_depth) + ")")
