"""The server's side of SIP digest authentication (RFC 7616, RFC 8760): challenges, stateless
nonces, replay guard, and verification of a client's credentials.

Sans-I/O: the caller passes the time and a lookup of stored HA1 digests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

from .digest import PARAMETER, Algorithm, DigestError, expected_response


class Credentials(NamedTuple):
    """The parameters of an Authorization or Proxy-Authorization header. A tuple rather than
    a frozen dataclass: one is read from every authenticated request, and a tuple is built in
    a fraction of the time."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def parse_credentials(value: str) -> Credentials:
    """Read `Digest k=v, k="v"` into Credentials; commas inside quotes are kept."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest credential: {scheme!r}")
    if rest.count('"') % 2:
        raise DigestError("unterminated quoted value")
    params = _plain_parameters(rest)
    if params is None:
        params = {
            key.lower(): quoted.replace('\\"', '"') if quoted else plain
            for key, quoted, plain in PARAMETER.findall(rest)
        }
    try:
        return Credentials(
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            algorithm=params.get("algorithm", "MD5"),
            qop=params.get("qop"),
            nc=params.get("nc"),
            cnonce=params.get("cnonce"),
            opaque=params.get("opaque"),
        )
    except KeyError as missing:
        raise DigestError(f"credential lacks {missing.args[0]}") from None


def _plain_parameters(rest: str) -> dict[str, str] | None:
    """The parameters of credentials in the plain form clients send (`k=v` or `k="v"`
    between commas, no escapes, no comma inside quotes), read by splitting: the same result as
    PARAMETER's scan at a fraction of its cost. None for anything else, which the scan reads."""
    if "\\" in rest:
        return None
    params = {}
    names = _PARAMETER_NAMES
    for part in rest.split(","):
        raw, equals, value = part.partition("=")
        key = names.get(raw)
        if key is None:
            key = _parameter_name(raw)
            if len(names) < PARAMETER_NAMES_REMEMBERED:
                names[raw] = key
        if not equals or not key:
            if not part.strip():
                continue
            return None
        value = value.strip()
        if value[:1] == '"':
            if len(value) < 2 or value[-1] != '"' or '"' in value[1:-1]:
                return None
            value = value[1:-1]
        elif '"' in value or " " in value or "\t" in value:
            return None
        params[key] = value
    return params


def _parameter_name(raw: str) -> str:
    """A parameter's name as written before its '=', in lower case; "" when it is no plain
    name (ASCII letters, digits and '-', a letter first)."""
    key = raw.strip()
    if not key.isascii() or not key.replace("-", "").isalnum() or not key[0].isalpha():
        return ""
    return key.lower()


# Names as clients write them (`username`, ` realm`), read once: a client sends the same few
# with every request. Bounded, so that made-up names cost a reading each, not memory.
PARAMETER_NAMES_REMEMBERED = 256
_PARAMETER_NAMES: dict[str, str] = {}


class Verdict(Enum):
    OK = "ok"
    STALE = "stale"  # right password, expired nonce: challenge again with stale=true
    FAILED = "failed"


class Outcome(NamedTuple):
    """How one verification went (a tuple, as Credentials is, for the same reason)."""

    verdict: Verdict
    username: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


class NonceIssuer:
    """Stateless nonces: timestamp, issuing node and salt signed with a server secret, so any
    restart or process sharing the secret can check them, and each challenge gets a unique one.

    The node (a number each start of a server or worker draws) says whose replay guard holds
    the nonce's counts: a nonce is good only at the node that issued it, elsewhere, and after a
    restart, it is answered as stale."""

    _layout = struct.Struct(">dI8s")

    def __init__(self, secret: bytes, lifetime: float, node: int = 0) -> None:
        # HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once, here: each
        # nonce then costs two copies of a prepared hash, a third of what hmac.digest costs,
        # which sets up the key's blocks again for every call.
        key = secret if len(secret) <= _BLOCK else hashlib.sha256(secret).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))
        self.lifetime = lifetime
        self.node = node

    def issue(self, now: float) -> str:
        payload = self._layout.pack(now, self.node, os.urandom(8))
        return payload.hex() + self._sign(payload)

    def read(self, nonce: str) -> tuple[float, int] | None:
        """When and by which node the nonce was made, or None when it is not one of ours."""
        size = self._layout.size * 2
        if len(nonce) != size + 32:
            return None
        try:
            payload = bytes.fromhex(nonce[:size])
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), nonce[size:]):
            return None
        issued, node, _ = self._layout.unpack(payload)
        return issued, node

    def issued_at(self, nonce: str) -> float | None:
        """When the nonce was made, or None when it is not one of ours."""
        made = self.read(nonce)
        return None if made is None else made[0]

    def _sign(self, payload: bytes) -> str:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:32]


