"""The SIP side of presence: SUBSCRIBE to the `reg` event answered (authenticated like an INVITE),
and NOTIFY sent in each subscription's dialog. Sans-I/O like the proxy: it returns the effects and
the server's driver carries them out. Who may see what is decided in `presence.py`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from protocols.sip import reginfo
from protocols.sip.digest_server import DigestAuthenticator
from protocols.sip.effects import Effect
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import (
    SipRequest,
    SipResponse,
    new_branch,
    new_tag,
    response_to,
    uri_param,
    user_of,
)
from protocols.sip.reginfo import ContactEvent, DeviceState
from protocols.sip.transaction import ClientTransaction, ServerTransaction, TransactionLayer

from .admission import authenticate
from .device_names import requesting_device
from .directory import Directory
from .location import LocationTable
from .presence import DeviceKey, Notify, Presence, Sharing, Subscription

log = logging.getLogger(__name__)

ALLOW_EVENTS = reginfo.EVENT


@dataclass(eq=False)
class _Dialog:
    """What a NOTIFY of one subscription needs: the dialog's identity and where it goes."""

    call_id: str
    tag: str          # ours
    local: str        # our side: the SUBSCRIBE's To, with our tag
    remote: str       # theirs: the SUBSCRIBE's From, with its tag
    target: str       # the subscriber's Contact URI
    destination: Endpoint
    cseq: int = 0


@dataclass(frozen=True, slots=True)
class _NotifyContext:
    """Hung on the client transaction of a NOTIFY, so its answer finds the subscription."""

    subscription_id: str


@dataclass(frozen=True, slots=True)
class _Gone:
    event: ContactEvent
    reason: str
    last_seen: float | None


# Why a device went offline, in the server's words, as RFC 3680 names it.
_EVENTS = {"device unregistered": ContactEvent.UNREGISTERED, "went offline": ContactEvent.EXPIRED,
           "disabled by an admin": ContactEvent.REJECTED, "removed by an admin": ContactEvent.REJECTED}


