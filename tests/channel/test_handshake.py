"""The handshake machine, both roles driven against each other over encoded frames: no sockets."""

import collections

import pytest

from protocols.channel.authentication import Challenge
from protocols.channel.errors import ErrorCode, decode_error, encode_error
from protocols.channel.framing import Frame, FrameDecoder, FrameType, encode_frame
from protocols.channel.handshake import (
    EXCHANGE,
    Handshake,
    HandshakeFailed,
    PeerVerified,
    Role,
)


def listener_for(callee, caller, token="token-1"):
    return Handshake.listener(callee.fingerprint, caller.fingerprint, token)


def connector_for(caller, callee, token="token-1"):
    return Handshake.connector(
        caller.private_key(), caller.certificate_der, callee.fingerprint, token
    )


def converse(listener, connector, presented_certificate):
    """Start both machines as TLS would, then carry each one's frames to the other as bytes
    until nobody has anything left to say; a machine reads only while it waits for a frame, as
    the driver does. Returns who sent what, in order."""
    said = []
    wire = {Role.LISTENER: FrameDecoder(), Role.CONNECTOR: FrameDecoder()}  # by receiver
    inbox = {Role.LISTENER: collections.deque(), Role.CONNECTOR: collections.deque()}

    def post(sender, frames):
        receiver = Role.CONNECTOR if sender.role is Role.LISTENER else Role.LISTENER
        for frame in frames:
            said.append((sender.role, frame.kind))
            inbox[receiver].extend(wire[receiver].feed(encode_frame(frame.kind, frame.payload)))

    post(listener, listener.connection_made(None))
    post(connector, connector.connection_made(presented_certificate))
    moved = True
    while moved:
        moved = False
        for machine in (listener, connector):
            while inbox[machine.role] and machine.expected is not None:
                post(machine, machine.receive_frame(inbox[machine.role].popleft()))
                moved = True
    return said


def failure_of(machine):
    assert isinstance(machine.outcome, HandshakeFailed), machine.outcome
    return machine.outcome.error


def test_a_listener_and_a_connector_verify_each_other_in_the_order_of_the_exchange(
    callee, caller
):
    listener, connector = listener_for(callee, caller), connector_for(caller, callee)
    said = converse(listener, connector, callee.certificate_der)
    assert said == [(step.sender, step.kind) for step in EXCHANGE]
    assert said == [
        (Role.LISTENER, FrameType.CHALLENGE),
        (Role.CONNECTOR, FrameType.HELLO),
        (Role.LISTENER, FrameType.ACCEPT),
    ]
    assert listener.outcome == PeerVerified(caller.fingerprint)
    assert connector.outcome == PeerVerified(callee.fingerprint)


def test_each_machine_says_which_frame_it_waits_for(callee, caller):
    listener, connector = listener_for(callee, caller), connector_for(caller, callee)
    assert (listener.expected, connector.expected) == (None, None)
    (challenge,) = listener.connection_made(None)
    assert connector.connection_made(callee.certificate_der) == []
    assert (listener.expected, connector.expected) == (FrameType.HELLO, FrameType.CHALLENGE)
    (hello,) = connector.receive_frame(challenge)
    assert connector.expected is FrameType.ACCEPT
    assert listener.receive_frame(hello) == [Frame(FrameType.ACCEPT)]
    assert listener.expected is None and isinstance(listener.outcome, PeerVerified)


def test_a_wrong_token_is_refused_by_the_listener_and_the_connector_hears_why(callee, caller):
    listener = listener_for(callee, caller, token="token-1")
    connector = connector_for(caller, callee, token="stale")
    said = converse(listener, connector, callee.certificate_der)
    refused, told = failure_of(listener), failure_of(connector)
    assert (refused.code, refused.reason, refused.remote) == (
        ErrorCode.AUTHENTICATION,
        "wrong session token",
        False,
    )
    assert told.remote and str(told) == "the peer reports: wrong session token"
    assert said[-1] == (Role.LISTENER, FrameType.ERROR)
    assert (Role.LISTENER, FrameType.ACCEPT) not in said


def test_a_connector_with_another_certificate_is_refused_for_pinning(callee, caller, intruder):
    listener = listener_for(callee, caller)
    connector = connector_for(intruder, callee)
    converse(listener, connector, callee.certificate_der)
    refused, told = failure_of(listener), failure_of(connector)
    assert refused.code is ErrorCode.PINNING and "client's certificate" in refused.reason
    assert intruder.fingerprint in refused.reason
    assert told.remote and (told.code, told.reason) == (refused.code, refused.reason)


def test_a_listener_presenting_another_certificate_is_refused_before_the_connector_says_anything(
    callee, caller, intruder
):
    # The caller pinned the callee, but the intruder's certificate came up in TLS.
    listener = listener_for(intruder, caller)
    connector = connector_for(caller, callee)
    said = converse(listener, connector, intruder.certificate_der)
    refused, told = failure_of(connector), failure_of(listener)
    assert refused.code is ErrorCode.PINNING and "server's certificate" in refused.reason
    assert [kind for role, kind in said if role is Role.CONNECTOR] == [FrameType.ERROR]
    assert told.remote and told.code is ErrorCode.PINNING