# SHA-256's block, and HMAC's pads as translation tables (each key byte XOR 0x36, 0x5c).
_BLOCK = 64
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class ReplayGuard:
    """Remembers the highest nonce-count per (nonce, user, cnonce) for as long as nonces live.

    A request carrying the same count on the same branch is a retransmission, not a replay.
    Entries sit in one-second buckets so forgetting them costs nothing per request.

    Every registration leaves an entry for a nonce's lifetime, so an entry is two small ints:
    the key's hash, and the count above the branch's hash (about 130 B, where the strings of
    the nonce, user, cnonce and branch took 550). Two keys that differ but hash alike (once in
    2**60 per pair, with the process's salted string hash) would make one request look
    replayed: it is refused and the client asks again, nothing is let through. The branch only
    tells a retransmission from a client's mistake, not from an attacker, who can copy the
    branch as well as the count; 30 bits of it are enough.
    """

    def __init__(self, lifetime: float) -> None:
        self._lifetime = lifetime
        # The key's hash -> count << 30 | the branch's: ints under 2**60 take 32 B, not 40.
        self._seen: dict[int, int] = {}
        self._buckets: dict[int, list[int]] = {}

    def admit(self, key: tuple[str, str, str], count: int, branch: str, issued: float) -> bool:
        slot = hash(key) & _LOW_60
        seen = count << 30 | (hash(branch) & _LOW_30)
        previous = self._seen.get(slot)
        if previous is not None:
            last_count = previous >> 30
            if count < last_count or (count == last_count and seen != previous):
                return False
        else:
            self._buckets.setdefault(int(issued + self._lifetime) + 1, []).append(slot)
        self._seen[slot] = seen
        return True

    def forget_expired(self, now: float) -> None:
        for second in [s for s in self._buckets if s < now]:
            for slot in self._buckets.pop(second):
                self._seen.pop(slot, None)

    def __len__(self) -> int:
        return len(self._seen)


_LOW_60 = (1 << 60) - 1
_LOW_30 = (1 << 30) - 1

HA1Lookup = Callable[[str, Algorithm], str | None]
AGENTS_REMEMBERED = 1024

# Verification work for an unknown user, so its timing does not tell it apart from a known one.
_DECOY_HA1 = {a: a.hash("decoy") for a in Algorithm}


class DigestAuthenticator:
    """Challenges and verifies digest credentials for one realm."""

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        nonce_lifetime: float = 300.0,
        algorithms: tuple[Algorithm, ...] = (Algorithm.MD5, Algorithm.SHA256),
        multi_challenge_agents: tuple[str, ...] = (),
        node: int = 0,
    ) -> None:
        # MD5 first by default: common clients (sipp 3.6) take the first challenge they see.
        self.realm = realm
        self.algorithms = algorithms
        self.multi_challenge_agents = tuple(a.lower() for a in multi_challenge_agents if a)
        self._algorithms_by_agent: dict[str, tuple[Algorithm, ...]] = {}
        self.nonces = NonceIssuer(secret, nonce_lifetime, node)
        self.replays = ReplayGuard(nonce_lifetime)

    def algorithms_for(self, user_agent: str) -> tuple[Algorithm, ...]:
        """The challenges one request gets (RFC 8760 lets the set vary per request): every
        algorithm, in order, for a user agent known to pick among several; only the first for
        any other, since some (baresip's libre) give up on a challenge they cannot answer."""
        known = self._algorithms_by_agent.get(user_agent)
        if known is not None:
            return known
        agent = user_agent.lower()
        if any(name in agent for name in self.multi_challenge_agents):
            chosen = self.algorithms
        else:
            chosen = self.algorithms[:1]
        # Remembered per User-Agent text, of which a deployment has a handful; bounded, so
        # made-up ones cost memory only until the next clearing.
        if len(self._algorithms_by_agent) >= AGENTS_REMEMBERED:
            self._algorithms_by_agent.clear()
        self._algorithms_by_agent[user_agent] = chosen
        return chosen

    def challenges(self, now: float, *, stale: bool = False,
                   algorithms: tuple[Algorithm, ...] | None = None) -> list[str]:
        """One WWW-Authenticate / Proxy-Authenticate value per algorithm (all offered ones
        unless told), sharing a nonce."""
        nonce = self.nonces.issue(now)
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", '
            f"algorithm={algorithm.value}{tail}"
            for algorithm in (self.algorithms if algorithms is None else algorithms)
        ]

    def verify(
        self,
        credentials: Credentials,
        method: str,
        lookup: HA1Lookup,
        *,
        branch: str,
        now: float,
    ) -> Outcome:
        user = credentials.username
        algorithm = Algorithm.named(credentials.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return Outcome(Verdict.FAILED, user, f"algorithm {credentials.algorithm} not offered")
        if credentials.realm != self.realm:
            return Outcome(Verdict.FAILED, user, f"realm {credentials.realm!r} is not ours")
        if credentials.qop != "auth" or not credentials.nc or not credentials.cnonce:
            return Outcome(Verdict.FAILED, user, "qop=auth with nc and cnonce is required")
        try:
            count = int(credentials.nc, 16)
        except ValueError:
            return Outcome(Verdict.FAILED, user, "nonce-count is not hexadecimal")
        made = self.nonces.read(credentials.nonce)
        if made is None:
            return Outcome(Verdict.FAILED, user, "nonce was not issued by this server")
        issued, node = made

        stored = lookup(user, algorithm)
        ha1_value = stored if stored is not None else _DECOY_HA1[algorithm]
        # HA2 uses the header's uri, not the Request-URI: clients such as sipp put the
        # server's address there.
        expected = expected_response(
            algorithm, ha1_value, method, credentials.uri, credentials.nonce, credentials.nc,
            credentials.cnonce,
        )
        if stored is None or not hmac.compare_digest(expected, credentials.response.lower()):
            return Outcome(Verdict.FAILED, user, "wrong credentials")
        if now - issued > self.nonces.lifetime:
            return Outcome(Verdict.STALE, user, "nonce expired")
        if node != self.nonces.node:
            # Another node (or an earlier run of this one) keeps this nonce's counts: a fresh
            # challenge, not a count checked against a guard that never saw the nonce.
            return Outcome(Verdict.STALE, user, "nonce issued by another node")
        key = (credentials.nonce, user, credentials.cnonce)
        if not self.replays.admit(key, count, branch, issued):
            return Outcome(Verdict.FAILED, user, "nonce-count replayed")
        return Outcome(Verdict.OK, user)
