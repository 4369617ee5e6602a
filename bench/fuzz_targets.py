"""What the fuzzer feeds: every parser that takes bytes from the network, each with the typed error
it is allowed to raise and the valid inputs its mutations start from.

A target's `run(data)` must return (any value) or raise one of its `typed` errors; anything else is
a crash. Imports happen inside `harness()` so that the fuzzer can instrument the parsers as they
load, and so that the corpus replay (tests/test_fuzz_corpus.py) needs nothing but the project.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fuzz_corpus"


@dataclass(frozen=True)
class Harness:
    """One target ready to run: the function under test and the errors that count as refusals."""

    run: Callable[[bytes], object]
    typed: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]] = list


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    harness: Callable[[], Harness]
    # Packages whose Python code the coverage-guided fuzzer instruments.
    instrument: tuple[str, ...]
    max_len: int = 4096
    lines: bool = False  # text made of lines: the structure-aware mutator works on whole lines
    skip: Callable[[], str | None] = field(default=lambda: None)


def _chunks(data: bytes, size_byte: int) -> list[bytes]:
    """`data` cut into pieces of 1..64 bytes, the size taken from one input byte, so that the
    fuzzer also explores how a stream is split across reads."""
    size = size_byte % 64 + 1
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- SIP ----------------------------------------------------------------------------------------

_SIP_SEEDS = [
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n"
    b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;rport;branch=z9hG4bKa1\r\n"
    b"Max-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=88\r\n"
    b"To: <sip:alice@example.com>\r\nCall-ID: reg-1@10.0.0.1\r\nCSeq: 2 REGISTER\r\n"
    b"Contact: <sip:alice@10.0.0.1:5060;transport=tcp>;expires=3600;+sip.instance=\"<urn:uuid:1>\"\r\n"
    b"Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", "
    b"uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5\r\n"
    b"Expires: 3600\r\nContent-Length: 0\r\n\r\n",
    b"INVITE sip:bob@x;device=phone SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK2, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK3\r\n"
    b"f: <sip:a@x>;tag=1\r\nt: <sip:b@x>\r\ni: c2\r\nCSeq: 7 INVITE\r\n"
    b"m: <sip:alice@10.0.0.1>;expires=60, <sip:alice@10.0.0.2>\r\n"
    b"c: application/sipsync-session+xml\r\nl: 5\r\n\r\n<x/>\n",
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1;rport=5060;"
    b"received=10.0.0.1\r\nFrom: <sip:alice@example.com>;tag=88\r\nTo: <sip:alice@example.com>;tag=9\r\n"
    b"Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm=\"example.com\", "
    b"nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"\r\nContent-Length: 0\r\n\r\n",
    b"INFO sip:bob@x SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1\r\n ;branch=z9hG4bK9\r\n"
    b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: folded\r\nCSeq: 3 INFO\r\n"
    b"Content-Length: 0\r\n\r\n",
]


def _sip_datagram() -> Harness:
    from protocols.sip.message import SipParseError, parse_message

    return Harness(parse_message, (SipParseError,), lambda: list(_SIP_SEEDS))


def _sip_stream() -> Harness:
    from protocols.sip.message import SipParseError, parse_message
    from protocols.sip.stream import StreamFramer

    def run(data: bytes) -> list[object]:
        framer = StreamFramer()
        messages = []
        for piece in _chunks(data[1:], data[0] if data else 0):
            for message in framer.feed(piece):
                messages.append(parse_message(message, stream=True))
        return messages

    def seeds() -> list[bytes]:
        return [b"\x07" + seed for seed in _SIP_SEEDS] + [b"\x3f\r\n\r\n" + b"".join(_SIP_SEEDS[:3])]

    return Harness(run, (SipParseError,), seeds)


def _sip_register_scan() -> Harness:
    """Differential: whatever REGISTER the lean scanner reads, the general parser reads alike
    (same fields, same answer bytes); a disagreement is a crash."""
    from control_server.inspection import inspect
    from protocols.sip.endpoint import Endpoint
    from protocols.sip.message import (SipParseError, SipRequest, note_source, parse_message,
                                       response_to)
    from protocols.sip.register_answer import Reply, write_reply
    from protocols.sip.register_head import head_of
    from protocols.sip.register_scan import scan_register

    sources = (Endpoint("udp", "192.0.2.7", 5071), Endpoint("tcp", "192.0.2.7", 40312))
    reply = Reply(401, to_tag="a1b2c3", headers=(("WWW-Authenticate", 'Digest realm="r", nonce="n"'),))

    def run(data: bytes) -> object:
        source = sources[data[0] & 1] if data else sources[0]
        message = data[1:]
        lean = scan_register(message, source)
        if lean is None:
            return None
        try:
            general = parse_message(message, stream=source.reliable)
        except SipParseError:
            raise AssertionError("the scanner read a message the general parser refuses") from None
        if not isinstance(general, SipRequest) or general.method != "REGISTER":
            raise AssertionError("the scanner read what the general parser takes for another message")
        note_source(general, source)
        if inspect(general, answered_here=True) is not None:
            raise AssertionError("the scanner read a REGISTER the general path answers otherwise")
        if head_of(general) != lean:
            raise AssertionError("the scanner and the general parser read different fields")
        reference = response_to(general, reply.status, reply.reason, to_tag=reply.to_tag,
                                headers=list(reply.headers))
        if write_reply(lean, reply) != bytes(reference):
            raise AssertionError("answers written from the two readings differ")
        return lean

    def seeds() -> list[bytes]:
        registers = [seed for seed in _SIP_SEEDS if seed.startswith(b"REGISTER")]
        sipp = (b"REGISTER sip:127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;"
                b"branch=z9hG4bK-1-1-0;rport\r\nMax-Forwards: 70\r\nFrom: <sip:user7@127.0.0.1>;"
                b"tag=1R1\r\nTo: <sip:user7@127.0.0.1>\r\nCall-ID: 1-1@127.0.0.1\r\n"
                b"CSeq: 1 REGISTER\r\nContact: <sip:user7@127.0.0.1:5071;transport=UDP>\r\n"
                b'Authorization: Digest username="user7",realm="r",cnonce="6b8b4567",nc=00000001,'
                b'qop=auth,uri="sip:127.0.0.1:5070",nonce="ab",response="0f1e",algorithm=MD5\r\n'
                b"Expires: 60\r\nUser-Agent: sipp\r\nContent-Length: 0\r\n\r\n")
        return [prefix + seed for seed in registers + [sipp] for prefix in (b"\x00", b"\x01")]

    return Harness(run, (), seeds)


def _reginfo() -> Harness:
    from protocols.sip.reginfo import ContactEvent, DeviceState, RegInfo, RegInfoError, build, parse

    def seeds() -> list[bytes]:
        phone = DeviceState("alice", "phone", online=True, event=ContactEvent.REGISTERED,
                            contact="sip:alice@127.0.0.1:5071;device=phone", expires=58,
                            online_since=1_700_000_000.5, last_seen=1_700_000_050.25,
                            user_agent="sipsync-peer/0.1")
        gone = DeviceState("bob", "tablet", online=False, event=ContactEvent.REJECTED,
                           last_seen=1_700_000_010.0, reason="no longer shared")
        return [build(RegInfo(3, True, (phone, gone)), "sipsync"),
                build(RegInfo(4, False, (gone,)), "example.org")]

    return Harness(parse, (RegInfoError,), seeds)


# --- session descriptor and progress -------------------------------------------------------------

def _session_examples():
    from session_xml import Fingerprint, ProgressReport, SessionDescriptor

    offer = SessionDescriptor(
        role="offer", session_id="a84b4c76e66710@laptop", source_device="alice/laptop",
        destination_device="alice/phone", data_type="contacts", dataset="address-book",
        direction="two-way", sync_mode="two-way", sync_protocols=("syncml", "rsync"),
        source_ip="192.0.2.10", source_port=40000,
        fingerprint=Fingerprint.of_certificate(b"caller certificate"), token="q3nX0aV7rL2mB9cT5wYd",
    )
    answer = SessionDescriptor(
        role="answer", session_id=offer.session_id, source_device=offer.source_device,
        destination_device=offer.destination_device, data_type="files", dataset="photos",
        direction="push", sync_mode=None, sync_protocols=("rsync",), source_ip="192.0.2.10",
        source_port=40000, destination_ip="2001:db8::7", destination_port=45001,
        fingerprint=Fingerprint.of_certificate(b"callee certificate"), token="Zk8pQ1sV4xN7bT2mR6yW",
    )
    progress = [
        ProgressReport(session_id=offer.session_id, phase="delta", bytes_done=1024, bytes_total=4096,
                       counters=(("bytesLiteral", 512), ("bytesMatched", 512))),
        ProgressReport(session_id=offer.session_id, phase="failed", records_done=3, records_total=9,
                       error="the peer went away"),
    ]
    return [offer, answer], progress


def _session_descriptor() -> Harness:
    from session_xml import DescriptorError, build_descriptor, parse_descriptor

    return Harness(parse_descriptor, (DescriptorError,),
                   lambda: [build_descriptor(d) for d in _session_examples()[0]])


def _session_progress() -> Harness:
    from session_xml import DescriptorError, build_progress, parse_progress

    return Harness(parse_progress, (DescriptorError,),
                   lambda: [build_progress(p) for p in _session_examples()[1]])


# --- data channel --------------------------------------------------------------------------------

def _channel_frames() -> Harness:
    from protocols.channel.errors import ChannelError
    from protocols.channel.framing import FrameDecoder, FrameType, encode_frame

    def run(data: bytes) -> list[object]:
        # A small cap so that lengths near it are reachable; the first byte picks the chunking
        # and whether bytes arrive by `feed` or through the buffer protocol asyncio uses.
        decoder = FrameDecoder(max_frame_size=2048)
        frames: list[object] = []
        buffered = bool(data[:1]) and data[0] & 0x80
        for piece in _chunks(data[1:], data[0] if data else 0):
            if buffered:
                while piece:
                    target = decoder.get_buffer()
                    take = min(len(target), len(piece))
                    target[:take] = piece[:take]
                    piece = piece[take:]
                    frames += decoder.buffer_updated(take)
            else:
                frames += decoder.feed(piece)
        # What was decoded must be exactly what was sent: the frames re-encode to a prefix.
        again = b"".join(encode_frame(frame.kind, frame.payload) for frame in frames)
        if not data[1:].startswith(again):
            raise AssertionError("decoded frames do not re-encode to the bytes they came from")
        return frames

    def seeds() -> list[bytes]:
        stream = b"".join([encode_frame(FrameType.CHALLENGE, bytes(33)), encode_frame(FrameType.ACCEPT),
                           encode_frame(FrameType.DATA, b"hello"), encode_frame(FrameType.CLOSE)])
        return [b"\x05" + stream, b"\x85" + stream, b"\x00" + encode_frame(FrameType.ERROR, b"\x01why")]

    return Harness(run, (ChannelError,), seeds)


class _Identities:
    """Two device identities made once per harness, in a directory that lives as long as it."""

    def __init__(self) -> None:
        from protocols.channel.identity import DeviceIdentity

        self._directory = tempfile.TemporaryDirectory(prefix="sipsync-fuzz-")
        root = Path(self._directory.name)
        self.listener = DeviceIdentity.load_or_create(root / "listener", "listener")
        self.connector = DeviceIdentity.load_or_create(root / "connector", "connector")


def _channel_handshake() -> Harness:
    from protocols.channel.authentication import Challenge, sign_hello
    from protocols.channel.errors import ChannelError
    from protocols.channel.framing import FrameDecoder, FrameType, encode_frame
    from protocols.channel.handshake import Handshake

    ids = _Identities()
    token = "Zk8pQ1sV4xN7bT2mR6yW"

    def run(data: bytes) -> object:
        """The first byte picks the role the hostile peer talks to; the rest is its frame stream."""
        if data[:1] and data[0] & 1:
            machine = Handshake.connector(ids.connector.private_key(), ids.connector.certificate_der,
                                          ids.listener.fingerprint, token)
            machine.connection_made(ids.listener.certificate_der)
        else:
            machine = Handshake.listener(ids.listener.fingerprint, ids.connector.fingerprint, token)
            machine.connection_made(None)
        for frame in FrameDecoder().feed(data[1:]):
            if machine.outcome is not None:
                break
            machine.receive_frame(frame)
        return machine.outcome

    def seeds() -> list[bytes]:
        challenge = Challenge.new()
        hello = sign_hello(ids.connector.private_key(), ids.connector.certificate_der, challenge,
                           ids.listener.fingerprint, token)
        return [
            b"\x00" + encode_frame(FrameType.HELLO, hello.encode()),
            b"\x01" + encode_frame(FrameType.CHALLENGE, challenge.encode()) + encode_frame(FrameType.ACCEPT),
            b"\x01" + encode_frame(FrameType.ERROR, b"\x03wrong session token"),
        ]

    return Harness(run, (ChannelError,), seeds)


# --- rsync ---------------------------------------------------------------------------------------

_BASIS = bytes(range(256)) * 4 + b"the quick brown fox jumps over the lazy dog\n" * 8
_NEW = _BASIS[:300] + b"something inserted" + _BASIS[500:] + b"appended tail"


def _rsync_signature() -> Harness:
    from protocols.rsync import RsyncError, Signature, SignatureReader, signature_of

    def run(data: bytes) -> object:
        reader = SignatureReader()
        for piece in _chunks(data[1:], data[0] if data else 0):
            reader.feed(piece)
        reader.finish()
        return Signature.from_wire(data[1:])

    return Harness(run, (RsyncError,),
                   lambda: [b"\x10" + signature_of(_BASIS, block_size=64), b"\x3f" + signature_of(b""),
                            b"\x11" + signature_of(_BASIS, block_size=64, strong_len=3)])


def _rsync_delta() -> Harness:
    from protocols.rsync import (DeltaEncoder, DeltaReader, RsyncError, Signature, apply_delta, delta_of,
                                 signature_of)
    from protocols.rsync.wire import PackCodec

    def run(data: bytes) -> object:
        reader = DeltaReader()
        for piece in _chunks(data[1:], data[0] if data else 0):
            reader.feed(piece)
        reader.finish()
        # The patcher's own checks (basis size, ranges, size and digest) are on the network path too.
        return apply_delta(_BASIS, data[1:])

    def seeds() -> list[bytes]:
        signature = Signature.from_wire(signature_of(_BASIS, block_size=64))
        text = _BASIS[:600] + b"a line of inserted text, 42\n" * 40 + _BASIS[600:]  # a literal pack
        zstd = DeltaEncoder(signature, literal_codec=PackCodec.ZSTD)  # LZ4 is the default
        return [b"\x09" + delta_of(signature, _NEW), b"\x3f" + delta_of(signature, bytes(5000)),
                b"\x05" + delta_of(signature, text), b"\x05" + b"".join(zstd.feed(text) + zstd.finish())]

    return Harness(run, (RsyncError,), seeds)


def _rsync_messages() -> Harness:
    from protocols.rsync import RsyncError
    from protocols.rsync.manifest import Skipped
    from protocols.rsync.messages import (DeltaFigures, FileRequest, Hello, decode_skipped,
                                          encode_skipped)
    from protocols.rsync.records import (BatchDecoder, BatchEncoder, Tag, decode_records, encode,
                                         encode_request)

    def records(payload: bytes) -> object:
        """The first batch of a direction's stream, as a fresh peer sends it."""
        return decode_records(BatchDecoder().decode(payload))

    decoders = (Hello.decode, FileRequest.decode, DeltaFigures.decode, decode_skipped, records)

    def run(data: bytes) -> object:
        """The first byte picks the payload type, as the frame type does on the channel."""
        return decoders[(data[0] if data else 0) % len(decoders)](data[1:])

    def seeds() -> list[bytes]:
        batch = BatchEncoder()
        batch.add(encode(Tag.REQUEST, encode_request("a/b.txt", 42)))
        batch.add(encode(Tag.REQUESTS_DONE))
        return [b"\x00" + Hello(2, "ab" * 16).encode(), b"\x01" + FileRequest("a/b.txt", 42).encode(),
                b"\x02" + DeltaFigures(100, 2000).encode(),
                b"\x03" + encode_skipped([Skipped("dev/null", "a device")]), b"\x04" + batch.take()]

    return Harness(run, (RsyncError,), seeds)


