"""Valid descriptors and bodies for the tests to start from, and edits that break them."""

from __future__ import annotations

import dataclasses
import re

from session_xml import Fingerprint, ProgressReport, SessionDescriptor

CALLER_FINGERPRINT = Fingerprint.of_certificate(b"caller certificate")
CALLEE_FINGERPRINT = Fingerprint.of_certificate(b"callee certificate")
CALLER_TOKEN = "q3nX0aV7rL2mB9cT5wYd"
CALLEE_TOKEN = "Zk8pQ1sV4xN7bT2mR6yW"

OFFER = SessionDescriptor(
    role="offer",
    session_id="a84b4c76e66710@laptop",
    source_device="alice/laptop",
    destination_device="alice/phone",
    data_type="contacts",
    dataset="address-book",
    direction="two-way",
    sync_mode="two-way",
    sync_protocols=("syncml", "rsync"),
    source_ip="192.0.2.10",
    source_port=40000,
    fingerprint=CALLER_FINGERPRINT,
    token=CALLER_TOKEN,
)

ANSWER = dataclasses.replace(
    OFFER,
    role="answer",
    sync_protocols=("syncml",),
    destination_ip="2001:db8::7",
    destination_port=45001,
    fingerprint=CALLEE_FINGERPRINT,
    token=CALLEE_TOKEN,
)

PROGRESS = ProgressReport(
    session_id="a84b4c76e66710@laptop", phase="delta", bytes_done=1024, bytes_total=4096, records_done=0
)


def an_offer(**changes: object) -> SessionDescriptor:
    return dataclasses.replace(OFFER, **changes)


def an_answer(**changes: object) -> SessionDescriptor:
    return dataclasses.replace(ANSWER, **changes)


def with_text(body: bytes, element: str, text: str) -> bytes:
    """`body` with the text of its first `element` replaced."""
    return _edit(body, element, lambda m: f"{m['open']}{text}</{element}>")


def without(body: bytes, element: str) -> bytes:
    return _edit(body, element, lambda m: "")


def repeated(body: bytes, element: str) -> bytes:
    return _edit(body, element, lambda m: m[0] + "\n  " + m[0])


def inserted_before(body: bytes, element: str, xml: str) -> bytes:
    return _edit(body, element, lambda m: xml + m[0])


def _edit(body: bytes, element: str, replace) -> bytes:
    pattern = rf"(?P<open><{element}(?: [^>]*)?>)[^<]*</{element}>"
    edited, count = re.subn(pattern, replace, body.decode(), count=1)
    assert count == 1, f"no <{element}> in the body"
    return edited.encode()
