"""Answers held until their time, in time order, each named until it is sent."""

from __future__ import annotations

from control_server.held_answers import HeldAnswers
from protocols.sip.effects import Transmit
from protocols.sip.endpoint import Endpoint

PHONE = Endpoint("udp", "192.0.2.1", 5060)


def answer(text: str):
    return lambda now: [Transmit(f"{text} at {now:g}".encode(), PHONE)]


def test_answers_go_out_when_due_in_the_order_of_their_times():
    held = HeldAnswers()
    held.hold(12.0, answer("late"), key="b")
    held.hold(11.0, answer("early"), key="a")
    assert held.next_deadline() == 11.0
    assert held.expire(10.9) == []
    assert [e.data for e in held.expire(12.5)] == [b"early at 12.5", b"late at 12.5"]
    assert held.next_deadline() is None and len(held) == 0


def test_a_held_answer_is_known_by_its_key_until_it_is_sent():
    held = HeldAnswers()
    held.hold(5.0, answer("x"), key=("udp", "branch1"))
    assert held.holding(("udp", "branch1")) and not held.holding(("udp", "branch2"))
    held.expire(5.0)
    assert not held.holding(("udp", "branch1"))


def test_past_the_limit_an_answer_is_refused_rather_than_kept():
    held = HeldAnswers(limit=2)
    assert held.hold(1.0, answer("a")) and held.hold(1.0, answer("b"))
    assert not held.hold(1.0, answer("c"))
    assert len(held.expire(1.0)) == 2