def _rsync_manifest() -> Harness:
    from protocols.rsync import RsyncError
    from protocols.rsync.manifest import EntryKind, FileEntry, Manifest, Skipped
    from protocols.rsync.messages import ManifestAssembler, changes_pieces, manifest_changes

    def manifest_pieces(manifest: Manifest) -> list[bytes]:
        return changes_pieces(manifest_changes(manifest, None))

    def run(data: bytes) -> object:
        assembler = ManifestAssembler(limit=1 << 16)
        for piece in _chunks(data[1:], data[0] if data else 0):
            assembler.feed(piece)
        return assembler.finish_changes(None)

    def seeds() -> list[bytes]:
        manifest = Manifest({"a/b.txt": FileEntry("a/b.txt", 12, 1_700_000_000_000_000_000, 0o644, bytes(16)),
                             "c": FileEntry("c", 0, 0, 0o755, bytes(range(16))),
                             "l": FileEntry("l", 0, 0, 0, b"", EntryKind.LINK, "a/b.txt")},
                            (Skipped("dev", "a device"),))
        return [b"\x20" + b"".join(manifest_pieces(manifest)),
                b"\x01" + b"".join(manifest_pieces(Manifest()))]

    return Harness(run, (RsyncError,), seeds)


# --- SyncML --------------------------------------------------------------------------------------

