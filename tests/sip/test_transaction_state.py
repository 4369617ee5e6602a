"""The transaction table itself: every state of every machine answers every event it can meet,
by a transition or by being ignored on purpose, and never both."""

import pytest

from protocols.sip.effects import StartTimer, Timer
from protocols.sip.transaction_state import (
    EVENTS,
    IGNORED,
    INITIAL_STATE,
    STATES,
    TRANSITIONS,
    Action,
    Event,
    Machine,
    State,
)


@pytest.mark.parametrize("machine", list(Machine), ids=lambda m: m.value)
def test_every_state_and_event_of_a_machine_has_a_transition_or_is_ignored(machine):
    for state in STATES[machine]:
        for event in EVENTS[machine]:
            key = (machine, state, event)
            assert (key in TRANSITIONS) != (key in IGNORED), f"{machine.value}: {state} x {event}"


def test_the_tables_name_only_states_and_events_their_machine_has():
    for machine, state, event in [*TRANSITIONS, *IGNORED]:
        assert state in STATES[machine] and event in EVENTS[machine]
    for (machine, _, _), transition in TRANSITIONS.items():
        assert transition.to in STATES[machine]


@pytest.mark.parametrize("machine", list(Machine), ids=lambda m: m.value)
def test_every_state_of_a_machine_is_reachable_from_its_initial_state(machine):
    reached, frontier = {INITIAL_STATE[machine]}, [INITIAL_STATE[machine]]
    while frontier:
        state = frontier.pop()
        for (m, s, _), transition in TRANSITIONS.items():
            if m is machine and s is state and transition.to not in reached:
                reached.add(transition.to)
                frontier.append(transition.to)
    assert reached == set(STATES[machine])


def test_a_terminated_transaction_ignores_everything():
    for machine in Machine:
        assert not any((machine, State.TERMINATED, e) in TRANSITIONS for e in EVENTS[machine])


def test_only_client_transactions_time_out_and_only_before_a_final_response():
    for (machine, state, _), transition in TRANSITIONS.items():
        if Action.TIME_OUT in transition.actions:
            assert machine in (Machine.INVITE_CLIENT, Machine.NON_INVITE_CLIENT)
            assert state in (State.CALLING, State.TRYING, State.PROCEEDING)


def test_each_rfc_timer_is_started_by_the_transition_the_rfc_names():
    started = {
        step.timer: (machine, transition.to)
        for (machine, _, _), transition in TRANSITIONS.items()
        for step in transition.actions
        if isinstance(step, StartTimer)
    }
    assert started == {
        Timer.D: (Machine.INVITE_CLIENT, State.COMPLETED),
        Timer.K: (Machine.NON_INVITE_CLIENT, State.COMPLETED),
        Timer.G: (Machine.INVITE_SERVER, State.COMPLETED),
        Timer.H: (Machine.INVITE_SERVER, State.COMPLETED),
        Timer.I: (Machine.INVITE_SERVER, State.CONFIRMED),
        Timer.L: (Machine.INVITE_SERVER, State.ACCEPTED),
        Timer.J: (Machine.NON_INVITE_SERVER, State.COMPLETED),
    }


def test_timers_keep_their_rfc_3261_values():
    assert [Timer.A.duration(False), Timer.B.duration(False), Timer.D.duration(False)] == [
        0.5, 32.0, 32.0]
    assert [Timer.H.duration(False), Timer.I.duration(False), Timer.J.duration(False)] == [
        32.0, 5.0, 32.0]
    assert [t.duration(True) for t in (Timer.D, Timer.I, Timer.J, Timer.K)] == [0.0] * 4
    assert Timer.L.duration(True) == 32.0
    assert Timer.A.back_off(16.0) == 32.0  # timer A doubles without bound
    assert Timer.E.back_off(4.0) == Timer.G.back_off(4.0) == 4.0  # E and G stop at T2


def test_a_2xx_sent_again_in_accepted_passes_through_and_nothing_else_does():
    accepted = {e: TRANSITIONS.get((Machine.INVITE_SERVER, State.ACCEPTED, e))
                for e in (Event.SENT_PROVISIONAL, Event.SENT_SUCCESS, Event.SENT_FAILURE)}
    assert accepted[Event.SENT_SUCCESS].actions == (Action.PASS_RESPONSE,)
    assert accepted[Event.SENT_PROVISIONAL] is None and accepted[Event.SENT_FAILURE] is None
