"""The UDP reader: every datagram waiting is read in one readiness event, up to a bound, and
the receiver is told once when they are all handed over; answers that meet a full send buffer
wait, in order, for the socket to be writable. The loop is a recorder; the socket is a real
loopback one, or one that fails on demand."""

from __future__ import annotations

import socket

import pytest

from protocols.sip import transport


class RecordingLoop:
    """What the reader asks of the event loop, recorded instead of done."""

    def __init__(self) -> None:
        self.readers: dict[int, object] = {}
        self.writers: dict[int, object] = {}

    def add_reader(self, fd, callback):
        self.readers[fd] = callback

    def remove_reader(self, fd):
        self.readers.pop(fd, None)

    def add_writer(self, fd, callback):
        self.writers[fd] = callback

    def remove_writer(self, fd):
        self.writers.pop(fd, None)


class FullBuffer:
    """A UDP socket whose send buffer is full for its first `full_for` sends."""

    def __init__(self, full_for: int) -> None:
        self.full_for = full_for
        self.sent: list[bytes] = []

    def setblocking(self, flag):
        pass

    def fileno(self):
        return 99

    def sendto(self, data, addr):
        if self.full_for:
            self.full_for -= 1
            raise BlockingIOError
        self.sent.append(data)

    def close(self):
        pass


@pytest.fixture
def pair():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    yield server, client
    server.close()
    client.close()


def reader_on(server):
    heard: list[bytes] = []
    drained: list[int] = []
    datagrams = transport._Datagrams(lambda data, source: heard.append(data),
                                     lambda: drained.append(len(heard)))
    loop = RecordingLoop()
    datagrams.attach(server, loop)
    return datagrams, loop, heard, drained


def test_every_datagram_waiting_is_read_in_one_event_and_the_receiver_told_once(pair):
    server, client = pair
    datagrams, loop, heard, drained = reader_on(server)
    for n in range(5):
        client.sendto(b"message %d" % n, server.getsockname())
    loop.readers[server.fileno()]()
    assert heard == [b"message %d" % n for n in range(5)]
    assert drained == [5]


def test_a_readiness_event_reads_no_more_than_its_bound(pair, monkeypatch):
    monkeypatch.setattr(transport, "DATAGRAMS_PER_WAKEUP", 3)
    server, client = pair
    datagrams, loop, heard, drained = reader_on(server)
    for n in range(5):
        client.sendto(b"message %d" % n, server.getsockname())
    loop.readers[server.fileno()]()
    assert len(heard) == 3 and drained == [3]
    loop.readers[server.fileno()]()  # the loop calls again: the socket is still readable
    assert len(heard) == 5 and drained == [3, 5]


def test_an_event_with_nothing_to_read_tells_the_receiver_nothing(pair):
    server, _ = pair
    datagrams, loop, heard, drained = reader_on(server)
    loop.readers[server.fileno()]()
    assert heard == [] and drained == []


def test_the_receiver_is_told_even_when_handling_a_datagram_raised(pair):
    server, client = pair
    drained: list[bool] = []

    def failing(data, source):
        raise RuntimeError("a bug in the receiver")

    datagrams = transport._Datagrams(failing, lambda: drained.append(True))
    loop = RecordingLoop()
    datagrams.attach(server, loop)
    client.sendto(b"x", server.getsockname())
    with pytest.raises(RuntimeError):
        loop.readers[server.fileno()]()
    assert drained == [True]


def test_answers_are_sent_at_once_and_come_back_to_the_source(pair):
    server, client = pair
    datagrams, loop, heard, drained = reader_on(server)
    datagrams.sendto(b"answer", client.getsockname())
    assert client.recvfrom(100) == (b"answer", server.getsockname())
    assert loop.writers == {}


def test_answers_meeting_a_full_send_buffer_wait_and_leave_in_order():
    sock = FullBuffer(full_for=2)
    datagrams = transport._Datagrams(lambda data, source: None)
    loop = RecordingLoop()
    datagrams.attach(sock, loop)  # type: ignore[arg-type]
    for n in range(3):
        datagrams.sendto(b"answer %d" % n, ("127.0.0.1", 5071))
    assert sock.sent == [] and 99 in loop.writers
    loop.writers[99]()  # still full once
    assert sock.sent == [] and 99 in loop.writers
    loop.writers[99]()
    assert sock.sent == [b"answer 0", b"answer 1", b"answer 2"]
    assert loop.writers == {}


def test_answers_waiting_are_bounded(monkeypatch):
    monkeypatch.setattr(transport, "BACKLOG_LIMIT", 2)
    sock = FullBuffer(full_for=1)
    datagrams = transport._Datagrams(lambda data, source: None)
    loop = RecordingLoop()
    datagrams.attach(sock, loop)  # type: ignore[arg-type]
    for n in range(4):
        datagrams.sendto(b"answer %d" % n, ("127.0.0.1", 5071))
    loop.writers[99]()
    assert sock.sent == [b"answer 0", b"answer 1"]


def test_closing_stops_reading_and_drops_what_waits():
    sock = FullBuffer(full_for=1)
    datagrams = transport._Datagrams(lambda data, source: None)
    loop = RecordingLoop()
    datagrams.attach(sock, loop)  # type: ignore[arg-type]
    datagrams.sendto(b"answer", ("127.0.0.1", 5071))
    datagrams.close()
    assert loop.readers == {} and loop.writers == {}
    datagrams.sendto(b"late", ("127.0.0.1", 5071))
    assert sock.sent == []