class Notifier:
    def __init__(self, layer: TransactionLayer, auth: DigestAuthenticator, directory: Directory,
                 location: LocationTable, me: Endpoint, realm: str,
                 last_seen: dict[DeviceKey, float] | None = None) -> None:
        self.layer = layer
        self.auth = auth
        self.location = location
        self.me = me
        self.realm = realm
        self._gone: dict[DeviceKey, _Gone] = {
            key: _Gone(ContactEvent.EXPIRED, "", seen) for key, seen in (last_seen or {}).items()
        }
        self.directory = directory
        self.presence = Presence(sharing_of(directory), self.describe)
        self.handing_over: set[str] = set()  # subscriptions told to go elsewhere, unanswered

    # -- SUBSCRIBE --------------------------------------------------------------------------------

    def subscribe(self, txn: ServerTransaction, now: float) -> list[Effect]:
        request = txn.request
        event = (request.headers.get_first("event") or "").split(";", 1)[0].strip().lower()
        if event != reginfo.EVENT:
            return self._reply(txn, 489, now, headers=[("Allow-Events", ALLOW_EVENTS)])
        from_addr, to_addr = request.from_addr, request.to_addr
        if from_addr is None or to_addr is None or not from_addr.tag:
            return self._reply(txn, 400, now, "Unreadable From or To")
        user = user_of(request.headers.get_first("from") or "")
        refusal = authenticate(request, user, self.auth, self.directory, now)
        if refusal is not None:
            return self._reply(txn, refusal.status, now, refusal.reason, list(refusal.headers))
        expires = _expires(request)
        if expires is False:
            return self._reply(txn, 400, now, "Unreadable Expires")
        subscriber = (user, requesting_device(request))
        binding = self.location.get(*subscriber)
        if binding is None or subscriber in self.directory.disabled_devices:
            return self._reply(txn, 403, now, "Register before subscribing")
        sub_id = f"{request.call_id};{from_addr.tag}"
        existing = self.presence.subscriptions.get(sub_id)
        if to_addr.tag and existing is None:
            return self._reply(txn, 481, now, "No such subscription")
        if existing is not None:
            dialog = existing.dialog
            assert isinstance(dialog, _Dialog)
            dialog.destination = binding.source
        else:
            tag = new_tag()
            dialog = _Dialog(
                call_id=request.call_id or "",
                tag=tag,
                local=f"{request.headers.get_first('to')};tag={tag}",
                remote=request.headers.get_first("from") or "",
                target=_contact_uri(request) or binding.contact,
                destination=binding.source,
            )
        answer = self.presence.subscribe(
            sub_id, subscriber, user_of(request.uri), uri_param(request.uri, "device"),
            expires, now, dialog,
        )
        if answer.status != 200:
            log.info("SUBSCRIBE from %s/%s to %s refused: %s", *subscriber, request.uri,
                     answer.reason)
            return self._reply(txn, answer.status, now, answer.reason)
        response = response_to(request, 200, to_tag=dialog.tag, headers=[
            ("Expires", str(answer.expires)), ("Contact", f"<sip:{self.me.hostport}>")])
        effects = self.layer.respond(txn, 200, bytes(response), now)
        return effects + self.notify([answer.notify] if answer.notify else [], now)

    # -- across restarts --------------------------------------------------------------------------

    def take_changes(self) -> tuple[list[tuple[str, str, float]], list[str]]:
        """What to write behind: (id, state, expiry) of subscriptions kept, ids of those ended."""
        kept, ended = [], []
        for sub_id, sub in self.presence.take_changes().items():
            if sub is None:
                ended.append(sub_id)
            else:
                kept.append((sub_id, json.dumps(_saved(sub)), sub.expires_at))
        return kept, ended

    def restore(self, rows: list[tuple[str, str]], now: float) -> list[Effect]:
        """Subscriptions the store kept: each gets the full state again at once, so whatever
        changed while the server was down reaches its watcher."""
        notifies = []
        for sub in _readable(rows):
            self.presence.restore(sub)
            visible = self.presence.sharing.visible_to(sub.subscriber[0], sub.resource_user,
                                                       sub.resource_device)
            notifies.append(self.presence.full_state(sub, visible, now))
        if notifies:
            log.info("%d presence subscription(s) kept across the restart", len(notifies))
        return self.notify(notifies, now)

    def deactivate(self, rows: list[tuple[str, str]], now: float) -> list[Effect]:
        """Subscriptions a stopped server of the cluster held, as the store kept them: each
        subscriber is told its subscription ended (terminated, reason "deactivated"), which
        RFC 6665 (4.1.3) answers with a new SUBSCRIBE at once; whichever server gets that sends
        the full state. Not kept here: the subscriber's next request may reach another server."""
        notifies = []
        for sub in _readable(rows):
            sub.version += 1
            notifies.append(Notify(sub, reginfo.RegInfo(sub.version, False, ()),
                                   terminated=True, reason="deactivated"))
        if notifies:
            log.info("%d subscription(s) of a stopped server told to subscribe again",
                     len(notifies))
        return self.notify(notifies, now)

    def hand_over(self, now: float) -> list[Effect]:
        """This server of a cluster stops: each of its subscribers is told its subscription
        ended ("deactivated"), and subscribes again through another server at once."""
        notifies = self.presence.hand_over(now)
        self.handing_over = {notify.subscription.id for notify in notifies}
        if notifies:
            log.info("%d subscription(s) handed over to the other servers", len(notifies))
        return self.notify(notifies, now)

    # -- what changed -----------------------------------------------------------------------------

    def came_online(self, key: DeviceKey, now: float, new_device: bool = False) -> list[Effect]:
        self._gone.pop(key, None)
        if new_device:
            self.presence.sharing.add_device(key)
        return self.notify(self.presence.device_changed(key, now), now)

    def went_offline(self, key: DeviceKey, reason: str, now: float) -> list[Effect]:
        self._gone[key] = _Gone(_EVENTS.get(reason, ContactEvent.EXPIRED), reason, now)
        # Its own subscriptions end unannounced: nothing listens at its address any more, and
        # a NOTIFY there would only retransmit until timer F.
        self.presence.subscriber_gone(key, now)
        return self.notify(self.presence.device_changed(key, now), now)

    def directory_changed(self, directory: Directory, now: float) -> list[Effect]:
        self.directory = directory
        return self.notify(self.presence.sharing_changed(sharing_of(directory), now), now)

    def expire(self, now: float) -> list[Effect]:
        return self.notify(self.presence.expire(now), now)

    def next_deadline(self) -> float | None:
        return self.presence.next_deadline()

    def describe(self, key: DeviceKey) -> DeviceState:
        """A device's state now, as a NOTIFY carries it."""
        user, device = key
        binding = self.location.get(user, device)
        if binding is not None:
            return DeviceState(user, device, online=True, event=ContactEvent.REGISTERED,
                               contact=binding.contact, expires=None,
                               online_since=binding.registered_at, last_seen=binding.last_seen,
                               user_agent=binding.user_agent)
        gone = self._gone.get(key)
        if gone is None:
            return DeviceState(user, device, online=False, event=ContactEvent.EXPIRED)
        return DeviceState(user, device, online=False, event=gone.event,
                           last_seen=gone.last_seen, reason=gone.reason)

    # -- NOTIFY -----------------------------------------------------------------------------------

    def notify(self, notifies: list[Notify], now: float) -> list[Effect]:
        effects: list[Effect] = []
        for notify in notifies:
            dialog = notify.subscription.dialog
            if not isinstance(dialog, _Dialog):
                continue
            dialog.cseq += 1
            request = SipRequest(method="NOTIFY", uri=dialog.target)
            add = request.headers.append
            add("Via", f"SIP/2.0/{dialog.destination.transport.upper()} {self.me.hostport};"
                       f"branch={new_branch()}")
            add("Max-Forwards", "70")
            add("From", dialog.local)
            add("To", dialog.remote)
            add("Call-ID", dialog.call_id)
            add("CSeq", f"{dialog.cseq} NOTIFY")
            add("Contact", f"<sip:{self.me.hostport}>")
            add("Event", reginfo.EVENT)
            if notify.terminated:
                add("Subscription-State", f"terminated;reason={notify.reason or 'noresource'}")
            else:
                add("Subscription-State", f"active;expires={notify.expires}")
            add("Content-Type", reginfo.CONTENT_TYPE)
            request.body = reginfo.build(notify.body, self.realm)
            _, sent = self.layer.send_request(request, dialog.destination, now,
                                              context=_NotifyContext(notify.subscription.id))
            effects += sent
        return effects

    @staticmethod
    def owns(txn: ClientTransaction) -> bool:
        return isinstance(txn.context, _NotifyContext)

    def answered(self, txn: ClientTransaction, response: SipResponse, now: float) -> list[Effect]:
        """RFC 6665 4.2.2: a NOTIFY refused (481 above all) ends its subscription."""
        if response.status_code >= 300:
            self._end(txn, f"NOTIFY answered {response.status_code}")
        else:
            self.handing_over.discard(txn.context.subscription_id)
        return []

    def timed_out(self, txn: ClientTransaction, now: float) -> list[Effect]:
        self._end(txn, "NOTIFY not answered")
        return []

    def _end(self, txn: ClientTransaction, why: str) -> None:
        context = txn.context
        assert isinstance(context, _NotifyContext)
        self.handing_over.discard(context.subscription_id)
        if self.presence.end(context.subscription_id):
            log.info("subscription %s ended: %s", context.subscription_id, why)

    def _reply(self, txn: ServerTransaction, status: int, now: float, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> list[Effect]:
        response = response_to(txn.request, status, reason, to_tag=new_tag(), headers=headers)
        return self.layer.respond(txn, status, bytes(response), now)


def _saved(sub: Subscription) -> dict:
    dialog = sub.dialog
    assert isinstance(dialog, _Dialog)
    return {"subscriber": list(sub.subscriber), "resource_user": sub.resource_user,
            "resource_device": sub.resource_device, "expires_at": sub.expires_at,
            "version": sub.version, "call_id": dialog.call_id, "tag": dialog.tag,
            "local": dialog.local, "remote": dialog.remote, "target": dialog.target,
            "destination": [dialog.destination.transport, dialog.destination.host,
                            dialog.destination.port], "cseq": dialog.cseq}


def _readable(rows: list[tuple[str, str]]):
    """The stored subscriptions that can be read back; the others are dropped with a warning."""
    for sub_id, state in rows:
        try:
            yield _loaded(sub_id, json.loads(state))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropped a stored subscription %s: %s", sub_id, exc)


def _loaded(sub_id: str, row: dict) -> Subscription:
    transport, host, port = row["destination"]
    # CSeq moves on past anything a NOTIFY not yet written behind may have used.
    dialog = _Dialog(str(row["call_id"]), str(row["tag"]), str(row["local"]), str(row["remote"]),
                     str(row["target"]), Endpoint(str(transport), str(host), int(port)),
                     int(row["cseq"]) + 1000)
    user, device = row["subscriber"]
    return Subscription(sub_id, (str(user), str(device)), str(row["resource_user"]),
                        row["resource_device"], float(row["expires_at"]), dialog,
                        version=int(row["version"]) + 1000)


def sharing_of(directory: Directory) -> Sharing:
    return Sharing.of(directory.devices, directory.shares)


def _expires(request: SipRequest) -> int | None | bool:
    """The Expires asked for, None when absent, False when unreadable."""
    value = request.headers.get_first("expires")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 10 else False


def _contact_uri(request: SipRequest) -> str | None:
    contact = request.headers.get_first("contact") or ""
    start, end = contact.find("<"), contact.find(">")
    if 0 <= start < end:
        return contact[start + 1:end]
    return contact.split(";", 1)[0].strip() or None

