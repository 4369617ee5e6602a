"""The channel handshake after TLS as one sans-I/O machine for both roles: frames in, frames to
send and an outcome (a verified peer or a typed failure) out; no sockets, no event loop.

The order of the exchange is the table `EXCHANGE`; the listener and the connector walk the same
table, each sending the steps it owns and checking the ones the peer owes it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from protocols.channel.authentication import (
    Challenge,
    Hello,
    check_server_certificate,
    sign_hello,
    verify_hello,
)
from protocols.channel.errors import ChannelError, ErrorCode, decode_error, encode_error
from protocols.channel.framing import Frame, FrameType
from protocols.channel.identity import PrivateKey


class Role(enum.Enum):
    """Which end of the channel a machine plays."""

    LISTENER = "listener"  # the callee, TLS server: challenges the connector, checks its proof
    CONNECTOR = "connector"  # the caller, TLS client: pins the listener, then proves itself


@dataclass(frozen=True, slots=True)
class Step:
    """One frame of the exchange and the role that sends it."""

    sender: Role
    kind: FrameType


# The whole exchange, in order. Before it, the connector pins the listener's TLS certificate
# (`Handshake.connection_made`); an ERROR frame may replace any step, and ends the handshake.
EXCHANGE: tuple[Step, ...] = (
    Step(Role.LISTENER, FrameType.CHALLENGE),  # protocol version, fresh nonce
    Step(Role.CONNECTOR, FrameType.HELLO),  # token, certificate, signature over the transcript
    Step(Role.LISTENER, FrameType.ACCEPT),  # the connector is the pinned device
)


@dataclass(frozen=True, slots=True)
class PeerVerified:
    """The handshake succeeded: the peer holds the pinned certificate's key (and, seen from the
    listener, knows the session token)."""

    fingerprint: str  # the peer certificate's, written as `fingerprint_of` writes it


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """The handshake ended without a verified peer. `error.remote` tells whether the peer
    reported the failure (then nothing goes back) or this end found it (then it told the peer)."""

    error: ChannelError


Outcome = PeerVerified | HandshakeFailed


class Handshake:
    """One end's side of the handshake; make it with `Handshake.listener` or `.connector`.

    Call `connection_made` once TLS is up, then `receive_frame` with each frame from the peer
    until `outcome` is set; every call returns the frames to send now, in order.
    """

    def __init__(
        self,
        role: Role,
        pinned_peer_fingerprint: str,
        token: str,
        *,
        own_fingerprint: str = "",
        key: PrivateKey | None = None,
        certificate_der: bytes = b"",
    ):
        self.role = role
        self.outcome: Outcome | None = None
        self._pinned_peer_fingerprint = pinned_peer_fingerprint
        self._token = token
        self._own_fingerprint = own_fingerprint
        self._key = key
        self._certificate_der = certificate_der
        self._started = False
        self._step = 0  # index in EXCHANGE of the next frame either side sends
        self._challenge: Challenge | None = None
        self._peer_fingerprint = ""

    @classmethod
    def listener(
        cls, own_fingerprint: str, pinned_peer_fingerprint: str, token: str
    ) -> Handshake:
        """The callee's side: it knows its own fingerprint (part of what the connector signs)."""
        return cls(Role.LISTENER, pinned_peer_fingerprint, token, own_fingerprint=own_fingerprint)

    @classmethod
    def connector(
        cls, key: PrivateKey, certificate_der: bytes, pinned_peer_fingerprint: str, token: str
    ) -> Handshake:
        """The caller's side: it signs with its key and shows the certificate that holds it."""
        return cls(
            Role.CONNECTOR,
            pinned_peer_fingerprint,
            token,
            key=key,
            certificate_der=certificate_der,
        )

    @property
    def expected(self) -> FrameType | None:
        """The frame the peer owes now; None before the start and once there is an outcome."""
        if not self._started or self.outcome is not None:
            return None
        return EXCHANGE[self._step].kind

    def connection_made(self, peer_certificate_der: bytes | None) -> list[Frame]:
        """TLS is up; `peer_certificate_der` is the certificate the peer presented in it.

        The connector pins it before it reads or sends a single frame. The listener asks for
        none in TLS (see authentication.py) and takes the connector's certificate from HELLO.
        """
        if self._started:
            raise RuntimeError("the handshake has already started")
        self._started = True
        if self.role is Role.CONNECTOR:
            try:
                self._peer_fingerprint = check_server_certificate(
                    peer_certificate_der, self._pinned_peer_fingerprint
                )
            except ChannelError as error:
                return self._fail(error)
        return self._send_own_steps()

    def receive_frame(self, frame: Frame) -> list[Frame]:
        """A frame from the peer; the frames that answer it."""
        expected = self.expected
        if expected is None:
            state = "has not started" if not self._started else "is over"
            raise RuntimeError(f"a {frame.kind.name} frame while the handshake {state}")
        if frame.kind is FrameType.ERROR:
            return self._fail(decode_error(frame.payload))
        if frame.kind is not expected:
            return self._fail(
                ChannelError(
                    f"expected a {expected.name} frame, got {frame.kind.name}", ErrorCode.PROTOCOL
                )
            )
        try:
            _READERS[expected](self, frame)
        except ChannelError as error:
            return self._fail(error)
        self._step += 1
        return self._send_own_steps()

    def _send_own_steps(self) -> list[Frame]:
        """Every frame this end owes from here up to the next one the peer owes."""
        frames: list[Frame] = []
        while self._step < len(EXCHANGE) and EXCHANGE[self._step].sender is self.role:
            frames.append(_WRITERS[EXCHANGE[self._step].kind](self))
            self._step += 1
        if self._step == len(EXCHANGE):
            self.outcome = PeerVerified(self._peer_fingerprint)
        return frames

    def _fail(self, error: ChannelError) -> list[Frame]:
        self.outcome = HandshakeFailed(error)
        if error.remote:
            return []  # the peer found it and has closed; nothing to tell it
        return [Frame(FrameType.ERROR, encode_error(error.code, error.reason))]

    # What each step means, for the end that sends it and for the end that receives it.

    def _write_challenge(self) -> Frame:
        self._challenge = Challenge.new()
        return Frame(FrameType.CHALLENGE, self._challenge.encode())

    def _read_challenge(self, frame: Frame) -> None:
        self._challenge = Challenge.decode(frame.payload)

    def _write_hello(self) -> Frame:
        assert self._key is not None and self._challenge is not None
        hello = sign_hello(
            self._key,
            self._certificate_der,
            self._challenge,
            self._pinned_peer_fingerprint,
            self._token,
        )
        return Frame(FrameType.HELLO, hello.encode())

    def _read_hello(self, frame: Frame) -> None:
        assert self._challenge is not None
        self._peer_fingerprint = verify_hello(
            Hello.decode(frame.payload),
            self._challenge,
            self._own_fingerprint,
            self._pinned_peer_fingerprint,
            self._token,
        )

    def _write_accept(self) -> Frame:
        return Frame(FrameType.ACCEPT)

    def _read_accept(self, frame: Frame) -> None:
        pass  # ACCEPT carries nothing: that it came is the news


_WRITERS: dict[FrameType, Callable[[Handshake], Frame]] = {
    FrameType.CHALLENGE: Handshake._write_challenge,
    FrameType.HELLO: Handshake._write_hello,
    FrameType.ACCEPT: Handshake._write_accept,
}
_READERS: dict[FrameType, Callable[[Handshake, Frame], None]] = {
    FrameType.CHALLENGE: Handshake._read_challenge,
    FrameType.HELLO: Handshake._read_hello,
    FrameType.ACCEPT: Handshake._read_accept,
}
