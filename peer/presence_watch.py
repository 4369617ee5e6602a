"""Which devices this one may sync with are online: a subscription to the `reg` event of its own
address of record (RFC 6665, RFC 3680), made once the device is registered, refreshed before it
expires, made again when the server forgets it. Each NOTIFY updates a table; listeners hear of
each device whose online state changed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from protocols.sip import reginfo
from protocols.sip.agent import RequestTimeout, SipAgent
from protocols.sip.digest import DigestError
from protocols.sip.message import SipRequest, new_tag, response_to
from protocols.sip.reginfo import DeviceState, RegInfoError
from protocols.sip.transaction import ServerTransaction
from protocols.sip.uac import OutOfDialogClient

from .config import PeerConfig
from .registration import Registration, backoff_delay

log = logging.getLogger(__name__)

EXPIRES = 600
REQUEST_TIMEOUT = 5.0

# A listener hears (USER/DEVICE, its state now) for each device that came online or went away.
Listener = Callable[[str, DeviceState], None]


class PresenceWatch:
    def __init__(self, agent: SipAgent, config: PeerConfig, registration: Registration) -> None:
        self.agent = agent
        self.config = config
        self.registration = registration
        self.devices: dict[str, DeviceState] = {}  # USER/DEVICE -> last known state
        self._subscribed = False
        self.last_error = ""
        self._listeners: list[Listener] = []
        self._client: OutOfDialogClient | None = None
        self._to = ""              # the server's To, with its tag, once the dialog exists
        self._version = -1
        self._lost = asyncio.Event()  # the server ended the subscription, or forgot it
        self._changed = asyncio.Event()

    def registration_restored(self) -> None:
        """The device registered again after being offline: the server dropped its
        subscriptions with its binding, so make a new one."""
        self._forget_dialog()
        self._lost.set()

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def online(self, device: str) -> bool:
        state = self.devices.get(device)
        return state is not None and state.online

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    @subscribed.setter
    def subscribed(self, value: bool) -> None:
        # A waiter for the subscription is woken too: its first NOTIFY may come before the
        # answer to the SUBSCRIBE (RFC 6665 allows it), and then no later one might come.
        if value != self._subscribed:
            self._subscribed = value
            self._changed.set()

    async def changed(self) -> None:
        """Until the next NOTIFY changes the table, or the subscription starts or ends."""
        self._changed.clear()
        await self._changed.wait()

    # -- the subscription -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the subscription alive until cancelled."""
        attempts = 0
        while True:
            await self.registration.online_event.wait()
            try:
                granted = await self._subscribe(EXPIRES)
            except (RequestTimeout, DigestError, OSError, SubscriptionError) as exc:
                attempts += 1
                self.subscribed = False
                self.last_error = str(exc)
                if attempts == 1:
                    log.warning("presence subscription failed: %s; retrying", exc)
                await asyncio.sleep(backoff_delay(attempts))
                continue
            attempts = 0
            self.subscribed = True
            self._lost.clear()
            try:
                async with asyncio.timeout(max(1.0, granted * 0.8)):
                    await self._lost.wait()
                log.info("presence subscription lost; subscribing again")
                self._forget_dialog()
            except TimeoutError:
                pass  # time to refresh, in the same dialog

    async def unsubscribe(self) -> None:
        if self._client is None or not self.subscribed:
            return
        try:
            await self._subscribe(0)
        except (RequestTimeout, DigestError, OSError, SubscriptionError) as exc:
            log.info("could not end the presence subscription cleanly: %s", exc)
        self.subscribed = False

    async def _subscribe(self, expires: int) -> int:
        config = self.config
        if self._client is None:
            self._client = OutOfDialogClient(
                self.agent, config.account(), config.transport,
                call_id=f"{new_tag()}@{config.device}",
                from_address=f"<sip:{config.user}@{config.realm_domain};device={config.device}>")
        uri = f"sip:{config.user}@{config.realm_domain}"
        _, response = await self._client.send(
            "SUBSCRIBE", uri, self._to or f"<{uri}>", config.server_endpoint,
            timeout=REQUEST_TIMEOUT, headers=[("Event", reginfo.EVENT), ("Expires", str(expires)),
                                              ("Accept", reginfo.CONTENT_TYPE)])
        if response.status_code == 481:
            self._forget_dialog()
            raise SubscriptionError("the server forgot the subscription")
        if response.status_code != 200:
            raise SubscriptionError(f"{response.status_code} {response.reason_phrase}")
        self._to = response.headers.get_first("to") or ""
        value = (response.headers.get_first("expires") or "").strip()
        return int(value) if value.isdigit() else expires

    def _forget_dialog(self) -> None:
        self._client = None
        self._to = ""
        self._version = -1
        self.subscribed = False

    # -- NOTIFY -----------------------------------------------------------------------------------

    def notify(self, request: SipRequest, txn: ServerTransaction) -> None:
        """A NOTIFY from the server: 200 and the table updated, or 400/481/489 and nothing."""
        respond = lambda status, reason=None, headers=None: self.agent.respond(  # noqa: E731
            txn, response_to(request, status, reason, headers=headers))
        event = (request.headers.get_first("event") or "").split(";", 1)[0].strip().lower()
        if event != reginfo.EVENT:
            return respond(489, headers=[("Allow-Events", reginfo.EVENT)])
        if self._client is None or request.call_id != self._client.call_id:
            return respond(481, "No such subscription")
        try:
            info = reginfo.parse(request.body or b"")
        except RegInfoError as exc:
            log.warning("a NOTIFY with a bad body from the server: %s", exc.reason)
            return respond(400, exc.reason[:120])
        state = (request.headers.get_first("subscription-state") or "").split(";", 1)[0]
        respond(200)
        if info.version <= self._version and not info.full:
            return  # an old or repeated NOTIFY: what it says is known already
        self._version = info.version
        self._apply(info.full, info.devices)
        if state.strip().lower() == "terminated":
            self._lost.set()

    def _apply(self, full: bool, states: tuple[DeviceState, ...]) -> None:
        me = f"{self.config.user}/{self.config.device}"
        before = dict(self.devices)
        if full:
            self.devices = {}
        for state in states:
            key = f"{state.user}/{state.device}"
            if key != me:
                self.devices[key] = state
        now = time.time()
        for key in sorted(set(before) | set(self.devices)):
            old, new = before.get(key), self.devices.get(key)
            if new is None:
                # No longer listed (a full state without it): gone as far as we may know.
                new = DeviceState(*key.split("/", 1), online=False,
                                  event=reginfo.ContactEvent.REJECTED, last_seen=now)
            if old is None or old.online != new.online:
                for listener in list(self._listeners):
                    listener(key, new)
        self._changed.set()


class SubscriptionError(Exception):
    pass
