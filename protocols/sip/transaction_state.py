"""The four RFC 3261 transaction machines (section 17, with RFC 6026's Accepted) as one table.

Everything that moves a transaction's state lives here as data: for each machine, state and
event, either a `Transition` (the next state and the actions to take, in order) or an explicit
entry in `IGNORED`. `TransactionLayer` only looks transitions up and carries out their actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .effects import StartTimer, Timer


class Machine(Enum):
    INVITE_CLIENT = "INVITE client"
    NON_INVITE_CLIENT = "non-INVITE client"
    INVITE_SERVER = "INVITE server"
    NON_INVITE_SERVER = "non-INVITE server"


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Event(Enum):
    # client transactions
    RECEIVED_PROVISIONAL = "1xx received"
    RECEIVED_SUCCESS = "2xx received"
    RECEIVED_FAILURE = "3xx-6xx received"
    # server transactions
    RECEIVED_REQUEST_AGAIN = "request retransmission received"
    RECEIVED_ACK = "ACK received"
    SENT_PROVISIONAL = "1xx sent by the core"
    SENT_SUCCESS = "2xx sent by the core"
    SENT_FAILURE = "3xx-6xx sent by the core"
    # both
    RETRANSMIT_DUE = "retransmission timer fired"
    DEADLINE = "deadline timer fired"


class Action(Enum):
    PASS_UP = "hand the message to the core"
    ABSORB = "the message ends in this transaction"
    SEND_RESPONSE = "transmit the core's response and keep it for retransmissions"
    PASS_RESPONSE = "transmit the core's response as it is"
    RESEND_RESPONSE = "transmit the last response again, if there is one"
    RESEND_REQUEST = "transmit the request again"
    BACK_OFF = "rearm the retransmission timer with the next, longer interval"
    SEND_ACK = "build the ACK for the final error and transmit it"
    RESEND_ACK = "transmit that ACK again"
    STOP_RETRANSMIT = "cancel the retransmission timer"
    STOP_DEADLINE = "cancel the deadline timer"
    SLOW_RETRANSMIT = "retransmit every T2 from now on"
    TIME_OUT = "tell the core no final response came"


Step = Action | StartTimer


@dataclass(frozen=True, slots=True)
class Transition:
    to: State
    actions: tuple[Step, ...] = ()


INITIAL_STATE = {
    Machine.INVITE_CLIENT: State.CALLING,
    Machine.NON_INVITE_CLIENT: State.TRYING,
    Machine.INVITE_SERVER: State.PROCEEDING,
    Machine.NON_INVITE_SERVER: State.TRYING,
}

# What a machine starts with when it is created (the client sends its request at once).
INITIAL_TIMERS = {
    Machine.INVITE_CLIENT: (StartTimer(Timer.A), StartTimer(Timer.B)),
    Machine.NON_INVITE_CLIENT: (StartTimer(Timer.E), StartTimer(Timer.F)),
    Machine.INVITE_SERVER: (),
    Machine.NON_INVITE_SERVER: (),
}

STATES = {
    Machine.INVITE_CLIENT: (State.CALLING, State.PROCEEDING, State.COMPLETED, State.TERMINATED),
    Machine.NON_INVITE_CLIENT: (State.TRYING, State.PROCEEDING, State.COMPLETED,
                                State.TERMINATED),
    Machine.INVITE_SERVER: (State.PROCEEDING, State.ACCEPTED, State.COMPLETED, State.CONFIRMED,
                            State.TERMINATED),
    Machine.NON_INVITE_SERVER: (State.TRYING, State.PROCEEDING, State.COMPLETED,
                                State.TERMINATED),
}

_CLIENT_EVENTS = (Event.RECEIVED_PROVISIONAL, Event.RECEIVED_SUCCESS, Event.RECEIVED_FAILURE,
                  Event.RETRANSMIT_DUE, Event.DEADLINE)
_SERVER_EVENTS = (Event.RECEIVED_REQUEST_AGAIN, Event.RECEIVED_ACK, Event.SENT_PROVISIONAL,
                  Event.SENT_SUCCESS, Event.SENT_FAILURE, Event.RETRANSMIT_DUE, Event.DEADLINE)
EVENTS = {
    Machine.INVITE_CLIENT: _CLIENT_EVENTS,
    Machine.NON_INVITE_CLIENT: _CLIENT_EVENTS,
    Machine.INVITE_SERVER: _SERVER_EVENTS,
    Machine.NON_INVITE_SERVER: _SERVER_EVENTS,
}

_ICT, _NICT = Machine.INVITE_CLIENT, Machine.NON_INVITE_CLIENT
_IST, _NIST = Machine.INVITE_SERVER, Machine.NON_INVITE_SERVER
_A = Action
_ended = Transition(State.TERMINATED)

TRANSITIONS: dict[tuple[Machine, State, Event], Transition] = {
    # -- INVITE client (RFC 3261 17.1.1) --------------------------------------------------------
    # Once the callee is alive the proxy's timer C takes over from timer B.
    (_ICT, State.CALLING, Event.RECEIVED_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.STOP_RETRANSMIT, _A.STOP_DEADLINE, _A.PASS_UP)),
    (_ICT, State.PROCEEDING, Event.RECEIVED_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.PASS_UP,)),
    # The ACK of a 2xx is end to end: the transaction ends and the core acknowledges.
    (_ICT, State.CALLING, Event.RECEIVED_SUCCESS): Transition(State.TERMINATED, (_A.PASS_UP,)),
    (_ICT, State.PROCEEDING, Event.RECEIVED_SUCCESS): Transition(State.TERMINATED, (_A.PASS_UP,)),
    (_ICT, State.CALLING, Event.RECEIVED_FAILURE): Transition(
        State.COMPLETED, (_A.STOP_RETRANSMIT, _A.SEND_ACK, StartTimer(Timer.D), _A.PASS_UP)),
    (_ICT, State.PROCEEDING, Event.RECEIVED_FAILURE): Transition(
        State.COMPLETED, (_A.STOP_RETRANSMIT, _A.SEND_ACK, StartTimer(Timer.D), _A.PASS_UP)),
    # A final response again means our ACK was lost.
    (_ICT, State.COMPLETED, Event.RECEIVED_PROVISIONAL): Transition(
        State.COMPLETED, (_A.RESEND_ACK, _A.ABSORB)),
    (_ICT, State.COMPLETED, Event.RECEIVED_SUCCESS): Transition(
        State.COMPLETED, (_A.RESEND_ACK, _A.ABSORB)),
    (_ICT, State.COMPLETED, Event.RECEIVED_FAILURE): Transition(
        State.COMPLETED, (_A.RESEND_ACK, _A.ABSORB)),
    (_ICT, State.CALLING, Event.RETRANSMIT_DUE): Transition(
        State.CALLING, (_A.RESEND_REQUEST, _A.BACK_OFF)),
    (_ICT, State.CALLING, Event.DEADLINE): Transition(State.TERMINATED, (_A.TIME_OUT,)),
    (_ICT, State.PROCEEDING, Event.DEADLINE): Transition(State.TERMINATED, (_A.TIME_OUT,)),
    (_ICT, State.COMPLETED, Event.DEADLINE): _ended,  # timer D
    # -- non-INVITE client (RFC 3261 17.1.2) ----------------------------------------------------
    (_NICT, State.TRYING, Event.RECEIVED_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.SLOW_RETRANSMIT, _A.PASS_UP)),
    (_NICT, State.PROCEEDING, Event.RECEIVED_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.PASS_UP,)),
    **{
        (_NICT, state, event): Transition(
            State.COMPLETED, (_A.STOP_RETRANSMIT, StartTimer(Timer.K), _A.PASS_UP))
        for state in (State.TRYING, State.PROCEEDING)
        for event in (Event.RECEIVED_SUCCESS, Event.RECEIVED_FAILURE)
    },
    (_NICT, State.COMPLETED, Event.RECEIVED_PROVISIONAL): Transition(State.COMPLETED, (_A.ABSORB,)),
    (_NICT, State.COMPLETED, Event.RECEIVED_SUCCESS): Transition(State.COMPLETED, (_A.ABSORB,)),
    (_NICT, State.COMPLETED, Event.RECEIVED_FAILURE): Transition(State.COMPLETED, (_A.ABSORB,)),
    (_NICT, State.TRYING, Event.RETRANSMIT_DUE): Transition(
        State.TRYING, (_A.RESEND_REQUEST, _A.BACK_OFF)),
    (_NICT, State.PROCEEDING, Event.RETRANSMIT_DUE): Transition(
        State.PROCEEDING, (_A.RESEND_REQUEST, _A.BACK_OFF)),
    (_NICT, State.TRYING, Event.DEADLINE): Transition(State.TERMINATED, (_A.TIME_OUT,)),
    (_NICT, State.PROCEEDING, Event.DEADLINE): Transition(State.TERMINATED, (_A.TIME_OUT,)),
    (_NICT, State.COMPLETED, Event.DEADLINE): _ended,  # timer K
    # -- INVITE server (RFC 3261 17.2.1, RFC 6026) ----------------------------------------------
    (_IST, State.PROCEEDING, Event.RECEIVED_REQUEST_AGAIN): Transition(
        State.PROCEEDING, (_A.RESEND_RESPONSE, _A.ABSORB)),
    (_IST, State.COMPLETED, Event.RECEIVED_REQUEST_AGAIN): Transition(
        State.COMPLETED, (_A.RESEND_RESPONSE, _A.ABSORB)),
    (_IST, State.ACCEPTED, Event.RECEIVED_REQUEST_AGAIN): Transition(State.ACCEPTED, (_A.ABSORB,)),
    (_IST, State.CONFIRMED, Event.RECEIVED_REQUEST_AGAIN): Transition(
        State.CONFIRMED, (_A.ABSORB,)),
    # The ACK of a 2xx (or one before any final response) is the core's to route.
    (_IST, State.PROCEEDING, Event.RECEIVED_ACK): Transition(State.PROCEEDING, (_A.PASS_UP,)),
    (_IST, State.ACCEPTED, Event.RECEIVED_ACK): Transition(State.ACCEPTED, (_A.PASS_UP,)),
    (_IST, State.COMPLETED, Event.RECEIVED_ACK): Transition(
        State.CONFIRMED, (_A.STOP_RETRANSMIT, StartTimer(Timer.I), _A.ABSORB)),
    (_IST, State.CONFIRMED, Event.RECEIVED_ACK): Transition(State.CONFIRMED, (_A.ABSORB,)),
    (_IST, State.PROCEEDING, Event.SENT_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.SEND_RESPONSE,)),
    (_IST, State.PROCEEDING, Event.SENT_SUCCESS): Transition(
        State.ACCEPTED, (_A.SEND_RESPONSE, StartTimer(Timer.L))),
    (_IST, State.PROCEEDING, Event.SENT_FAILURE): Transition(
        State.COMPLETED, (_A.SEND_RESPONSE, StartTimer(Timer.G), StartTimer(Timer.H))),
    # RFC 6026: the callee's 2xx retransmissions pass through.
    (_IST, State.ACCEPTED, Event.SENT_SUCCESS): Transition(State.ACCEPTED, (_A.PASS_RESPONSE,)),
    (_IST, State.COMPLETED, Event.RETRANSMIT_DUE): Transition(
        State.COMPLETED, (_A.RESEND_RESPONSE, _A.BACK_OFF)),
    (_IST, State.ACCEPTED, Event.DEADLINE): _ended,  # timer L
    (_IST, State.COMPLETED, Event.DEADLINE): _ended,  # timer H
    (_IST, State.CONFIRMED, Event.DEADLINE): _ended,  # timer I
    # -- non-INVITE server (RFC 3261 17.2.2) ----------------------------------------------------
    (_NIST, State.TRYING, Event.RECEIVED_REQUEST_AGAIN): Transition(State.TRYING, (_A.ABSORB,)),
    (_NIST, State.PROCEEDING, Event.RECEIVED_REQUEST_AGAIN): Transition(
        State.PROCEEDING, (_A.RESEND_RESPONSE, _A.ABSORB)),
    (_NIST, State.COMPLETED, Event.RECEIVED_REQUEST_AGAIN): Transition(
        State.COMPLETED, (_A.RESEND_RESPONSE, _A.ABSORB)),
    (_NIST, State.TRYING, Event.SENT_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.SEND_RESPONSE,)),
    (_NIST, State.PROCEEDING, Event.SENT_PROVISIONAL): Transition(
        State.PROCEEDING, (_A.SEND_RESPONSE,)),
    **{
        (_NIST, state, event): Transition(
            State.COMPLETED, (_A.SEND_RESPONSE, StartTimer(Timer.J)))
        for state in (State.TRYING, State.PROCEEDING)
        for event in (Event.SENT_SUCCESS, Event.SENT_FAILURE)
    },
    (_NIST, State.COMPLETED, Event.DEADLINE): _ended,  # timer J
}

# Pairs that change nothing and do nothing, each on purpose. An event missing from both tables
# is a bug the unit test finds.
IGNORED: frozenset[tuple[Machine, State, Event]] = frozenset(
    # A terminated transaction has left the layer; a stale timer or message finds nothing.
    {(m, State.TERMINATED, e) for m in Machine for e in EVENTS[m]}
    | {
        # Timer A stops with the first provisional response; nothing retransmits after a
        # final response.
        (_ICT, State.PROCEEDING, Event.RETRANSMIT_DUE),
        (_ICT, State.COMPLETED, Event.RETRANSMIT_DUE),
        (_NICT, State.COMPLETED, Event.RETRANSMIT_DUE),
        # An ACK always matches the INVITE's transaction, never a non-INVITE one.
        *((_NIST, s, Event.RECEIVED_ACK) for s in (State.TRYING, State.PROCEEDING,
                                                   State.COMPLETED)),
        # Once a final response is out, the core has nothing more to say on this transaction
        # (but a 2xx again in Accepted, above).
        (_IST, State.ACCEPTED, Event.SENT_PROVISIONAL),
        (_IST, State.ACCEPTED, Event.SENT_FAILURE),
        *((_IST, State.COMPLETED, e) for e in (Event.SENT_PROVISIONAL, Event.SENT_SUCCESS,
                                                Event.SENT_FAILURE)),
        *((_IST, State.CONFIRMED, e) for e in (Event.SENT_PROVISIONAL, Event.SENT_SUCCESS,
                                                Event.SENT_FAILURE)),
        *((_NIST, State.COMPLETED, e) for e in (Event.SENT_PROVISIONAL, Event.SENT_SUCCESS,
                                                 Event.SENT_FAILURE)),
        # Only timer G retransmits on a server, and only in Completed.
        (_IST, State.PROCEEDING, Event.RETRANSMIT_DUE),
        (_IST, State.ACCEPTED, Event.RETRANSMIT_DUE),
        (_IST, State.CONFIRMED, Event.RETRANSMIT_DUE),
        (_NIST, State.TRYING, Event.RETRANSMIT_DUE),
        (_NIST, State.PROCEEDING, Event.RETRANSMIT_DUE),
        (_NIST, State.COMPLETED, Event.RETRANSMIT_DUE),
        # No deadline runs before the core's final response.
        (_IST, State.PROCEEDING, Event.DEADLINE),
        (_NIST, State.TRYING, Event.DEADLINE),
        (_NIST, State.PROCEEDING, Event.DEADLINE),
    }
)


def response_event(status: int, *, sent: bool) -> Event:
    """The event a response of this status is, received by a client or sent by a server."""
    if status < 200:
        return Event.SENT_PROVISIONAL if sent else Event.RECEIVED_PROVISIONAL
    if status < 300:
        return Event.SENT_SUCCESS if sent else Event.RECEIVED_SUCCESS
    return Event.SENT_FAILURE if sent else Event.RECEIVED_FAILURE