def test_a_listener_presenting_no_certificate_is_refused(callee, caller):
    connector = connector_for(caller, callee)
    (report,) = connector.connection_made(None)
    assert failure_of(connector).reason == "the server presented no certificate"
    assert decode_error(report.payload).code is ErrorCode.PINNING


def test_a_stolen_certificate_without_its_key_is_refused_for_a_bad_signature(
    callee, caller, intruder
):
    listener = listener_for(callee, caller)
    # The intruder shows the caller's certificate but can only sign with its own key.
    thief = Handshake.connector(
        intruder.private_key(), caller.certificate_der, callee.fingerprint, "token-1"
    )
    converse(listener, thief, callee.certificate_der)
    refused = failure_of(listener)
    assert refused.code is ErrorCode.AUTHENTICATION
    assert "did not prove it holds its certificate's key (bad signature)" in refused.reason
    assert failure_of(thief).remote


def test_a_hello_replayed_from_an_earlier_handshake_is_refused(callee, caller):
    first_listener, connector = listener_for(callee, caller), connector_for(caller, callee)
    (challenge,) = first_listener.connection_made(None)
    connector.connection_made(callee.certificate_der)
    (recorded_hello,) = connector.receive_frame(challenge)
    replay_target = listener_for(callee, caller)
    replay_target.connection_made(None)  # a fresh nonce the recorded signature does not cover
    (report,) = replay_target.receive_frame(recorded_hello)
    assert "did not prove it holds" in failure_of(replay_target).reason
    assert report.kind is FrameType.ERROR


@pytest.mark.parametrize(
    ("role", "stray", "reason"),
    [
        (Role.LISTENER, Frame(FrameType.DATA, b"let me in"), "expected a HELLO frame, got DATA"),
        (Role.LISTENER, Frame(FrameType.ACCEPT), "expected a HELLO frame, got ACCEPT"),
        (Role.CONNECTOR, Frame(FrameType.ACCEPT), "expected a CHALLENGE frame, got ACCEPT"),
        (Role.CONNECTOR, Frame(FrameType.HELLO, b"\x01"), "expected a CHALLENGE frame, got HELLO"),
    ],
)
def test_a_frame_out_of_order_is_refused_and_the_peer_told_why(
    callee, caller, role, stray, reason
):
    if role is Role.LISTENER:
        machine = listener_for(callee, caller)
        machine.connection_made(None)
    else:
        machine = connector_for(caller, callee)
        machine.connection_made(callee.certificate_der)
    (report,) = machine.receive_frame(stray)
    refused = failure_of(machine)
    assert (refused.code, refused.reason, refused.remote) == (ErrorCode.PROTOCOL, reason, False)
    assert report == Frame(FrameType.ERROR, encode_error(ErrorCode.PROTOCOL, reason))


@pytest.mark.parametrize("role", [Role.LISTENER, Role.CONNECTOR])
def test_an_error_report_from_the_peer_ends_the_handshake_without_an_answer(
    callee, caller, role
):
    if role is Role.LISTENER:
        machine = listener_for(callee, caller)
        machine.connection_made(None)
    else:
        machine = connector_for(caller, callee)
        machine.connection_made(callee.certificate_der)
    report = Frame(FrameType.ERROR, encode_error(ErrorCode.ABORTED, "stopped listening"))
    assert machine.receive_frame(report) == []
    told = failure_of(machine)
    assert (told.code, told.remote, str(told)) == (
        ErrorCode.ABORTED,
        True,
        "the peer reports: stopped listening",
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x01short", "the server's CHALLENGE frame is malformed"),
        (
            Challenge(7, bytes(32)).encode(),
            "the server speaks channel protocol version 7, this device 1",
        ),
    ],
)
def test_an_unreadable_challenge_is_refused_by_the_connector(callee, caller, payload, reason):
    connector = connector_for(caller, callee)
    connector.connection_made(callee.certificate_der)
    (report,) = connector.receive_frame(Frame(FrameType.CHALLENGE, payload))
    assert failure_of(connector).reason == reason
    assert decode_error(report.payload).reason == reason


def test_a_malformed_hello_is_refused_by_the_listener(callee, caller):
    listener = listener_for(callee, caller)
    listener.connection_made(None)
    (report,) = listener.receive_frame(Frame(FrameType.HELLO, b"\x01\x00\x05abc"))
    assert failure_of(listener).reason == "the client's HELLO frame is malformed"
    assert report.kind is FrameType.ERROR


def test_each_handshake_challenges_with_a_fresh_nonce(callee, caller):
    nonces = {
        Challenge.decode(listener_for(callee, caller).connection_made(None)[0].payload).nonce
        for _ in range(3)
    }
    assert len(nonces) == 3


def test_driving_a_machine_out_of_turn_is_a_bug_of_the_driver(callee, caller):
    listener = listener_for(callee, caller)
    with pytest.raises(RuntimeError, match="has not started"):
        listener.receive_frame(Frame(FrameType.HELLO))
    listener.connection_made(None)
    with pytest.raises(RuntimeError, match="already started"):
        listener.connection_made(None)
    listener.receive_frame(Frame(FrameType.DATA))
    with pytest.raises(RuntimeError, match="is over"):
        listener.receive_frame(Frame(FrameType.HELLO))