def _syncml() -> Harness:
    from protocols.syncml.messages import (Alert, Entry, Get, Header, Inventory, Item, ItemCommand, Map,
                                           MapItem, Message, MessageError, Status, Sync, decode, encode)
    from protocols.syncml.modes import SyncMode
    from protocols.syncml.records import ChangeKind

    def seeds() -> list[bytes]:
        header = Header("s1", 1, "alice/laptop", "alice/phone")
        card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\nEND:VCARD\r\n"
        first = Message(header, (
            Alert(1, SyncMode.TWO_WAY, "address-book", "3", "4"),
            Sync(2, "address-book", (
                ItemCommand(3, ChangeKind.ADD, Item("1", "", "text/vcard", 1.5, card)),
                ItemCommand(4, ChangeKind.REPLACE, Item("2", "9", "text/vcard", 2.0, b"\x00\xffbinary")),
                ItemCommand(5, ChangeKind.DELETE, Item("3")),
            )),
        ), final=True)
        second = Message(header, (
            Status(1, 1, 0, "SyncHdr", 200), Status(2, 1, 3, "Add", 418, "1", "already there"),
            Inventory(3, (Entry("1", "", "h1", 1.0, False), Entry("2", "7", "h2", 2.5, True))),
            Get(4, ("1", "2")), Map(5, (MapItem("1", "a"),)),
        ), final=False)
        return [encode(first), encode(second)]

    return Harness(decode, (MessageError,), seeds)


