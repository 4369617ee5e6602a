"""The control server: the sans-I/O registrar and proxy as the core on the SIP driver (sockets,
transactions, timers), and the batched write-through to the store."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from protocols.sip.digest import Algorithm
from protocols.sip.digest_server import DigestAuthenticator
from protocols.sip.endpoint import Endpoint
from protocols.sip.driver import SipDriver
from protocols.sip.effects import ClientTimeout, Effect, Transmit
from protocols.sip.message import SipRequest, SipResponse, response_to
from protocols.sip.register_head import RegisterHead, head_of
from protocols.sip.register_scan import scan_register
from protocols.sip.transaction import ClientTransaction

from .cluster_feed import (BindingDown, BindingUp, DirectoryChanged, NodeGone, SessionUpdate,
                           SharedEvent)
from .config import ServerConfig
from .directory import Directory
from .events import Banned, DeviceOffline, DeviceOnline, EventBus, SessionChanged
from .held_answers import Answer, HeldAnswers
from .inspection import ALLOW, Rejection, has_user, inspect, method_rejection
from .liveness import gone_reason
from .location import Binding, LocationTable
from .metrics import ServerCounts, ServerMetrics
from .notifier import ALLOW_EVENTS, Notifier
from .proxy import Proxy, ProxyPolicy
from .registrar import Registrar, RegistrarPolicy
from .message_bodies import describe, read_progress
from .peer_sessions import PeerSessions
from .sessions import SessionRecord, SessionRegistry
from .store import DirectoryStore, StateStore, StoreUnavailable, open_database
from .store.health import StoreHealth
from .store.refresh_writes import RefreshWrites
from .store.write_behind import PendingWrites
from .shared_state import SharedThrottle, flows_lost_with
from .throttle import Throttle, ThrottlePolicy

if TYPE_CHECKING:
    from .server_link import ServerLink
    from .worker import WorkerLink

log = logging.getLogger("sipsync.server")

FLUSH_SECONDS = 0.2
HOUSEKEEPING_SECONDS = 1.0
# How long a stopping server of a cluster waits for its watchers to hear they are handed over.
HAND_OVER_SECONDS = 1.0
# What it answers meanwhile to a request that would start something here.
STOPPING = Rejection(503, "Server stopping")
THROTTLE_CLEANUP_SECONDS = 10.0
# Requests counted by method for metrics; anything else is "other", so junk cannot add labels.
COUNTED_METHODS = frozenset(ALLOW.replace(",", "").split()) | {"MESSAGE", "NOTIFY", "SUBSCRIBE",
                                                              "UPDATE", "PRACK", "REFER"}


class ControlServer:
    def __init__(self, config: ServerConfig,
                 cluster: WorkerLink | ServerLink | None = None) -> None:
        self.config = config
        # One of several workers sharing the SIP port and one state, one of several servers on
        # one PostgreSQL store, or None: the whole server.
        self.cluster = cluster
        self.worker = cluster.membership.node if cluster is not None else ""
        self.database = database = open_database(config.data_dir, config.store)
        self.node = config.node()
        self.directory_store = DirectoryStore(database)
        self.store = StateStore(database)  # bindings and sessions, written behind
        self.realm = self.directory_store.realm(config.realm)
        algorithms = tuple(
            a for a in (Algorithm.named(n.strip()) for n in config.digest_algorithms.split(","))
            if a is not None
        )
        if not algorithms:
            raise ValueError(f"no known digest algorithm in {config.digest_algorithms!r}")
        self.auth = DigestAuthenticator(
            self.realm, database.nonce_secret(),
            nonce_lifetime=config.nonce_lifetime, algorithms=algorithms,
            multi_challenge_agents=tuple(
                a.strip() for a in config.multi_challenge_agents.split(",")),
            # A number of this run's: a nonce an earlier run issued is answered as stale, as
            # its counts died with that run, rather than counted afresh (a replay window).
            node=(cluster.membership.incarnation if cluster is not None
                  else secrets.randbits(31) + 1),
        )
        throttle_policy = ThrottlePolicy(
            ban_after=config.ban_after_failures,
            slow_after=config.slow_after_failures,
            window=config.failure_window,
            ban_seconds=config.ban_seconds,
            flood_requests=config.flood_requests,
            flood_window=config.flood_window,
            allowed=frozenset(a.strip() for a in config.throttle_allow.split(",") if a.strip()),
        )
        self.throttle = (Throttle(throttle_policy) if cluster is None
                         else SharedThrottle(throttle_policy, cluster.publish,
                                             cluster.membership.node))
        self._throttle_cleaned = 0.0
        self.held = HeldAnswers()
        self.directory = Directory.load(self.directory_store)
        self.location = LocationTable(grace=config.expiry_grace)
        self.sessions = SessionRegistry()
        # The sessions the other servers of a cluster run, for the admin view; a worker's view
        # of the others is its supervisor's.
        self.peer_sessions = (PeerSessions() if cluster is not None and not cluster.supervised
                              else None)
        # Every active session to be written again (this server was taken for gone).
        self._write_sessions_again = False
        self.draining = False  # a server of a cluster stopping: new requests go elsewhere
        self._handed_over = asyncio.Event()  # set once every watcher told to go has answered
        self.counters = {"received": 0, "bytes_received": 0, "malformed": 0, "auth_failures": 0,
                         "registrations": 0, "throttle_delayed": 0, "throttle_dropped": 0,
                         # What reaching the store costs: binding rows handed to it, and the
                         # writer thread's CPU time in microseconds.
                         "store_bindings_written": 0, "store_writer_cpu_us": 0}
        self.driver = SipDriver(self, counters=self.counters, shortcut=self.register_received)
        self.layer = self.driver.layer
        self.registrar = Registrar(
            self.auth, self.directory, self.location,
            RegistrarPolicy(
                default_expires=config.default_expires,
                min_expires=config.min_expires,
                max_expires=config.max_expires,
                auto_create_devices=config.auto_create_devices,
            ),
            throttle=self.throttle,
        )
        self.proxy: Proxy | None = None
        self.notifier: Notifier | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store")
        # Which registrations reach the store at once; the other refreshes are vouched for by
        # the expiry of the row written before them.
        self.refresh_writes = RefreshWrites(config.refresh_write_lag)
        self._bound: dict[tuple[str, str], Binding] = {}
        self._unbound: set[tuple[str, str]] = set()
        self._ended_seen: dict[tuple[str, str], float] = {}
        self._new_devices: list[tuple[str, str, float]] = []
        # Devices made by a first REGISTER until the store holds them: a reload in between
        # must not take them for devices an admin removed.
        self._unwritten_devices: set[tuple[str, str]] = set()
        self._directory_changes = database.directory_changes(self._writer)
        # What the store does not hold yet: kept and merged while it is away.
        self._unwritten = PendingWrites()
        self._flushing = asyncio.Lock()
        # Devices another worker's REGISTER made, until a reload finds them in the store.
        self._devices_made_elsewhere: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task] = []
        self._reloading: asyncio.Task | None = None
        self._reading_peers: asyncio.Task | None = None
        self.requests_by_method: dict[str, int] = {}
        self.started_at = time.time()
        self.events = EventBus()
        self.metrics = ServerMetrics()
        self.store_health = StoreHealth(self.metrics, database.describe())

    @property
    def port(self) -> int:
        return self.driver.port

    async def start(self) -> None:
        now = time.time()
        if self.cluster is None or not self.cluster.supervised:  # else the supervisor did
            interrupted = self.store.end_interrupted_sessions(now, self.node)
            if interrupted:
                log.info("closed %d session(s) left open by the previous run", len(interrupted))
            self.sessions.interrupted_by_restart(interrupted, now)
        for binding in self.store.bindings(now, held=True):
            self.location.put(self.registrar.adopt(binding))
        await self._directory_changes.start()
        _settle_heap()
        if self.cluster is None:
            await self.driver.start(self.config.sip_host, self.config.sip_port)
        else:
            if self.peer_sessions is not None:  # before the feed: what it tells is newer
                self.peer_sessions.replace_all(self.store.open_sessions_elsewhere(self.node))
            await self.cluster.attach(self)
        me = Endpoint("udp", self.config.sip_host, self.driver.port)
        self.proxy = Proxy(
            self.layer, self.auth, self.directory, self.location, self.sessions, me,
            ProxyPolicy(ring_timeout=self.config.ring_timeout,
                        challenge_invites=self.config.challenge_invites),
            describe=describe,
            read_progress=read_progress,
            throttle=self.throttle,
            hold=self._hold,
        )
        # When the devices offline now were last seen; an online one's is its binding's.
        last_seen = {(d.user, d.name): d.last_seen for d in self.directory_store.devices()
                     if d.last_seen is not None and self.location.get(d.user, d.name) is None}
        self.notifier = Notifier(self.layer, self.auth, self.directory, self.location, me,
                                 self.realm, last_seen)
        subscriptions = self.store.subscriptions(now, self.node)
        if self.cluster is not None:
            subscriptions = [row for row in subscriptions
                             if self.cluster.owns_subscription(row)]
        self.driver.carry_out(self.notifier.restore(subscriptions, now), now)
        self._tasks = [
            asyncio.create_task(self._every(FLUSH_SECONDS, self._flush)),
            asyncio.create_task(self._every(HOUSEKEEPING_SECONDS, self._housekeeping)),
        ]
        log.info(
            "SIP on %s:%d (UDP and TCP), realm %r, %d user(s), %d device(s) online, data in %s",
            self.config.sip_host, self.driver.port, self.realm,
            len(self.directory.accounts), len(self.location), self.database.describe(),
        )

    async def stop(self) -> None:
        async with self._flushing:  # a write under way finishes first, and knows how it went
            for task in self._tasks:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reading_peers is not None:
            await asyncio.gather(self._reading_peers, return_exceptions=True)
        if self.cluster is not None:
            if self.cluster.hands_over:
                await self._hand_over()
            await self.cluster.detach()
        await self.driver.close()
        self._keep_refreshes()
        await self._flush()
        if self._unwritten:
            log.error("stopped with %d change(s) the store never took", len(self._unwritten))
        if self.cluster is not None:
            await self.cluster.leave()  # after the last write: leaving ends what it left open
        await self._directory_changes.close()
        self._writer.shutdown(wait=True)
        self.store.close()
        log.info("stopped after %d SIP message(s), %d bytes received",
                 self.counters["received"], self.counters["bytes_received"])

    async def _hand_over(self) -> None:
        """A clean stop of one server of a cluster: new requests get 503, which the balancer
        in front sends on to another server, and every watcher is told to subscribe again,
        which it does there. Waits for the watchers' answers, a second at most."""
        self.draining = True
        if self.notifier is None:
            return
        now = time.time()
        self.driver.carry_out(self.notifier.hand_over(now), now)
        self._note_hand_over()
        try:
            await asyncio.wait_for(self._handed_over.wait(), HAND_OVER_SECONDS)
        except TimeoutError:
            log.info("%d watcher(s) did not answer the hand-over within %.0f s",
                     len(self.notifier.handing_over), HAND_OVER_SECONDS)

    def _note_hand_over(self) -> None:
        if self.draining and self.notifier is not None and not self.notifier.handing_over:
            self._handed_over.set()

    # -- what the SIP driver hands us ------------------------------------------------------------

    def request_received(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        if not self.throttle.arrival(source.host, now):
            self.counters["throttle_dropped"] += 1
            self._announce_bans(now)
            return []
        if self.draining and _starts_something(request):
            return [Transmit(_rejected(request, STOPPING), source)]
        effects = self._handle(request, source, now)
        self._announce_bans(now)
        return effects

    def register_received(self, data: bytes, source: Endpoint, now: float) -> list[Effect] | None:
        """The lean path: a REGISTER read straight from its bytes, or None for the general
        parser to read the message (anything but a REGISTER the scanner vouches for). What
        follows the reading is the general path's, step for step."""
        if self.draining:
            return None  # the general path answers it
        started = time.perf_counter()
        head = scan_register(data, source)
        if head is None:
            return None
        if not self.throttle.arrival(source.host, now):
            self.counters["throttle_dropped"] += 1
            self._announce_bans(now)
            return []
        self.requests_by_method["REGISTER"] = self.requests_by_method.get("REGISTER", 0) + 1
        effects = self._register(head, source, now)
        self.metrics.register_seconds.observe(time.perf_counter() - started)
        self._announce_bans(now)
        return effects

    def _handle(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        method = request.method
        counted = method if method in COUNTED_METHODS else "other"
        self.requests_by_method[counted] = self.requests_by_method.get(counted, 0) + 1
        if method == "REGISTER":
            started = time.perf_counter()
            rejection = inspect(request, answered_here=True)
            if rejection is not None:
                return [Transmit(_rejected(request, rejection), source)]
            effects = self._register(head_of(request), source, now)
            self.metrics.register_seconds.observe(time.perf_counter() - started)
            return effects
        assert self.proxy is not None
        if method == "ACK":
            if self.layer.absorb_ack(request, now):
                return []
            return self.proxy.ack(request, source, now)
        if method == "CANCEL":
            return self.proxy.cancel(request, source, now)
        if method == "OPTIONS" and not has_user(request.uri):
            rejection = inspect(request, answered_here=True)
            if rejection is not None:
                return [Transmit(_rejected(request, rejection), source)]
            response = response_to(request, 200, headers=[("Allow", ALLOW),
                                                          ("Allow-Events", ALLOW_EVENTS)])
            return [Transmit(bytes(response), source)]
        in_dialog = ";tag=" in (request.headers.get_first("to") or "")
        transaction, effects = self.layer.receive_request(request, source, now)
        if transaction is None:
            return effects
        if method == "SUBSCRIBE":
            # The server is the notifier: the request's Require applies here as well.
            rejection = inspect(request, answered_here=True)
            if rejection is None:
                assert self.notifier is not None
                return self.notifier.subscribe(transaction, now)
            return self.layer.respond(transaction, rejection.status,
                                      _rejected(request, rejection), now)
        rejection = inspect(request, answered_here=False)
        if rejection is None:
            if in_dialog:
                return self.proxy.in_dialog(transaction, now)
            if method == "INVITE":
                return self.proxy.invite(transaction, now)
            rejection = method_rejection(request)
        return self.layer.respond(transaction, rejection.status, _rejected(request, rejection),
                                  now)

    def _register(self, head: RegisterHead, source: Endpoint, now: float) -> list[Effect]:
        held_as = (source, head.branch)
        if self.held.holding(held_as):
            return []  # a retransmission of a REGISTER whose late answer is on its way
        result = self.registrar.register_head(head, source, now)
        if result.auth_failed:
            self.counters["auth_failures"] += 1
        if result.response is None:
            self.counters["throttle_dropped"] += 1
            return []
        effects: list[Effect] = [Transmit(result.response, source)]
        if result.auth_failed:
            penalty = result.penalty
            if penalty is not None and penalty.delay > 0:
                data = result.response
                self._hold(now + penalty.delay, lambda at: [Transmit(data, source)], held_as)
                return []
        if result.bound is not None:
            self.counters["registrations"] += 1
            binding = result.bound
            if self.cluster is not None:
                binding = replace(binding, node=self.cluster.holder_of(source))
                self.location.put(binding)
                self.cluster.publish(BindingUp(binding, result.new_device))
            if binding.registered_at == now:
                log.info("%s/%s online at %s (%s)", binding.user, binding.device, source,
                         binding.user_agent or "no user agent")
                if self.events.listening:
                    self.events.publish(DeviceOnline(binding, now))
                if self.notifier is not None:
                    effects += self.notifier.came_online(binding.key, now, result.new_device)
            key = binding.key
            if key in self._bound or self.refresh_writes.must_write(result.replaced, binding):
                self._bound[key] = binding
            self._unbound.discard(key)
            if result.new_device:
                self._new_devices.append((binding.user, binding.device, now))
                self._unwritten_devices.add(binding.key)
        for binding in result.unbound:
            log.info("%s/%s unregistered", binding.user, binding.device)
            if self.cluster is not None:
                self.cluster.publish(BindingDown(binding.user, binding.device, self.worker,
                                                 "device unregistered", now))
            effects += self._offline(binding, now, "device unregistered")
        return effects

    def _offline(self, binding: Binding, now: float, reason: str, *,
                 ours: bool = True) -> list[Effect]:
        """A bound device went; `ours` when this node's store write says so (another node
        that unbound it writes that itself)."""
        self._bound.pop(binding.key, None)
        if ours:
            self._unbound.add(binding.key)
            self._ended_seen[binding.key] = binding.last_seen
        if self.events.listening:
            self.events.publish(DeviceOffline(binding.user, binding.device, reason, now))
        for session in self.sessions.involving(binding.user, binding.device):
            self.sessions.finish(session, now, reason=f"{binding.user}/{binding.device}: {reason}",
                                 failed=True)
        if self.notifier is None:
            return []
        return self.notifier.went_offline(binding.key, reason, now)

    def response_received(self, transaction: ClientTransaction, response: SipResponse,
                          now: float) -> list[Effect]:
        assert self.proxy is not None and self.notifier is not None
        if self.notifier.owns(transaction):
            effects = self.notifier.answered(transaction, response, now)
            self._note_hand_over()
            return effects
        return self.proxy.response(transaction, response, now)

    def stray_response(self, response: SipResponse, now: float) -> list[Effect]:
        assert self.proxy is not None
        return self.proxy.stateless_response(response)

    def client_timeout(self, timeout: ClientTimeout, now: float) -> list[Effect]:
        if self.notifier is not None and self.notifier.owns(timeout.transaction):
            effects = self.notifier.timed_out(timeout.transaction, now)
            self._note_hand_over()
            return effects
        return self.proxy.timeout(timeout, now) if self.proxy is not None else []

    def next_deadline(self) -> float | None:
        if self.proxy is None or self.notifier is None:
            return None
        # Asked after every message the driver hands us: no list made for it.
        due = self.held.next_deadline()
        for deadline in (self.proxy.next_deadline(), self.notifier.next_deadline()):
            if deadline is not None and (due is None or deadline < due):
                due = deadline
        return due

    def expire(self, now: float) -> list[Effect]:
        effects = self.held.expire(now)
        if self.proxy is not None and self.notifier is not None:
            effects += self.proxy.expire(now) + self.notifier.expire(now)
        return effects

    # -- what the other nodes of the server changed ------------------------------------------------

    def apply_shared(self, event: SharedEvent) -> None:
        """Another node's change, applied to this one's state as if it had happened here."""
        now = time.time()
        if isinstance(event, BindingUp):
            binding = self.registrar.adopt(event.binding)
            previous = self.location.put(binding)
            if event.new_device:
                self._devices_made_elsewhere.add(binding.key)
                self.directory.devices.add(binding.key)
            if previous is None and self.notifier is not None:
                self.driver.carry_out(
                    self.notifier.came_online(binding.key, now, event.new_device), now)
        elif isinstance(event, BindingDown):
            binding = self.location.remove(event.user, event.device)
            if binding is not None:
                self.driver.carry_out(self._offline(binding, now, event.reason, ours=False), now)
        elif isinstance(event, NodeGone) and event.node == self.worker:
            # Another server took us for gone while our store connection was away but the
            # feed's was not: our flows and sessions are alive. Our next heartbeat finds our
            # row taken and we join again, writing everything anew.
            log.warning("another server took this one (%s) for gone", event.node)
        elif isinstance(event, NodeGone):
            for binding in flows_lost_with(self.location.all(), event.node):
                self.location.remove(binding.user, binding.device)
                log.info("%s/%s went offline: its connection was at %s, which stopped",
                         binding.user, binding.device, event.node)
                self.driver.carry_out(self._offline(binding, now, "went offline"), now)
            if self.peer_sessions is not None:
                for record in self.peer_sessions.node_gone(event.node, now,
                                                           gone_reason(event.node)):
                    log.info("session %s ended: %s", record.call_id, record.reason)
                    if self.events.listening:
                        self.events.publish(SessionChanged(record, now))
        elif isinstance(event, SessionUpdate) and self.peer_sessions is not None:
            self.peer_sessions.update(event.record, event.node)
            if self.events.listening:
                self.events.publish(SessionChanged(event.record, now))
        elif isinstance(event, DirectoryChanged):
            if self._reloading is None or self._reloading.done():  # one reload reads it all
                self._reloading = asyncio.get_running_loop().create_task(self.reload_directory())
        else:
            assert isinstance(self.throttle, SharedThrottle)
            self.throttle.apply(event)
            # Another node's failures may complete a ban here: announce it now, not at the
            # next request, which the ban may leave unanswered.
            self._announce_bans(now)

    def read_peer_sessions(self) -> None:
        """What the other servers run, from the store: at the start, and when the feed was
        away and missed their changes."""
        if self.peer_sessions is None:
            return

        async def read() -> None:
            try:
                rows = await asyncio.get_running_loop().run_in_executor(
                    self._writer, self.store.open_sessions_elsewhere, self.node)
            except StoreUnavailable as exc:
                log.warning("the other servers' sessions not read: %s", exc)
                return
            assert self.peer_sessions is not None
            self.peer_sessions.replace_all(rows)

        if self._reading_peers is None or self._reading_peers.done():
            self._reading_peers = asyncio.get_running_loop().create_task(read())

    def subscriptions_orphaned(self, rows: list[tuple[str, str]]) -> None:
        """A stopped server's presence subscriptions, which this one dropped from the store:
        their subscribers are told to subscribe again."""
        if self.notifier is not None and rows:
            now = time.time()
            self.driver.carry_out(self.notifier.deactivate(rows, now), now)

    def rejoined(self) -> None:
        """The other servers took this one for gone while it was cut off from the store: they
        ended its open sessions there, dropped its subscriptions and the bindings over its
        connections, and stopped showing them. What it still runs is written and told again,
        and replaces what they presumed."""
        assert self.cluster is not None
        records = [session.record() for session in self.sessions.active.values()]
        self._write_sessions_again = True
        for record in records:
            self.cluster.publish(SessionUpdate(record, self.worker))
        # Only the bindings they dropped: over a connection to this server. One over UDP may
        # have registered through another server since, and that binding is the newer.
        for binding in self.location.all():
            if binding.node == self.worker and binding.source.reliable:
                self._bound[binding.key] = binding
                self.cluster.publish(BindingUp(binding))
        if self.notifier is not None:
            self.notifier.presence.all_changed()
        log.info("writing again %d session(s), and the subscriptions and connections held "
                 "here", len(records))

    # -- the throttle's side effects -------------------------------------------------------------

    def _hold(self, due: float, answer: Answer, key: Hashable = None) -> None:
        """Send an answer at `due` rather than now; too many held already, it is dropped."""
        if self.held.hold(due, answer, key):
            self.counters["throttle_delayed"] += 1
        else:
            self.counters["throttle_dropped"] += 1

    def _announce_bans(self, now: float) -> None:
        for ban in self.throttle.take_new_bans(now):
            log.warning("banned %s", self.throttle.describe(ban, now))
            self.metrics.ban_started(ban.kind.value)
            if self.events.listening:
                self.events.publish(Banned(ban, now))

    # -- background jobs -------------------------------------------------------------------------

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:
                log.exception("%s failed", job.__name__)

    async def _housekeeping(self) -> None:
        now = time.time()
        for binding in self.location.expire(now):
            log.info("%s/%s went offline: registration expired", binding.user, binding.device)
            self.driver.carry_out(self._offline(binding, now, "went offline"), now)
        for session, reason in self.sessions.orphans(now):
            log.info("ending orphaned session %s: %s", session.call_id, reason)
            self.sessions.finish(session, now, reason=reason, failed=True)
        self.auth.replays.forget_expired(now)
        self._announce_bans(now)  # a ban completed by another node's failure may be ours to say
        if now - self._throttle_cleaned >= THROTTLE_CLEANUP_SECONDS:
            self.throttle.forget_idle(now)
            self._throttle_cleaned = now
        if self.cluster is not None:
            self.cluster.report(self, now)
        await self.reload_directory()

    async def reload_directory(self) -> None:
        """Pick up what an admin changed in the store while we run: each second, and at once
        when the admin API has just made a change."""
        if not await self._directory_changes.changed():
            return
        loop = asyncio.get_running_loop()
        try:
            directory = await loop.run_in_executor(self._writer, Directory.load,
                                                   self.directory_store)
        except StoreUnavailable:
            self._directory_changes.again()  # the change is read once the store is back
            return
        directory.devices |= self._unwritten_devices
        self._devices_made_elsewhere = {key for key in self._devices_made_elsewhere
                                         if key not in directory.devices}
        directory.devices |= self._devices_made_elsewhere
        self.directory = self.registrar.directory = directory
        _settle_heap()
        if self.proxy is not None:
            self.proxy.directory = directory
        now = time.time()
        for binding in self.location.all():
            reason = _dropped_by_admin(directory, binding.key)
            if reason is not None:
                self.location.remove(binding.user, binding.device)
                log.info("%s/%s %s", binding.user, binding.device, reason)
                self.driver.carry_out(self._offline(binding, now, reason), now)
        if self.notifier is not None:
            self.driver.carry_out(self.notifier.directory_changed(directory, now), now)
        log.info("reloaded users and devices: %d user(s)", len(directory.accounts))

    async def _flush(self) -> None:
        sessions = self.sessions.take_changes()
        if sessions:
            self._report_sessions(sessions)
        kept, ended = self.notifier.take_changes() if self.notifier is not None else ([], [])
        if self._write_sessions_again:
            # As they are now: newer than any change taken above.
            sessions += [session.record() for session in self.sessions.active.values()]
            self._write_sessions_again = False
        async with self._flushing:
            # Written detached from what the next flush adds to, since the writer thread reads it.
            pending, self._unwritten = self._unwritten, PendingWrites()
            pending.add(bound=self._bound.values(), unbound=self._unbound,
                        ended_seen=self._ended_seen, sessions=sessions,
                        new_devices=self._new_devices, subscriptions=kept,
                        ended_subscriptions=ended)
            self._bound, self._unbound, self._ended_seen, self._new_devices = {}, set(), {}, []
            if not pending:
                return
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._write, pending)
            except StoreUnavailable as exc:
                self._unwritten = pending  # the next flush adds to it and tries again
                self.store_health.failed(exc, len(pending))
                return
        self.store_health.written(len(pending))
        self.counters["store_bindings_written"] += len(pending.bound)
        self._unwritten_devices.difference_update(
            (user, device) for user, device, _ in pending.new_devices)

    def _write(self, pending: PendingWrites) -> None:
        """On the writer thread: one batch to the store, its CPU time counted, failed or not."""
        started = time.thread_time()
        try:
            self.store.write_pending(pending, self.node, self.refresh_writes.lag)
        finally:
            spent = round((time.thread_time() - started) * 1e6)
            self.counters["store_writer_cpu_us"] += spent

    def _keep_refreshes(self) -> None:
        """On the way out, every binding this node refreshed in this run goes to the store with
        its latest expiry and last-seen time, skipped refreshes included. A binding loaded at
        start and not refreshed since is left as its row has it: written again, the expiry it
        was loaded with (the row's held-until time) would be pushed out once more."""
        for binding in self.location.all():
            if binding.node == self.worker and binding.last_seen >= self.started_at:
                self._bound[binding.key] = binding

    def _report_sessions(self, changes: list[SessionRecord]) -> None:
        """Session changes, as the registry noted them, become metrics and live events."""
        now = time.time()
        for record in changes:
            if record.ended_at is not None:
                self.metrics.session_ended(record.state, record.status)
            elif (record.state != "proceeding" and not record.progress
                  and record.established_at is not None):
                self.metrics.setup_seconds.observe(record.established_at - record.started_at)
            if self.events.listening:
                self.events.publish(SessionChanged(record, now))
            if self.cluster is not None:
                self.cluster.publish(SessionUpdate(record, self.worker))

    # -- what the admin edge reads (control_server.admin.view.ServerView) ------------------------

    @property
    def sip_address(self) -> tuple[str, int]:
        return self.config.sip_host, self.driver.port

    def counts(self) -> ServerCounts:
        """Counters of this server; devices online and sessions open of the whole cluster, as
        its admin API lists them."""
        elsewhere = len(self.peer_sessions.active()) if self.peer_sessions is not None else 0
        return ServerCounts(
            counters=dict(self.counters),
            requests=dict(self.requests_by_method),
            online=len(self.location),
            active_sessions=len(self.sessions.active) + elsewhere,
            server_transactions=len(self.layer.servers),
            client_transactions=len(self.layer.clients),
        )

    def online_bindings(self) -> list[Binding]:
        return sorted(self.location.all(), key=lambda b: b.key)

    def binding(self, user: str, device: str) -> Binding | None:
        return self.location.get(user, device)

    def active_sessions(self) -> list[SessionRecord]:
        """This server's sessions, and in a cluster those the others run."""
        records = [session.record() for session in self.sessions.active.values()]
        if self.peer_sessions is not None:
            records += self.peer_sessions.active()
        return sorted(records, key=lambda s: s.started_at)


def _dropped_by_admin(directory: Directory, key: tuple[str, str]) -> str | None:
    """Why an admin's change takes a bound device offline, or None when it stays."""
    user, _ = key
    if user not in directory.accounts or key not in directory.devices:
        return "removed by an admin"
    if directory.is_disabled(user) or key in directory.disabled_devices:
        return "disabled by an admin"
    return None


def _starts_something(request: SipRequest) -> bool:
    """A request outside any dialog (a REGISTER, a SUBSCRIBE, a new INVITE, an OPTIONS): what
    a stopping server turns away. Requests of dialogs it holds still go through."""
    if request.method in ("ACK", "CANCEL"):
        return False
    return ";tag=" not in (request.headers.get_first("to") or "")


def _rejected(request: SipRequest, rejection: Rejection) -> bytes:
    return bytes(response_to(request, rejection.status, rejection.reason,
                             headers=list(rejection.headers)))


def _settle_heap() -> None:
    """Keep the collector off the long-lived heap (hundreds of thousands of accounts and
    bindings): a full collection over it stalls the event loop for tens of milliseconds."""
    gc.collect()
    gc.freeze()
