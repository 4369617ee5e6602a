"""The transaction state machine under a fake clock: retransmissions, timeouts, absorption."""

from protocols.sip.endpoint import Endpoint
from protocols.sip.message import SipResponse, parse_message, response_to
from protocols.sip.effects import T1, T2, ClientTimeout, Transmit
from protocols.sip.transaction import TransactionLayer
from protocols.sip.transaction_state import State

UDP = Endpoint("udp", "127.0.0.1", 5071)
TCP = Endpoint("tcp", "127.0.0.1", 5071)


def request(method="INVITE", branch="z9hG4bKabc", cseq=1, to_tag=""):
    to = "<sip:bob@sipsync>" + (f";tag={to_tag}" if to_tag else "")
    return parse_message(
        f"{method} sip:bob@sipsync SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5071;branch={branch}\r\n"
        f"From: <sip:alice@sipsync>;tag=a1\r\nTo: {to}\r\n"
        f"Call-ID: c1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )


def run_until(layer, until, step=0.05, start=0.0):
    """Advance a fake clock, collecting every effect."""
    effects, now = [], start
    while now <= until:
        effects += layer.expire(now)
        now += step
    return effects


def test_a_retransmitted_invite_gets_the_last_response_again():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), UDP, 0.0)
    layer.respond(txn, 100, b"100", 0.0)
    again, effects = layer.receive_request(request(), UDP, 0.2)
    assert again is None and effects == [Transmit(b"100", UDP)]


def test_a_final_error_to_invite_is_retransmitted_on_timer_g_until_acked():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), UDP, 0.0)
    layer.respond(txn, 486, b"486", 0.0)
    sent = [e for e in run_until(layer, 1.6) if isinstance(e, Transmit)]
    assert len(sent) == 2  # at T1 and 3*T1 (interval doubling)
    assert layer.absorb_ack(request("ACK"), 1.7)
    assert txn.state is State.CONFIRMED
    assert not [e for e in run_until(layer, 10.0, start=1.8) if isinstance(e, Transmit)]
    assert txn.key not in layer.servers


def test_timer_g_is_capped_at_t2():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), UDP, 0.0)
    layer.respond(txn, 486, b"486", 0.0)
    run_until(layer, 20.0, step=0.25)
    assert txn.interval == T2


def test_an_unacked_final_response_terminates_at_timer_h():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), UDP, 0.0)
    layer.respond(txn, 486, b"486", 0.0)
    run_until(layer, 64 * T1 + 0.1, step=0.5)
    assert txn.state is State.TERMINATED and txn.key not in layer.servers


def test_no_retransmission_over_tcp():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), TCP, 0.0)
    layer.respond(txn, 486, b"486", 0.0)
    assert not [e for e in run_until(layer, 5.0) if isinstance(e, Transmit)]


def test_the_ack_of_a_2xx_is_not_absorbed():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), UDP, 0.0)
    layer.respond(txn, 200, b"200", 0.0)
    assert txn.state is State.ACCEPTED
    assert not layer.absorb_ack(request("ACK", branch="z9hG4bKother"), 0.1)


def test_non_invite_completed_answers_retransmissions_then_ends_at_timer_j():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request("BYE", to_tag="t"), UDP, 0.0)
    layer.respond(txn, 200, b"200", 0.0)
    _, effects = layer.receive_request(request("BYE", to_tag="t"), UDP, 1.0)
    assert effects == [Transmit(b"200", UDP)]
    run_until(layer, 64 * T1 + 0.1, step=1.0)
    assert txn.key not in layer.servers


def test_client_invite_retransmits_on_timer_a_and_times_out_on_timer_b():
    layer = TransactionLayer()
    txn, first = layer.send_request(request(branch="z9hG4bKout"), UDP, 0.0)
    effects = run_until(layer, 64 * T1 + 0.1, step=0.25)
    sends = [e for e in effects if isinstance(e, Transmit)]
    assert len(first) == 1 and len(sends) == 6  # 0.5, 1.5, 3.5, 7.5, 15.5, 31.5
    assert [e for e in effects if isinstance(e, ClientTimeout)] == [ClientTimeout(txn)]


def test_client_non_invite_retransmits_at_most_every_t2_and_times_out_on_timer_f():
    layer = TransactionLayer()
    txn, _ = layer.send_request(request("BYE", branch="z9hG4bKout", to_tag="t"), UDP, 0.0)
    effects = run_until(layer, 64 * T1 + 0.1, step=0.25)
    assert txn.interval == T2
    assert any(isinstance(e, ClientTimeout) for e in effects)


def test_a_provisional_response_stops_invite_retransmissions():
    layer = TransactionLayer()
    invite = request(branch="z9hG4bKout")
    txn, _ = layer.send_request(invite, UDP, 0.0)
    ringing = parse_message(bytes(response_to(invite, 180, to_tag="x")))
    matched, _ = layer.receive_response(ringing, 0.1)
    assert matched is txn and txn.state is State.PROCEEDING
    assert not run_until(layer, 40.0, step=0.5, start=0.2)


def test_a_final_error_to_a_client_invite_is_acked_and_retransmissions_reack():
    layer = TransactionLayer()
    invite = request(branch="z9hG4bKout")
    txn, _ = layer.send_request(invite, UDP, 0.0)
    busy = parse_message(bytes(response_to(invite, 486, to_tag="x")))
    matched, effects = layer.receive_response(busy, 0.1)
    assert matched is txn and len(effects) == 1
    ack = parse_message(effects[0].data)
    assert ack.method == "ACK" and ack.via[0].branch == "z9hG4bKout" and "tag=x" in ack.headers.get_first("to")
    again, effects = layer.receive_response(busy, 0.2)
    assert again is None and effects[0].data == txn.ack


def test_a_response_to_nothing_is_not_matched():
    layer = TransactionLayer()
    stray = parse_message(bytes(response_to(request(branch="z9hG4bKnone"), 200)))
    assert isinstance(stray, SipResponse)
    assert layer.receive_response(stray, 0.0) == (None, [])


def test_cancel_finds_its_invite():
    layer = TransactionLayer()
    txn, _ = layer.receive_request(request(), UDP, 0.0)
    assert layer.invite_for_cancel(request("CANCEL")) is txn
