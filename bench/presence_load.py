"""Many devices kept online against one sipsync-server, for bench/live_bench.py: each simulated
device REGISTERs with digest and SUBSCRIBEs to `reg` as a daemon does, then re-REGISTERs on the
daemon's own schedule; the NOTIFYs each one gets are counted (and answered, as a daemon does).

One UDP socket per device, the requests written by hand and read with the project's parser; a
request is retransmitted on RFC 3261's timer E doubling from 0.5 s, and given up after 32 s.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field

from peer.registration import refresh_delay
from protocols.sip.digest_client import answer_challenges
from protocols.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    new_branch,
    new_tag,
    parse_message,
    response_to,
)

HOST = "127.0.0.1"
REGISTER_EXPIRES = 60      # the daemon's default keepalive
SUBSCRIBE_EXPIRES = 600    # what peer/presence_watch.py asks for
T1, TIMER_F = 0.5, 32.0
SETUP_ATTEMPTS = 3
_CHALLENGES = {401: ("www-authenticate", "Authorization"),
               407: ("proxy-authenticate", "Proxy-Authorization")}


@dataclass
class Counts:
    """What the simulated devices saw; `window` counts only inside the measured window."""

    registers: int = 0
    subscribes: int = 0
    notifies: int = 0
    failures: int = 0
    timeouts: int = 0
    window_registers: int = 0
    window_notifies: int = 0
    in_window: bool = False
    _seen: set = field(default_factory=set)

    def notify(self, call_id: str, cseq: str) -> None:
        if (call_id, cseq) in self._seen:
            return  # a retransmission of one we answered already
        self._seen.add((call_id, cseq))
        self.notifies += 1
        if self.in_window:
            self.window_notifies += 1


class SimulatedDevice(asyncio.DatagramProtocol):
    def __init__(self, user: str, password: str, device: str, server: tuple[str, int],
                 counts: Counts) -> None:
        self.user, self.password, self.device = user, password, device
        self.server, self.counts = server, counts
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self._pending: dict[str, asyncio.Future] = {}
        self._dialogs = {"REGISTER": (f"{new_tag()}@{device}", new_tag()),
                         "SUBSCRIBE": (f"{new_tag()}@{device}", new_tag())}
        self._cseq = 0
        self._sub_to = ""

    # -- the socket -------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            return
        if isinstance(message, SipResponse):
            if message.status_code < 200:
                return
            via = message.headers.get_first("via") or ""
            branch = via.partition("branch=")[2].split(";", 1)[0]
            future = self._pending.get(branch)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.method == "NOTIFY":
            self.counts.notify(message.call_id or "", message.headers.get_first("cseq") or "")
        self.transport.sendto(bytes(response_to(message, 200)), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- requests ---------------------------------------------------------------------------------

    async def register(self, expires: int = REGISTER_EXPIRES) -> bool:
        contact = (f"<sip:{self.user}@{HOST}:{self.port};transport=udp>"
                   f';+sip.instance="<urn:sipsync:device:{self.device}>"')
        ok = await self._send("REGISTER", f"sip:{HOST}", f"<sip:{self.user}@{HOST}>",
                              f"<sip:{self.user}@{HOST}>", contact, [("Expires", str(expires))])
        if ok is not None:
            self.counts.registers += 1
            if self.counts.in_window:
                self.counts.window_registers += 1
        return ok is not None

    async def subscribe(self) -> bool:
        uri = f"sip:{self.user}@{HOST}"
        response = await self._send(
            "SUBSCRIBE", uri, self._sub_to or f"<{uri}>",
            f"<sip:{self.user}@{HOST};device={self.device}>",
            f"<sip:{self.user}@{HOST}:{self.port};transport=udp>",
            [("Event", "reg"), ("Expires", str(SUBSCRIBE_EXPIRES)),
             ("Accept", "application/reginfo+xml")])
        if response is None:
            return False
        self._sub_to = response.headers.get_first("to") or ""
        self.counts.subscribes += 1
        return True

    async def _send(self, method: str, uri: str, to: str, from_address: str, contact: str,
                    headers: list[tuple[str, str]]) -> SipResponse | None:
        """The request, and once more with credentials when challenged; None when it failed."""
        response = await self._transaction(method, uri, to, from_address, contact, headers)
        if response is not None and response.status_code in _CHALLENGES:
            asked_in, answer_in = _CHALLENGES[response.status_code]
            answer = answer_challenges(response.headers.get(asked_in), self.user, self.password,
                                       method, uri)
            response = await self._transaction(method, uri, to, from_address, contact,
                                               headers + [(answer_in, answer)])
        if response is None:
            self.counts.timeouts += 1
            return None
        if response.status_code != 200:
            self.counts.failures += 1
            return None
        return response

    async def _transaction(self, method, uri, to, from_address, contact,
                           headers) -> SipResponse | None:
        call_id, tag = self._dialogs[method]
        self._cseq += 1
        branch = new_branch()
        request = SipRequest(method=method, uri=uri)
        add = request.headers.append
        add("Via", f"SIP/2.0/UDP {HOST}:{self.port};branch={branch};rport")
        add("From", f"{from_address};tag={tag}")
        add("To", to)
        add("Call-ID", call_id)
        add("CSeq", f"{self._cseq} {method}")
        add("Contact", contact)
        add("Max-Forwards", "70")
        add("User-Agent", "sipsync-bench-device")
        for name, value in headers:
            add(name, value)
        data = bytes(request)
        future = asyncio.get_running_loop().create_future()
        self._pending[branch] = future
        interval, deadline = T1, time.monotonic() + TIMER_F
        try:
            while time.monotonic() < deadline:
                self.transport.sendto(data, self.server)
                try:
                    async with asyncio.timeout(interval):
                        return await asyncio.shield(future)
                except TimeoutError:
                    interval = min(interval * 2, 4.0)
            return None
        finally:
            del self._pending[branch]


@dataclass(frozen=True, slots=True)
class LoadResult:
    devices: int
    online: int                # registered and subscribed when the window opened
    setup_seconds: float
    window_seconds: float
    cpu_per_second: list[float]  # server CPU seconds in each second of the window
    counts: Counts


async def _keep_registered(device: SimulatedDevice, stop: asyncio.Event, first_delay: float):
    """Re-REGISTER as the daemon does (80 % of the expiry, at most expiry - 10 s)."""
    delay = first_delay
    while not stop.is_set():
        try:
            async with asyncio.timeout(delay):
                await stop.wait()
            return
        except TimeoutError:
            pass
        await device.register()
        delay = refresh_delay(REGISTER_EXPIRES)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(server: tuple[str, int], server_pid: int, accounts: list[tuple[str, str, str]],
                   window: float, rate: float = 200.0) -> LoadResult:
    """Bring every (user, password, device) online at `rate` a second, then measure `window`
    seconds of keepalive: the server's CPU each second and the NOTIFYs that arrive."""
    loop = asyncio.get_running_loop()
    counts = Counts()
    devices = []
    for user, password, name in accounts:
        device = SimulatedDevice(user, password, name, server, counts)
        await loop.create_datagram_endpoint(lambda d=device: d, local_addr=(HOST, 0))
        devices.append(device)
    started = time.monotonic()
    online_at: dict[SimulatedDevice, float] = {}

    async def bring_online(device: SimulatedDevice, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        for _ in range(SETUP_ATTEMPTS):  # a daemon retries too, with back-off
            if await device.register() and await device.subscribe():
                online_at[device] = time.monotonic()
                return
            await asyncio.sleep(1.0 + random.random())

    await asyncio.gather(*(bring_online(d, started + i / rate) for i, d in enumerate(devices)))
    setup = time.monotonic() - started
    stop = asyncio.Event()
    refresh = refresh_delay(REGISTER_EXPIRES)
    now = time.monotonic()
    keepers = [asyncio.create_task(_keep_registered(d, stop, max(0.0, at + refresh - now)))
               for d, at in online_at.items()]
    # Late NOTIFYs of the set-up (a user's second device coming online) are not the window's.
    await asyncio.sleep(1.0)
    counts.in_window = True
    samples, last = [], cpu_seconds(server_pid)
    end = time.monotonic() + window
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        value = cpu_seconds(server_pid)
        samples.append(value - last)
        last = value
    counts.in_window = False
    stop.set()
    await asyncio.gather(*keepers, return_exceptions=True)
    for device in devices:
        device.close()
    return LoadResult(len(devices), len(online_at), setup, window, samples, counts)


def accounts_for(devices: int, per_user: int) -> list[tuple[str, str, str]]:
    """(user, password, device) for `devices` devices, `per_user` of them to each user,
    in a shuffled order so a user's devices do not come online back to back."""
    rows = [(f"load{i // per_user}", f"pw-{i // per_user}", f"d{i % per_user}")
            for i in range(devices)]
    random.Random(11).shuffle(rows)
    return rows
