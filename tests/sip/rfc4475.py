"""The RFC 4475 messages in `torture/` and what the server answers each, as the RFC expects.

`ANSWERS` holds the status of the first answer to the message sent alone over UDP, or None
where no answer is right (a response is never answered). For the valid requests any answer
but 400 is right; the one given is what this server's role makes it (an INVITE gets 100 Trying
before its 407, a REGISTER its 401 challenge).
"""

from __future__ import annotations

from pathlib import Path

TORTURE = Path(__file__).parent / "torture"

# Valid messages (RFC 4475 3.1.1, 3.2, 3.3, 3.4): parsed and handled.
VALID = {
    "wsinv": 100, "intmeth": 501, "esc01": 100, "escnull": 401, "esc02": 501, "lwsdisp": 405,
    "longreq": 100, "dblreq": 401, "semiuri": 200, "transports": 405, "mpart01": 405,
    "unreason": None, "noreason": None, "bcast": None,
    # 3.1.2.12: the RFC lets an element that does not use Date process the request.
    "baddate": 100,
    "badbranch": 405, "invut": 100, "regaut01": 401, "zeromf": 405, "cparam01": 401,
    "cparam02": 401, "regescrt": 401, "sdp01": 100, "inv2543": 100,
    # Parsed, then refused for what they ask: an unknown scheme (416), extensions (420),
    # a To that is no SIP address of record (400, RFC 4475 3.3.4).
    "unkscm": 416, "novelsc": 416, "bext01": 420, "unksm2": 400,
}
# Invalid messages: the parser refuses them, with an answer when they are requests.
INVALID = {
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400,
    "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400,
    "regbadct": 400, "badaspec": 400, "baddn": 400, "badvers": 505, "mismatch01": 400,
    "mismatch02": 400, "insuf": 400, "multi01": 400, "mcl01": 400,
    "scalarlg": None, "bigcode": None,
}
ANSWERS = {**VALID, **INVALID}


def message(name: str) -> bytes:
    return (TORTURE / f"{name}.dat").read_bytes()
