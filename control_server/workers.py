"""The supervisor of `sipsync-server --workers N`: binds the SIP port once, starts N worker
processes that all read it, relays the shared events between them, keeps the whole server's view
for the admin API, restarts a worker that dies and stops them all on SIGTERM or SIGINT. On a
PostgreSQL store it is also the server's voice in the cluster (`cluster_bridge`).

Why one socket read by every worker rather than SO_REUSEPORT: with SO_REUSEPORT the kernel picks
a worker by a hash of the sender's address, so everything from one sender (one sipp, one load
balancer in front) lands on one worker. A socket bound before the workers start and read by all
of them (as Kamailio's UDP workers do) gives each datagram to whichever worker is free. Each
worker then hands a message to the worker its Call-ID hashes to (`shared_state.owner_of`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from protocols.sip.transport import bind_shared

from .cluster_bridge import ClusterBridge
from .cluster_feed import BindingUp, NodeGone, NodeReport, SharedEvent, decode, encode
from .cluster_view import ClusterView
from .config import ServerConfig
from .liveness import HeartbeatPolicy, gone_reason
from .sessions import SessionRecord
from .shared_state import node_name
from .store import DirectoryStore, StateStore, is_store_url, open_database

log = logging.getLogger("sipsync.workers")

STOP_SECONDS = 15.0  # how long a worker may take to stop before it is killed
RESTART_PAUSE = 0.5  # between a worker's death and its replacement, so a crash loop idles
READY_SECONDS = 30.0


class WorkersFailed(Exception):
    """The workers could not be started."""


@dataclass
class _Worker:
    index: int
    incarnation: int
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    ready: asyncio.Event
    tasks: list[asyncio.Task] = dataclasses.field(default_factory=list)

    @property
    def node(self) -> str:
        return node_name(self.index)


class Supervisor:
    def __init__(self, config: ServerConfig, count: int) -> None:
        self.config = config
        self.count = count
        self._workers: dict[int, _Worker] = {}
        # Numbers no earlier run and no other server used: a nonce names the incarnation whose
        # replay guard counts it, and the nonce secret is the store's, shared by all.
        self._incarnations = itertools.count(secrets.randbits(30) + 1)
        self.bridge: ClusterBridge | None = None
        self._stopping = False
        self._run_dir = Path(tempfile.mkdtemp(prefix="sipsync-workers-"))
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._sweeper: asyncio.Task | None = None
        self.view: ClusterView | None = None
        self.port = 0

    async def start(self) -> None:
        config = self.config
        realm = self._prepare_store()
        self._udp, self._tcp = bind_shared(config.sip_host, config.sip_port)
        self.port = self._udp.getsockname()[1]
        self.view = ClusterView(realm, (config.sip_host, self.port), self.broadcast,
                                grace=config.expiry_grace)
        if is_store_url(config.store):
            self.bridge = ClusterBridge(
                config.store, config.node(),
                HeartbeatPolicy(config.heartbeat_interval, config.heartbeats_missed),
                self._from_cluster)
            await self.bridge.start()
        for index in range(self.count):
            await self._spawn(index)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(w.ready.wait() for w in self._workers.values())),
                READY_SECONDS)
        except asyncio.TimeoutError:
            raise WorkersFailed(f"the workers did not start within {READY_SECONDS:g} s: "
                                "their log says why") from None
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("SIP on %s:%d (UDP and TCP) served by %d workers, realm %r",
                 config.sip_host, self.port, self.count, realm)

    def _prepare_store(self) -> str:
        """What one process must do before the workers share the store: fix the realm, make
        the nonce secret, close the sessions the previous run left open."""
        database = open_database(self.config.data_dir, self.config.store)
        try:
            realm = DirectoryStore(database).realm(self.config.realm)
            database.nonce_secret()
            interrupted = StateStore(database).end_interrupted_sessions(time.time(),
                                                                        self.config.node())
            if interrupted:
                log.info("closed %d session(s) left open by the previous run", len(interrupted))
            return realm
        finally:
            database.close()

    async def _spawn(self, index: int) -> None:
        assert self._udp is not None and self._tcp is not None and self.view is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        incarnation = next(self._incarnations)
        settings = {f.name: _plain(getattr(self.config, f.name))
                    for f in dataclasses.fields(self.config)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control_server.worker",
            "--index", str(index), "--count", str(self.count),
            "--incarnation", str(incarnation),
            "--udp-fd", str(self._udp.fileno()), "--tcp-fd", str(self._tcp.fileno()),
            "--feed-fd", str(theirs.fileno()), "--run-dir", str(self._run_dir),
            "--config", json.dumps(settings),
            pass_fds=(self._udp.fileno(), self._tcp.fileno(), theirs.fileno()),
        )
        theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 24)
        worker = _Worker(index, incarnation, process, writer, asyncio.Event())
        self._workers[index] = worker
        # What the others already bound: a restarted worker knows every device at once.
        for binding in self.view.location.all():
            writer.write(encode(BindingUp(binding)) + b"\n")
        worker.tasks = [asyncio.create_task(self._relay(worker, reader)),
                        asyncio.create_task(self._watch(worker))]
        log.info("worker %s started (pid %d)", worker.node, process.pid)

    async def _relay(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        """Every event a worker publishes goes to every other worker and into the view."""
        assert self.view is not None
        while line := await reader.readline():
            try:
                event = decode(line)
            except ValueError as exc:
                log.warning("dropped a line from %s: %s", worker.node, exc)
                continue
            if isinstance(event, NodeReport):
                worker.ready.set()  # a worker's counters are for the view alone
            else:
                for other in list(self._workers.values()):
                    if other is not worker and not other.writer.is_closing():
                        other.writer.write(line)
                if self.bridge is not None:
                    self.bridge.publish(event)
            self.view.apply(event)

    def _from_cluster(self, event: SharedEvent) -> None:
        """Another server's event, or the heartbeat's finding: for every worker and the view."""
        assert self.view is not None
        if isinstance(event, NodeGone) and event.node == self.config.node():
            # Taken for gone while cut off from the store: our next heartbeat finds it out.
            log.warning("another server took this one (%s) for gone", event.node)
            return
        self.broadcast(event)
        if isinstance(event, NodeGone):
            self.view.node_gone(event.node, gone_reason(event.node))
        else:
            self.view.apply(event)

    async def _watch(self, worker: _Worker) -> None:
        code = await worker.process.wait()
        if self._stopping or self._workers.get(worker.index) is not worker:
            return
        log.warning("worker %s (pid %d) exited with %s: starting another",
                    worker.node, worker.process.pid, code)
        worker.writer.close()
        for task in worker.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        assert self.view is not None
        ended = self.view.node_gone(worker.node, f"worker {worker.node} stopped")
        if ended:
            # Nobody else will end them: the worker's dialogs died with it.
            await asyncio.get_running_loop().run_in_executor(None, self._file_ended, ended)
        del self._workers[worker.index]
        self.broadcast(NodeGone(worker.node))
        await asyncio.sleep(RESTART_PAUSE)
        if not self._stopping:
            await self._spawn(worker.index)

    def _file_ended(self, sessions: list[SessionRecord]) -> None:
        database = open_database(self.config.data_dir, self.config.store)
        try:
            StateStore(database).write_batch([], [], sessions, [], self.config.node())
        finally:
            database.close()
        log.info("filed %d session(s) of the stopped worker as failed", len(sessions))

    def broadcast(self, event: SharedEvent) -> None:
        line = encode(event) + b"\n"
        for worker in self._workers.values():
            if not worker.writer.is_closing():
                worker.writer.write(line)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            assert self.view is not None
            self.view.expire(time.time())

    def pids(self) -> dict[str, int]:
        return {w.node: w.process.pid for w in self._workers.values()}

    async def stop(self) -> None:
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        workers = list(self._workers.values())
        for worker in workers:
            if worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_SECONDS)
            except asyncio.TimeoutError:
                log.warning("worker %s did not stop: killed", worker.node)
                worker.process.kill()
                await worker.process.wait()
            for task in worker.tasks:
                task.cancel()
            worker.writer.close()
        if self.bridge is not None:
            await self.bridge.stop()  # after the workers' last writes
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        shutil.rmtree(self._run_dir, ignore_errors=True)
        log.info("stopped %d workers", len(workers))


def _plain(value):
    return os.fspath(value) if isinstance(value, Path) else value
