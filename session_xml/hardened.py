"""Untrusted bytes to a schema-valid element tree, refusing anything hostile before it costs us."""

from __future__ import annotations

import re
from collections.abc import Collection
from importlib import resources

from lxml import etree

from .errors import BodyTooLarge, MalformedBody, UnsupportedVersion

NAMESPACE = "urn:sipsync:session:1"
FORMAT_VERSION = "1.0"
MAX_BODY_BYTES = 64 * 1024
# Our bodies are three levels deep; the slack is for extension elements.
MAX_DEPTH = 16

_VERSION = re.compile(r"\s*([0-9]{1,4})\.([0-9]{1,4})\s*")
_SUPPORTED_MAJOR = 1


def parser() -> etree.XMLParser:
    """A parser that never loads a DTD, expands an entity or touches the network."""
    # A fresh parser per body: lxml parsers keep state and are not safe to share across threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_SCHEMA = etree.XMLSchema(
    etree.fromstring(resources.files(__package__).joinpath("session.xsd").read_bytes(), parser())
)


def load(data: bytes, roots: Collection[str]) -> etree._Element:
    """The root element of `data`, one of `roots` in our namespace and valid against the XSD."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a body is bytes, not {type(data).__name__}")
    if len(data) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"body is not UTF-8 (bad byte at offset {exc.start})") from None
    # UTF-8 with no NUL rules out UTF-16/32 and EBCDIC, so a DTD cannot hide from this check,
    # and entity tricks (billion laughs, XXE) never reach the parser.
    if "\x00" in text:
        raise MalformedBody("body contains a NUL character")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise MalformedBody("DTDs and entity declarations are not allowed")
    try:
        root = etree.fromstring(bytes(data), parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedBody(f"not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise MalformedBody("DTDs and entity declarations are not allowed")
    _check_depth(root)
    _check_root(root, roots)
    _check_version(root.get("version"))
    _drop_extensions(root)
    if not _SCHEMA.validate(root):
        error = _SCHEMA.error_log[0]
        message = error.message.replace(f"{{{NAMESPACE}}}", "")
        raise MalformedBody(f"line {error.line}: {message}")
    return root


def _check_depth(root: etree._Element) -> None:
    pending = [(root, 1)]
    while pending:
        element, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise MalformedBody(f"elements are nested more than {MAX_DEPTH} deep")
        pending.extend((child, depth + 1) for child in element)


def _check_root(root: etree._Element, roots: Collection[str]) -> None:
    name = etree.QName(root)
    expected = " or ".join(f"<{r}>" for r in roots)
    if name.namespace != NAMESPACE:
        where = f"namespace {name.namespace}" if name.namespace else "no namespace"
        raise MalformedBody(
            f"expected {expected} in namespace {NAMESPACE}, got <{name.localname}> in {where}"
        )
    if name.localname not in roots:
        raise MalformedBody(f"expected {expected}, got <{name.localname}>")


def _check_version(version: str | None) -> None:
    # Checked before the schema, so a newer peer hears why rather than a list of schema errors.
    if version is None:
        raise MalformedBody("the version attribute is missing")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise MalformedBody(f"version {version!r} is not of the form MAJOR.MINOR")
    if int(match.group(1)) != _SUPPORTED_MAJOR:
        raise UnsupportedVersion(
            f"format version {version.strip()} is not supported; this device speaks {_SUPPORTED_MAJOR}.x"
        )


def _drop_extensions(root: etree._Element) -> None:
    # Extensions from newer minor versions live in their own namespaces; wherever they sit, skip them.
    for child in list(root):
        if not isinstance(child.tag, str):
            continue
        namespace = etree.QName(child).namespace
        if namespace is not None and namespace != NAMESPACE:
            root.remove(child)
