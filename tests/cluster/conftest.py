"""A cluster on loopback: N sipsync servers, each its own process, behind a real Kamailio
dispatcher; every port is picked by the OS, every process stopped by its PID."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..integration.conftest import free_port
from ..waiting import wait_until
from .balancer import NO_FLOOD_LIMIT, PING_INTERVAL, Balancer
from .servers import ClusterServer, provision


@dataclass
class Cluster:
    balancer: Balancer
    servers: list[ClusterServer]
    store_url: str = ""  # the PostgreSQL store they share, or "": one store each

    @property
    def port(self) -> int:
        """Where devices send: the balancer."""
        return self.balancer.port

    def online(self) -> list[int]:
        return [server.online() for server in self.servers]

    def wait_online(self, total: int) -> list[int]:
        """Each server's count of online devices, once they add up to `total`."""
        def counted() -> list[int] | None:
            counts = self.online()
            return counts if sum(counts) == total else None

        return wait_until(counted, what=f"{total} devices online across the servers")


@dataclass
class ClusterFactory:
    root: Path
    servers: list[ClusterServer] = field(default_factory=list)
    balancers: list[Balancer] = field(default_factory=list)

    def __call__(self, users: list[tuple[str, str]], servers: int = 2,
                 shares: tuple[tuple[str, str, str], ...] = (),
                 ping_interval: int = PING_INTERVAL,
                 flood_requests: int = NO_FLOOD_LIMIT,
                 server_options: tuple[str, ...] = (), store_url: str = "",
                 store_urls: tuple[str, ...] = (),
                 options_each: tuple[tuple[str, ...], ...] = ()) -> Cluster:
        """`server_options` go to every server, `options_each[i]` to server i+1 alone; with
        `store_url` all share that PostgreSQL store (their node names: server1, server2...),
        else each has its own. `store_urls`: each server's own way to that store (through a
        relay a test can cut)."""
        started = []
        if store_url:
            provision(self.root, users, shares, store_url)
        for number in range(1, servers + 1):
            data_dir = self.root / f"server{number}"
            if not store_url:
                provision(data_dir, users, shares)
            data_dir.mkdir(parents=True, exist_ok=True)
            own = options_each[number - 1] if options_each else ()
            started.append(ClusterServer(
                data_dir, *server_options, *own,
                store_url=store_urls[number - 1] if store_urls else store_url))
            self.servers.append(started[-1])
            started[-1].start()
        balancer = Balancer(self.root / "balancer", free_port(), [s.port for s in started],
                            ping_interval, flood_requests)
        self.balancers.append(balancer)
        return Cluster(balancer.start(), started, store_url)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for balancer in self.balancers:
            balancer.stop()


@pytest.fixture
def cluster(tmp_path):
    """`cluster(users, servers=2)`: start the servers with those users, then the balancer."""
    factory = ClusterFactory(tmp_path)
    yield factory
    factory.close()
    # Shown by pytest only when the test failed: what each process said.
    for server in factory.servers:
        print(f"---- server on port {server.port}\n" + server.logs()[-4000:])
    for balancer in factory.balancers:
        print("---- kamailio\n" + balancer.logs()[-4000:])