# --- record files --------------------------------------------------------------------------------

def _records() -> Harness:
    from peer.record_formats import ICALENDAR, VCARD, RecordFormatError, parse, uid_of

    kinds = (None, VCARD, ICALENDAR)

    def run(data: bytes) -> object:
        """The first byte picks how the type is known: sniffed from the bytes, or told."""
        parsed = parse(data[1:], kinds[(data[0] if data else 0) % len(kinds)])
        for item in parsed.items:
            uid_of(item)
        return parsed

    def seeds() -> list[bytes]:
        corpus = Path(__file__).resolve().parents[1] / "tests" / "corpus"
        files = sorted(path for path in corpus.iterdir() if path.suffix in (".vcf", ".ics"))
        return [b"\x00" + path.read_bytes() for path in files if path.stat().st_size <= 8192]

    return Harness(run, (RecordFormatError,), seeds)


TARGETS: dict[str, Target] = {target.name: target for target in (
    Target("sip-datagram", "SIP message from a UDP datagram (parse_message)", _sip_datagram,
           ("protocols.sip",), lines=True),
    Target("sip-stream", "SIP over TCP/TLS: StreamFramer, then parse_message(stream=True)", _sip_stream,
           ("protocols.sip",), lines=True),
    Target("sip-register-scan", "lean REGISTER scanner against the general parser (differential)",
           _sip_register_scan, ("protocols.sip",), lines=True),
    Target("sip-reginfo", "presence body (protocols/sip/reginfo.py parse)", _reginfo,
           ("protocols.sip",), max_len=8192, lines=True),
    Target("session-descriptor", "session descriptor XML (parse_descriptor)", _session_descriptor,
           ("session_xml", "protocols.untrusted_xml"), max_len=8192, lines=True),
    Target("session-progress", "progress report XML (parse_progress)", _session_progress,
           ("session_xml", "protocols.untrusted_xml"), max_len=8192, lines=True),
    Target("channel-frames", "data channel FrameDecoder (feed and buffer protocol)", _channel_frames,
           ("protocols.channel",)),
    Target("channel-handshake", "channel handshake machine fed hostile frames, both roles",
           _channel_handshake, ("protocols.channel",), max_len=8192),
    Target("rsync-signature", "rsync signature stream (SignatureReader, Signature.from_wire)",
           _rsync_signature, ("protocols.rsync",)),
    Target("rsync-delta", "rsync delta stream (DeltaReader, apply_delta)", _rsync_delta,
           ("protocols.rsync",), max_len=8192),
    Target("rsync-messages", "folder-sync frame payloads (Hello, FileRequest, DeltaFigures, skipped, record batches)",
           _rsync_messages, ("protocols.rsync",), max_len=1024),
    Target("rsync-manifest", "a peer's folder manifest (ManifestAssembler)", _rsync_manifest,
           ("protocols.rsync",)),
    Target("syncml", "SyncML-like message (protocols/syncml/messages.py decode)", _syncml,
           ("protocols.syncml", "protocols.untrusted_xml"), max_len=8192),
    Target("records", "vCard / iCalendar file (peer/record_formats.py parse)", _records,
           ("peer.record_formats", "peer.record_text", "peer.record_validation"),
           max_len=8192, lines=True),
)}
