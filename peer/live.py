"""Live datasets: the daemon keeps each dataset that has partners in sync with each of them by
itself. The OS's file events and the store's writes, partners coming online (presence NOTIFYs),
the daemon's start and retries feed the schedule (`live_schedule.py`); each session it asks for is
first checked against what both sides last agreed on, so a sync with nothing to send costs no
session, and applying a partner's changes never starts one back."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocols.rsync.ignore import IgnoreRules
from protocols.rsync.manifest import HashCache, scan
from protocols.sip.reginfo import DeviceState
from session_xml import LIVE_SYNC_SUBJECT, DataType, Direction

from .callee import IncomingSession
from .config import Dataset, PeerConfig
from .folder_state import HASH_CACHE, load_last_synced
from .live_schedule import LinkKey, LiveSchedule, PartnerDirection, StartSync
from .record_store import RecordStore, store_path
from .sync_outcome import SessionOutcome
from .transfer_registry import state_dir
from .watch import DatasetWatcher

log = logging.getLogger(__name__)

RESCAN_SECONDS = 300.0  # the safety net under the file watcher: a missed event waits this long
GLARE_STATUS = 491

Invite = Callable[..., "asyncio.Future[SessionOutcome]"]


@dataclass(frozen=True, slots=True)
class LinkStatus:
    dataset: str
    partner: str
    direction: str
    state: str                  # in sync, N pending, syncing, partner offline, error
    pending: int | None
    partner_online: bool
    offline_since: float | None
    last_synced_at: float | None
    last_error: str | None

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "partner": self.partner, "direction": self.direction,
                "state": self.state, "pending": self.pending,
                "partner_online": self.partner_online, "offline_since": self.offline_since,
                "last_synced_at": self.last_synced_at, "last_error": self.last_error}


class LiveSync:
    def __init__(self, config: PeerConfig, invite: Invite, online: Callable[[str], bool]) -> None:
        self.config = config
        self._invite = invite
        self._online = online
        self.schedule = LiveSchedule(f"{config.user}/{config.device}")
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._watcher: DatasetWatcher | None = None
        self._starting: set[LinkKey] = set()  # INVITEs of ours not yet answered: glare checks
        self.sessions_started = 0
        self._configure(config)

    # -- what the daemon wires in -----------------------------------------------------------------

    def start(self) -> None:
        if not self.schedule.links:
            return
        self.schedule.started(time.time())
        self._start_watching()
        self._runner = asyncio.create_task(self._run())

    def _start_watching(self) -> None:
        live = {name: d.path for name, d in self.config.datasets.items() if d.partners}
        if not live:
            return
        self._watcher = DatasetWatcher(live, self.local_change)
        self._watcher.start()
        log.info("live sync of %s with %s", ", ".join(sorted(live)),
                 ", ".join(sorted({k.partner for k in self.schedule.links})))

    async def close(self) -> None:
        if self._watcher is not None:
            await self._watcher.close()
        for task in [self._runner, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._runner, *self._tasks] if t is not None),
                             return_exceptions=True)

    def local_change(self, dataset: str) -> None:
        self.schedule.local_change(dataset, time.time())
        self._wake.set()

    def presence_changed(self, device: str, state: DeviceState) -> None:
        self.schedule.partner_presence(device, state.online, time.time())
        self._wake.set()

    def starting(self, dataset: str, device: str) -> bool:
        return LinkKey(dataset, device) in self._starting

    def incoming(self, session: IncomingSession, busy: bool, ok: bool) -> None:
        key = LinkKey(session.dataset.name, session.offer.source_device)
        self.schedule.answering(key, busy, time.time(), ok=ok)
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        rescan_at = time.time() + RESCAN_SECONDS
        while True:
            now = time.time()
            if now >= rescan_at:
                rescan_at = now + RESCAN_SECONDS
                for name in {k.dataset for k in self.schedule.links}:
                    self.schedule.local_change(name, now)
            for start in self.schedule.due(now):
                self._spawn(self._sync(start))
            deadline = min(d for d in (self.schedule.next_deadline(), rescan_at) if d is not None)
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync(self, start: StartSync) -> None:
        key = start.key
        dataset = self.config.datasets[key.dataset]
        link = self.schedule.links[key]
        try:
            pending = await asyncio.to_thread(pending_changes, self.config, dataset, key.partner)
        except Exception as exc:  # a broken store or folder: retried like a failed session
            log.warning("%s with %s: cannot tell what changed: %s", key.dataset, key.partner, exc)
            self.schedule.ended(key, False, time.time(), reason=str(exc))
            self._wake.set()
            return
        if not pending:
            self.schedule.nothing_to_do(key, time.time())
            self._wake.set()
            return
        direction = Direction.TWO_WAY if link.direction is PartnerDirection.TWO_WAY else Direction.PUSH
        log.info("%s with %s: %d change(s) to sync (%s)", key.dataset, key.partner, pending,
                 start.trigger.value)
        self._starting.add(key)
        self.sessions_started += 1

        def answered(report) -> None:
            self._starting.discard(key)  # set up: a crossing INVITE now finds the dataset busy

        try:
            outcome = await self._invite(key.partner, key.dataset, direction=direction.value,
                                         progress=answered, subject=LIVE_SYNC_SUBJECT)
        finally:
            self._starting.discard(key)
        glare = outcome.status == GLARE_STATUS
        if not outcome.ok and not glare:
            log.info("%s with %s failed: %s; retrying with back-off", key.dataset, key.partner,
                     outcome.line())
        self.schedule.ended(key, outcome.ok, time.time(), reason=None if outcome.ok else
                            outcome.line(), glare=glare)
        self._wake.set()

    # -- status -----------------------------------------------------------------------------------

    async def status(self) -> list[LinkStatus]:
        rows = []
        for key, link in sorted(self.schedule.links.items(), key=lambda kv: (kv[0].dataset,
                                                                             kv[0].partner)):
            dataset = self.config.datasets.get(key.dataset)
            try:
                # A scan of a big folder: off the loop, so SIP keeps being answered meanwhile.
                pending = await asyncio.to_thread(pending_changes, self.config, dataset,
                                                  key.partner) if dataset else None
            except Exception:
                pending = None
            if link.running or link.answering:
                state = "syncing"
            elif not link.partner_online:
                state = "partner offline"
            elif link.last_error:
                state = "error"
            elif pending:
                state = f"{pending} pending"
            else:
                state = "in sync"
            rows.append(LinkStatus(key.dataset, key.partner, link.direction.value, state, pending,
                                   link.partner_online, link.offline_since, link.last_synced_at,
                                   link.last_error))
        return rows

    def reconfigure(self, config: PeerConfig) -> None:
        """New datasets or partners: links added and removed, the watcher on the new roots."""
        self.config = config
        wanted = {LinkKey(d.name, p.device) for d in config.datasets.values() for p in d.partners}
        for key in list(self.schedule.links):
            if key not in wanted:
                self.schedule.remove(key.dataset, key.partner)
        self._configure(config)
        now = time.time()
        for key in wanted:
            self.schedule.local_change(key.dataset, now)  # a new partner: see what it lacks
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            self._spawn(watcher.close())
        if self._runner is not None:
            self._start_watching()
        else:
            self.start()
        self._wake.set()

    def _configure(self, config: PeerConfig) -> None:
        for dataset in config.datasets.values():
            for partner in dataset.partners:
                self.schedule.add(dataset.name, partner.device, partner.direction,
                                  online=self._online(partner.device), now=time.time())


def pending_changes(config: PeerConfig, dataset: Dataset, partner: str) -> int:
    """How many of this side's changes the partner has not agreed on yet (0: nothing to send)."""
    if dataset.data_type is DataType.FILES:
        return _folder_changes(config, dataset, partner)
    return _record_changes(dataset, partner)


def _folder_changes(config: PeerConfig, dataset: Dataset, partner: str) -> int:
    state = state_dir(config.data_dir, dataset.name, partner)
    local = scan(dataset.path, HashCache(state / HASH_CACHE), ignore=IgnoreRules.load(dataset.path),
                 allow_external_links=dataset.allow_external_links)
    agreed = load_last_synced(state)
    if agreed is None:
        return len(local)
    if local.digest == agreed.digest:
        return 0
    mine, theirs = local.entries, agreed.entries
    return sum(1 for path in mine.keys() | theirs.keys() if mine.get(path) != theirs.get(path))


def _record_changes(dataset: Dataset, partner: str) -> int:
    path = store_path(dataset.path)
    if not path.exists():
        return 0
    try:
        with RecordStore(path) as store:
            anchor = store.anchor(partner)
            return sum(1 for _ in store.scan(after_seq=anchor.last_seq, not_from=partner))
    except sqlite3.Error as exc:
        raise RuntimeError(f"record store {path}: {exc}") from None
