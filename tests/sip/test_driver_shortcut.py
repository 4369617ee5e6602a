"""The driver's shortcut: raw bytes offered to a cheap reader first, the general parser and the
core for everything the reader leaves. No sockets: what the transport would send is recorded."""

from __future__ import annotations

from protocols.sip.driver import SipDriver
from protocols.sip.effects import Transmit
from protocols.sip.endpoint import Endpoint

SOURCE = Endpoint("udp", "127.0.0.1", 5071)
OPTIONS = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n"
           b"From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
           b"Content-Length: 0\r\n\r\n")


class Core:
    def __init__(self) -> None:
        self.requests: list[str] = []

    def request_received(self, request, source, now):
        self.requests.append(request.method)
        return [Transmit(b"general", source)]

    def next_deadline(self):
        return None


def driver_with(shortcut) -> tuple[SipDriver, Core, list[bytes]]:
    core = Core()
    driver = SipDriver(core, shortcut=shortcut)  # type: ignore[arg-type]
    sent: list[bytes] = []
    driver.transport.send = lambda data, destination: sent.append(data)  # type: ignore[method-assign]
    return driver, core, sent


def test_a_message_the_shortcut_answers_never_reaches_the_core():
    driver, core, sent = driver_with(lambda data, source, now: [Transmit(b"lean", source)])
    driver._received(OPTIONS, SOURCE)
    assert sent == [b"lean"] and core.requests == []
    assert driver.counters["received"] == 1


def test_a_message_the_shortcut_leaves_is_parsed_and_handed_to_the_core():
    driver, core, sent = driver_with(lambda data, source, now: None)
    driver._received(OPTIONS, SOURCE)
    assert sent == [b"general"] and core.requests == ["OPTIONS"]


def test_a_shortcut_that_fails_leaves_the_message_to_the_general_path():
    def failing(data, source, now):
        raise RuntimeError("a bug in the shortcut")

    driver, core, sent = driver_with(failing)
    driver._received(OPTIONS, SOURCE)
    assert sent == [b"general"] and core.requests == ["OPTIONS"]
