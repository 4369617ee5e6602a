"""A device on the network, as scripts use it: registered and online, answering sessions for the
datasets it serves, and placing sessions of its own.

    async with Peer.from_data_dir("phone-data") as phone:
        outcome = await phone.invite("alice/laptop", dataset="photos")
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from protocols.channel.identity import DeviceIdentity
from protocols.sip.agent import SipAgent
from protocols.sip.message import SipRequest, response_to
from protocols.sip.transaction import ServerTransaction
from session_xml import DataType, Direction, SyncMode, SyncProtocol

from . import config as peer_config
from .callee import Callee
from .caller import Caller
from .config import ConfigError, PeerConfig
from .live import LiveSync
from .presence_watch import PresenceWatch
from .registration import Registration
from .sync_outcome import EXIT_USAGE, ProgressCallback, SessionOutcome
from .versions import VersionStore, clean_forever

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY"
# How long a stopping device waits for the BYEs of sessions that just ended, so that the
# server's history hears how they went (a BYE still unanswered then is told again later).
HANG_UP_GRACE = 5.0


class Peer:
    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.identity = DeviceIdentity.load_or_create(config.data_dir / "identity", config.device)
        self.agent = SipAgent(self._request)
        self.registration = Registration(self.agent, config)
        self.presence = PresenceWatch(self.agent, config, self.registration)
        self.registration.on_restored(self.presence.registration_restored)
        self.live = LiveSync(config, self.invite, self.presence.online)
        self.presence.listen(self.live.presence_changed)
        self.callee = Callee(self.agent, config, self.identity)
        self.callee.starting = self.live.starting
        self.callee.on_session = self.live.incoming
        self.outgoing: dict[str, Caller] = {}
        self.history: list[SessionOutcome] = []
        self._registering: asyncio.Task | None = None
        self._watching: asyncio.Task | None = None
        self._cleaning: asyncio.Task | None = None
        self._ending: set[asyncio.Future] = set()  # hang-ups of sessions whose outcome is known

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> Peer:
        return cls(peer_config.load(Path(data_dir)))

    async def start(self) -> None:
        await self.agent.start(self.config.sip_host, 0)
        self._registering = asyncio.create_task(self.registration.run())
        self._watching = asyncio.create_task(self.presence.run())
        self.live.start()
        self._cleaning = asyncio.create_task(clean_forever(self.version_stores))

    async def stop(self) -> None:
        await self.live.close()
        if self._ending:
            await asyncio.wait(self._ending, timeout=HANG_UP_GRACE)
        if self._cleaning is not None:
            self._cleaning.cancel()
            await asyncio.gather(self._cleaning, return_exceptions=True)
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
            await self.presence.unsubscribe()
        if self._registering is not None:
            self._registering.cancel()
            await asyncio.gather(self._registering, return_exceptions=True)
            await self.registration.unregister()
        await self.callee.close()
        await self.agent.close()

    def version_stores(self) -> list[VersionStore]:
        """The version folders of the folder datasets that keep versions."""
        return [VersionStore(d.path, d.versions) for d in self.config.datasets.values()
                if d.data_type == DataType.FILES and d.versions is not None]

    async def __aenter__(self) -> Peer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_online(self, timeout: float = 10.0) -> None:
        """Until the first registration succeeded (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            await self.registration.online_event.wait()

    async def invite(self, target: str, dataset: str, *, protocol: str | None = None,
                     direction: str = "push", mode: str | None = None,
                     progress: ProgressCallback | None = None,
                     subject: str | None = None) -> SessionOutcome:
        """Synchronize `dataset` with the device `target` (USER/DEVICE) and return the outcome."""
        try:
            chosen = self.config.datasets.get(dataset)
            if chosen is None:
                raise ConfigError(f"no dataset {dataset!r} on this device "
                                  f"(have: {', '.join(self.config.datasets) or 'none'})")
            caller = Caller(self.agent, self.config, self.identity, chosen, target,
                            protocol=SyncProtocol(protocol) if protocol else None,
                            direction=Direction(direction),
                            mode=SyncMode(mode) if mode else None, progress=progress,
                            subject=subject)
        except (ConfigError, ValueError) as exc:
            return SessionOutcome(False, EXIT_USAGE, str(exc))
        self.outgoing[caller.call_id] = caller
        try:
            outcome = await caller.run()
        finally:
            self.outgoing.pop(caller.call_id, None)
        if caller.ending is not None:
            self._ending.add(caller.ending)
            caller.ending.add_done_callback(self._ending.discard)
        self.history.append(outcome)
        log.info("session %s with %s: %s", caller.call_id, target, outcome.line())
        return outcome

    def devices(self) -> list[dict]:
        """The devices this one may sync with, as the server last told, and what they share."""
        rows = []
        for key, state in sorted(self.presence.devices.items()):
            rows.append({
                "device": key, "online": state.online, "online_since": state.online_since,
                "last_seen": state.last_seen, "user_agent": state.user_agent,
                "reason": state.reason,
                "datasets": sorted(d.name for d in self.config.datasets.values()
                                   if any(p.device == key for p in d.partners)),
            })
        return rows

    async def wait_for_device(self, device: str, timeout: float | None = None) -> bool:
        """Until the server says `device` is online (False when the timeout passes first)."""
        try:
            async with asyncio.timeout(timeout):
                while not self.presence.online(device):
                    await self.presence.changed()
        except TimeoutError:
            return False
        return True

    def reload(self) -> None:
        """Take the datasets and partners from peer.toml again (the CLI changed them)."""
        config = peer_config.load(self.config.data_dir)
        self.config = self.callee.config = config
        self.live.reconfigure(config)

    def status(self) -> dict:
        state = self.registration.state
        return {
            "user": self.config.user,
            "device": self.config.device,
            "server": self.config.server,
            "registered": state.online,
            "expires_in": round(max(0.0, state.expires_at - time.time()), 1) if state.online else 0,
            "last_error": state.last_error,
            "fingerprint": self.identity.fingerprint,
            "sip_address": f"{self.agent.host}:{self.agent.port}",
            "datasets": [
                {"name": d.name, "type": d.data_type.value, "path": str(d.path),
                 "protocols": [p.value for p in d.protocols]}
                for d in self.config.datasets.values()
            ],
            "sessions": {
                "incoming": [{"call_id": s.call_id, "dataset": s.dataset.name,
                              "from": s.offer.source_device} for s in self.callee.sessions.values()],
                "outgoing": [{"call_id": c.call_id, "dataset": c.dataset.name,
                              "to": f"{c.target_user}/{c.target_device}"}
                             for c in self.outgoing.values()],
                "done": [o.as_dict() for o in self.history[-10:]],
            },
        }

    async def _request(self, request: SipRequest, txn: ServerTransaction | None) -> None:
        """Requests reaching this device through the server."""
        if txn is None:
            return  # the ACK of our 200: nothing waits for it
        method = request.method
        in_dialog = ";tag=" in (request.headers.get_first("to") or "")
        if method == "INVITE" and not in_dialog:
            await self.callee.invite(request, txn)
        elif method == "NOTIFY":
            self.presence.notify(request, txn)
        elif method == "BYE":
            self.callee.bye(request, txn)
        elif method == "CANCEL":
            # Sessions are answered at once, so there is never a pending INVITE to stop.
            pending = self.agent.layer.invite_for_cancel(request)
            self.agent.respond(txn, response_to(request, 200 if pending else 481))
        elif method in ("INFO", "OPTIONS"):
            self.agent.respond(txn, response_to(request, 200, headers=[("Allow", ALLOW)]))
        elif method == "INVITE":
            self.agent.respond(txn, response_to(request, 488, "Re-INVITE is not supported"))
        else:
            self.agent.respond(txn, response_to(request, 405, headers=[("Allow", ALLOW)]))
