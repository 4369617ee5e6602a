"""Presence for devices (RFC 6665 subscriptions to RFC 3680's `reg` event), decided without I/O.

A device subscribes to a user's address of record (its own, or a user who shared devices with
it), or to one device. It only ever sees devices it may sync with: its own user's, and those shared
with its user; a subscription naming anything else is refused with the same 403 whether it exists
or not. The first NOTIFY carries the full state; later ones only what changed (a device coming
online, expiring, unregistering, being disabled or removed). A registration refresh is not a
change. The asyncio side turns `Notify` into SIP and sends it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from protocols.sip.reginfo import ContactEvent, DeviceState, RegInfo

from .device_set import DeviceKey, DeviceSet

DEFAULT_EXPIRES = 600
MIN_EXPIRES = 60
MAX_EXPIRES = 3600


@dataclass(frozen=True, slots=True)
class Sharing:
    """Who may see which device, from the directory, indexed both ways for the hot path."""

    devices: DeviceSet                              # the directory's own: every (user, device)
    shares: dict[DeviceKey, frozenset[str]]         # (owner, device) -> users it is shared with
    shared_with: dict[str, frozenset[DeviceKey]]    # user -> devices others shared with them

    @classmethod
    def of(cls, devices: Iterable[DeviceKey], shares: dict[DeviceKey, Iterable[str]]) -> Sharing:
        if not isinstance(devices, DeviceSet):
            devices = DeviceSet(devices)
        shared_with: dict[str, set[DeviceKey]] = {}
        kept = {}
        for key, grantees in shares.items():
            if key in devices:
                kept[key] = frozenset(grantees)
                for grantee in grantees:
                    shared_with.setdefault(grantee, set()).add(key)
        return cls(devices, kept, {u: frozenset(k) for u, k in shared_with.items()})

    def add_device(self, key: DeviceKey) -> None:
        """A device made by its first REGISTER: visible at once, before the next reload."""
        self.devices.add(key)

    def may_see(self, user: str, key: DeviceKey) -> bool:
        if key not in self.devices:
            return False
        return key[0] == user or user in self.shares.get(key, ())

    def covers(self, user: str, resource_user: str, resource_device: str | None,
               key: DeviceKey) -> bool:
        """Whether a device of `user` watching that resource is told about device `key`."""
        if resource_device is not None and key != (resource_user, resource_device):
            return False
        if resource_user != user and key[0] != resource_user:
            return False
        return self.may_see(user, key)

    def visible_to(self, user: str, resource_user: str, resource_device: str | None) -> set[DeviceKey]:
        """What a device of `user` sees by subscribing to `resource_user` (and one device of it);
        its own address of record shows everything it may sync with, own and shared."""
        if resource_device is not None:
            key = (resource_user, resource_device)
            return {key} if self.may_see(user, key) else set()
        shared = self.shared_with.get(user, frozenset())
        if resource_user == user:
            return {(user, d) for d in self.devices.names_of(user)} | set(shared)
        return {k for k in shared if k[0] == resource_user}

    def watchers(self, key: DeviceKey) -> set[str]:
        return {key[0], *self.shares.get(key, ())}


@dataclass(eq=False)
class Subscription:
    id: str                          # the dialog's Call-ID and the subscriber's tag
    subscriber: DeviceKey
    resource_user: str
    resource_device: str | None
    expires_at: float
    dialog: object = None            # what the SIP side needs to send in this dialog
    version: int = -1                # the reginfo version of the last NOTIFY
    seen: set[DeviceKey] = field(default_factory=set)  # what it has been told of


@dataclass(frozen=True, slots=True)
class Notify:
    subscription: Subscription
    body: RegInfo
    terminated: bool = False
    reason: str | None = None        # Subscription-State's reason once terminated
    expires: int = 0                 # Subscription-State's expires while active


@dataclass(frozen=True, slots=True)
class SubscribeAnswer:
    status: int                      # 200, or 403/489 with `reason`
    reason: str = ""
    expires: int = 0
    notify: Notify | None = None


class Presence:
    def __init__(self, sharing: Sharing, describe: Callable[[DeviceKey], DeviceState]) -> None:
        self.sharing = sharing
        self._describe = describe    # the device's state now: online or when last seen
        self.subscriptions: dict[str, Subscription] = {}
        self._by_user: dict[str, set[Subscription]] = {}     # subscriber user -> subscriptions
        self._by_device: dict[DeviceKey, set[Subscription]] = {}  # subscriber device -> its own
        self._due: list[tuple[float, int, Subscription]] = []
        self._order = 0
        # Made, refreshed (the subscription) or ended (None) since the store last took them.
        self._changes: dict[str, Subscription | None] = {}

    def __len__(self) -> int:
        return len(self.subscriptions)

    # -- SUBSCRIBE --------------------------------------------------------------------------------

    def subscribe(self, sub_id: str, subscriber: DeviceKey, resource_user: str,
                  resource_device: str | None, expires: int | None, now: float,
                  dialog: object = None) -> SubscribeAnswer:
        visible = self.sharing.visible_to(subscriber[0], resource_user, resource_device)
        if not visible and not (resource_user == subscriber[0] and resource_device is None):
            # The same answer for a user or device that does not exist and one not shared.
            return SubscribeAnswer(403, "Not allowed to watch this resource")
        wanted = DEFAULT_EXPIRES if expires is None else expires
        current = self.subscriptions.get(sub_id)
        if wanted == 0:
            if current is None:
                # A fetch: the state once, and the subscription ends with that NOTIFY.
                current = Subscription(sub_id, subscriber, resource_user, resource_device, now, dialog)
                return SubscribeAnswer(200, expires=0, notify=self._full(current, visible, now,
                                                                        terminated=True))
            self._drop(current)
            return SubscribeAnswer(200, expires=0, notify=self._full(current, visible, now,
                                                                    terminated=True))
        granted = min(max(wanted, MIN_EXPIRES), MAX_EXPIRES)
        if current is None:
            current = Subscription(sub_id, subscriber, resource_user, resource_device,
                                   now + granted, dialog)
            self.subscriptions[sub_id] = current
            self._by_user.setdefault(subscriber[0], set()).add(current)
            self._by_device.setdefault(subscriber, set()).add(current)
        else:
            current.expires_at = now + granted
            if dialog is not None:
                current.dialog = dialog
        self._keep(current)
        # RFC 6665 4.2.1: every accepted SUBSCRIBE, refresh included, gets the state at once.
        return SubscribeAnswer(200, expires=granted, notify=self._full(current, visible, now))

    # -- what changes -----------------------------------------------------------------------------

    def device_changed(self, key: DeviceKey, now: float) -> list[Notify]:
        """A device came online or went away (not a refresh): tell whoever may see it."""
        notifies: list[Notify] = []
        by_user = self._by_user
        if not by_user:
            return notifies  # nobody subscribes: the usual REGISTER, answered without a look
        state = None  # described once someone is to be told
        for user in self.sharing.watchers(key):
            for sub in by_user.get(user, ()):
                if self.sharing.covers(user, sub.resource_user, sub.resource_device, key):
                    sub.seen.add(key)
                    if state is None:
                        state = self._describe(key)
                    notifies.append(self._partial(sub, [state], now))
        return notifies

    def sharing_changed(self, sharing: Sharing, now: float) -> list[Notify]:
        """An admin changed devices or shares: devices appear to and vanish from watchers."""
        self.sharing = sharing
        notifies = []
        for sub in list(self.subscriptions.values()):
            visible = self._visible(sub)
            gone = sub.seen - visible
            new = visible - sub.seen
            if not gone and not new:
                continue
            states = [self._describe(k) for k in sorted(new)]
            states += [DeviceState(k[0], k[1], online=False, event=ContactEvent.REJECTED,
                                   reason="no longer shared") for k in sorted(gone)]
            sub.seen = visible
            notifies.append(self._partial(sub, states, now))
        return notifies

    def subscriber_gone(self, key: DeviceKey, now: float) -> list[Notify]:
        """The subscriber's own binding went: its subscriptions end with it."""
        ended = []
        for sub in list(self._by_device.get(key, ())):
            self._drop(sub)
            ended.append(self._final(sub, "deactivated", now))
        return ended

    def hand_over(self, now: float) -> list[Notify]:
        """This server stops, others go on: every subscription ends, its subscriber told to
        subscribe again (the new SUBSCRIBE reaches another server)."""
        ended = []
        for sub in list(self.subscriptions.values()):
            self._drop(sub)
            ended.append(self._final(sub, "deactivated", now))
        return ended

    def restore(self, sub: Subscription) -> None:
        """A subscription the store kept across a restart, as it was."""
        self.subscriptions[sub.id] = sub
        self._by_user.setdefault(sub.subscriber[0], set()).add(sub)
        self._by_device.setdefault(sub.subscriber, set()).add(sub)
        self._order += 1
        heapq.heappush(self._due, (sub.expires_at, self._order, sub))

    def take_changes(self) -> dict[str, Subscription | None]:
        changes, self._changes = self._changes, {}
        return changes

    def all_changed(self) -> None:
        """Every subscription to be written again: the store lost them (a cluster took this
        server for gone while it was cut off from the store)."""
        self._changes.update(self.subscriptions)

    def end(self, sub_id: str) -> bool:
        """Forget a subscription whose subscriber stopped answering; True if it was there."""
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return False
        self._drop(sub)
        return True

    def expire(self, now: float) -> list[Notify]:
        ended = []
        while self._due and self._due[0][0] <= now:
            at, _, sub = heapq.heappop(self._due)
            if self.subscriptions.get(sub.id) is sub and sub.expires_at <= now:
                self._drop(sub)
                ended.append(self._final(sub, "timeout", now))
        return ended

    def next_deadline(self) -> float | None:
        while self._due and self.subscriptions.get(self._due[0][2].id) is not self._due[0][2]:
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    # -- helpers ----------------------------------------------------------------------------------

    def _visible(self, sub: Subscription) -> set[DeviceKey]:
        return self.sharing.visible_to(sub.subscriber[0], sub.resource_user, sub.resource_device)

    def full_state(self, sub: Subscription, visible: Iterable[DeviceKey], now: float) -> Notify:
        return self._full(sub, visible, now)

    def _full(self, sub: Subscription, visible: Iterable[DeviceKey], now: float,
              terminated: bool = False) -> Notify:
        sub.seen = set(visible)
        sub.version += 1
        states = tuple(self._describe(k) for k in sorted(sub.seen))
        return Notify(sub, RegInfo(sub.version, True, states), terminated=terminated,
                      reason="timeout" if terminated else None,
                      expires=max(0, round(sub.expires_at - now)))

    def _partial(self, sub: Subscription, states: list[DeviceState], now: float) -> Notify:
        sub.version += 1
        return Notify(sub, RegInfo(sub.version, False, tuple(states)),
                      expires=max(0, round(sub.expires_at - now)))

    def _final(self, sub: Subscription, reason: str, now: float) -> Notify:
        sub.version += 1
        return Notify(sub, RegInfo(sub.version, False, ()), terminated=True, reason=reason)

    def _keep(self, sub: Subscription) -> None:
        self._order += 1
        heapq.heappush(self._due, (sub.expires_at, self._order, sub))
        self._changes[sub.id] = sub

    def _drop(self, sub: Subscription) -> None:
        if self.subscriptions.pop(sub.id, None) is not None:
            self._changes[sub.id] = None
        for index, key in ((self._by_user, sub.subscriber[0]), (self._by_device, sub.subscriber)):
            group = index.get(key)
            if group is not None:
                group.discard(sub)
                if not group:
                    del index[key]
