"""The format's namespace, version and XSD, and the check of an untrusted body against them: the
shared hardened parser first, then root, version and schema."""

from __future__ import annotations

import re
from collections.abc import Collection
from importlib import resources

from lxml import etree

from protocols.untrusted_xml import UntrustedXmlError, XmlTooLarge, parse_untrusted, parser

from .errors import BodyTooLarge, MalformedBody, UnsupportedVersion

NAMESPACE = "urn:sipsync:session:1"
FORMAT_VERSION = "1.0"
MAX_BODY_BYTES = 64 * 1024
# Our bodies are three levels deep; the slack is for extension elements.
MAX_DEPTH = 16

_VERSION = re.compile(r"\s*([0-9]{1,4})\.([0-9]{1,4})\s*")
_SUPPORTED_MAJOR = 1

_SCHEMA = etree.XMLSchema(
    etree.fromstring(resources.files(__package__).joinpath("session.xsd").read_bytes(), parser())
)


def load(data: bytes, roots: Collection[str]) -> etree._Element:
    """The root element of `data`, one of `roots` in our namespace and valid against the XSD."""
    try:
        root = parse_untrusted(data, max_bytes=MAX_BODY_BYTES, max_depth=MAX_DEPTH)
    except XmlTooLarge as exc:
        raise BodyTooLarge(exc.reason) from None
    except UntrustedXmlError as exc:
        raise MalformedBody(exc.reason) from None
    _check_root(root, roots)
    _check_version(root.get("version"))
    _drop_extensions(root)
    if not _SCHEMA.validate(root):
        error = _SCHEMA.error_log[0]
        message = error.message.replace(f"{{{NAMESPACE}}}", "")
        raise MalformedBody(f"line {error.line}: {message}")
    return root


def _split_tag(element: etree._Element) -> tuple[str | None, str]:
    """Namespace and local name. Not etree.QName(element): it parses the "{namespace}name" tag
    again and raises ValueError on a namespace holding "}", which XML allows and a peer can send;
    a local name never holds one, so the tag splits at its last "}"."""
    tag = element.tag
    if tag.startswith("{"):
        namespace, _, localname = tag[1:].rpartition("}")
        return namespace, localname
    return None, tag


def _check_root(root: etree._Element, roots: Collection[str]) -> None:
    namespace, localname = _split_tag(root)
    expected = " or ".join(f"<{r}>" for r in roots)
    if namespace != NAMESPACE:
        where = f"namespace {namespace}" if namespace else "no namespace"
        raise MalformedBody(
            f"expected {expected} in namespace {NAMESPACE}, got <{localname}> in {where}"
        )
    if localname not in roots:
        raise MalformedBody(f"expected {expected}, got <{localname}>")


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
        namespace, _ = _split_tag(child)
        if namespace is not None and namespace != NAMESPACE:
            root.remove(child)
