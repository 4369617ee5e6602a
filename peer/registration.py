"""Staying online: REGISTER with digest, refresh before expiry, back off with jitter and retry
for ever when the server is away, unregister on the way out."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocols.sip.agent import RequestTimeout, SipAgent
from protocols.sip.digest import DigestError
from protocols.sip.message import new_tag
from protocols.sip.uac import OutOfDialogClient

from .config import PeerConfig

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
BACKOFF_MAX = 30.0


@dataclass
class RegistrationState:
    online: bool = False
    expires_at: float = 0.0
    last_error: str = ""
    registered_at: float = 0.0
    attempts: int = 0


def refresh_delay(granted: int) -> float:
    """Refresh well before expiry: a lost packet and its retransmissions still fit."""
    return max(1.0, min(granted - 10.0, granted * 0.8))


def backoff_delay(attempt: int, rng: random.Random = random.Random()) -> float:
    """Exponential from 1 s up to 30 s, with jitter so a restarted server is not hit at once."""
    return min(BACKOFF_MAX, 2.0 ** min(attempt, 5)) * rng.uniform(0.5, 1.0)


class Registration:
    def __init__(self, agent: SipAgent, config: PeerConfig) -> None:
        self.agent = agent
        self.config = config
        self.state = RegistrationState()
        self._call_id = f"{new_tag()}@{config.device}"
        self._wake = asyncio.Event()
        self.online_event = asyncio.Event()  # set while registered
        self._restored: list[Callable[[], None]] = []

    def on_restored(self, callback: Callable[[], None]) -> None:
        """Call back each time the device is registered again after being offline."""
        self._restored.append(callback)

    @functools.cached_property
    def _client(self) -> OutOfDialogClient:
        # Built on first use: the server address in the config is checked then, not before.
        return OutOfDialogClient(self.agent, self.config.account(), self.config.transport,
                                 call_id=self._call_id,
                                 from_address=f"<{self.config.address_of_record()}>")

    async def register_once(self, expires: int) -> int:
        """One REGISTER exchange; returns the expiry the server granted."""
        config, client = self.config, self._client
        instance = f';+sip.instance="<urn:sipsync:device:{config.device}>"'
        try:
            _, response = await client.send(
                "REGISTER", f"sip:{config.realm_domain}", f"<{config.address_of_record()}>",
                config.server_endpoint, timeout=REQUEST_TIMEOUT, contact=client.contact(instance),
                headers=[("Expires", str(expires))],
            )
        except DigestError as exc:
            raise RegistrationError(f"cannot answer the challenge: {exc}") from None
        if response.status_code == 423:
            minimum = int(response.headers.get_first("min-expires") or expires)
            return await self.register_once(max(minimum, expires))
        if response.status_code != 200:
            raise RegistrationError(f"{response.status_code} {response.reason_phrase}")
        if expires == 0:
            return 0
        return _granted(response, expires, f"@{self.agent.hostport}")

    async def run(self) -> None:
        """Keep the device registered until cancelled."""
        while True:
            try:
                granted = await self.register_once(self.config.register_expires)
            except (RegistrationError, RequestTimeout, OSError) as exc:
                self.state.attempts += 1
                self.state.last_error = str(exc)
                if self.state.online or self.state.attempts == 1:
                    log.warning("registration failed: %s; retrying with back-off", exc)
                self.state.online = time.time() < self.state.expires_at
                if not self.state.online:
                    self.online_event.clear()
                await self._sleep(backoff_delay(self.state.attempts))
                continue
            now = time.time()
            restored = not self.state.online
            if restored:
                log.info("registered %s/%s with %s for %d s", self.config.user,
                         self.config.device, self.config.server, granted)
                self.state.registered_at = now
            self.state = RegistrationState(True, now + granted, "", self.state.registered_at)
            if restored:
                self.online_event.set()
                for callback in list(self._restored):
                    callback()
            await self._sleep(refresh_delay(granted))

    def refresh_now(self) -> None:
        """Re-register at once (the server asked who we are, or the network came back)."""
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            async with asyncio.timeout(seconds):  # not wait_for: see SipAgent.request
                await self._wake.wait()
        except TimeoutError:
            pass

    async def unregister(self) -> None:
        try:
            await self.register_once(0)
            log.info("unregistered %s/%s", self.config.user, self.config.device)
        except (RegistrationError, RequestTimeout, OSError) as exc:
            log.info("could not unregister cleanly: %s", exc)
        self.state.online = False
        self.online_event.clear()


class RegistrationError(Exception):
    pass


def _granted(response, asked: int, mine: str) -> int:
    """The expiry the server gave our own contact (a 200 lists every device of the user)."""
    for contact in response.headers.get("contact"):
        if mine not in contact:
            continue
        for part in contact.split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "expires" and _is_number(value):
                return int(value)
    expires = response.headers.get_first("expires")
    return int(expires) if expires and _is_number(expires) else asked


def _is_number(text: str) -> bool:
    # isdigit alone also accepts digits int() refuses (superscripts such as '\u00b2')
    text = text.strip()
    return text.isascii() and text.isdigit()
