"""A NATS cluster on loopback: ``size`` embedded nats-server processes joined by routes, JetStream on each.

Node ``i`` (1-based) is named ``<name>-<i>`` and keeps its JetStream store in ``<state_dir>/node-<i>``.
Names and folders are stable, so a cluster started again on the same state folder (even on other
ports) finds its streams: JetStream knows its peers by server name. Clients take :attr:`NatsCluster.url`,
every node's URL comma separated, and fail over between them::

    with NatsCluster(3, state_dir=".state/nats") as cluster:
        bus = await Bus.connect(cluster.url)
        await wait_jetstream(bus.js)                  # tradebus.bus.jetstream: a meta leader is elected

Readiness of JetStream (meta leader, replicated streams current) is asked over the bus, in
:mod:`tradebus.bus.jetstream`; this module only runs the processes.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

from .server import EmbeddedNats, NatsServerError, free_port

__all__ = ["NatsCluster", "MIN_CLUSTER_SIZE"]

MIN_CLUSTER_SIZE = 3  # fewer nodes cannot lose one and keep a JetStream quorum


def _distinct_free_ports(host: str, count: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


class NatsCluster:
    """``size`` nats-server processes on ``host`` routed into the cluster ``name``.

    ``first_port`` (0: any free port) is the client port of node 1; the other client ports and
    all route ports are picked free. ``extra_config`` is appended to every node's config (e.g.
    an ``authorization`` block). A temporary state folder is removed on stop when none is given.
    """

    def __init__(
        self,
        size: int = 3,
        host: str = "127.0.0.1",
        state_dir: str | os.PathLike | None = None,
        first_port: int = 0,
        name: str = "tradebus",
        extra_config: str = "",
        start_timeout: float = 10.0,
    ) -> None:
        if size < MIN_CLUSTER_SIZE:
            raise ValueError(f"a NATS cluster needs at least {MIN_CLUSTER_SIZE} nodes to survive losing one (got {size})")
        self.name = name
        self._own_state = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="tradebus-nats-cluster-"))
        taken = {first_port} if first_port else set()
        client_ports = ([first_port] if first_port else []) + _distinct_free_ports(host, size - len(taken), taken)
        self.route_ports = _distinct_free_ports(host, size, taken | set(client_ports))
        routes = ", ".join(f"nats-route://{host}:{port}" for port in self.route_ports)
        self.nodes = [
            EmbeddedNats(
                host=host,
                port=client_ports[i],
                state_dir=self.state_dir / f"node-{i + 1}",
                server_name=f"{name}-{i + 1}",
                extra_config=f'cluster {{\n  name: "{name}"\n  listen: "{host}:{self.route_ports[i]}"\n'
                             f"  routes: [{routes}]\n}}\n{extra_config}",
                start_timeout=start_timeout,
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's client URL, comma separated (what ``NatsConfig.url`` takes)."""
        return ",".join(node.url for node in self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> EmbeddedNats:
        """The node called ``server_name`` (as JetStream names a stream leader or peer)."""
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(f"no node {server_name!r} in cluster {self.name} ({[n.server_name for n in self.nodes]})")

    def start(self) -> NatsCluster:
        """Start every node; each answers before this returns (the JetStream meta leader may not exist yet)."""
        try:
            for node in self.nodes:
                node.start()
        except NatsServerError:
            self.stop()
            raise
        return self

    def kill(self, node: EmbeddedNats) -> None:
        """SIGKILL ``node`` (a crash: no shutdown, no flush) and reap it; :meth:`restart_exited` brings it back."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def exited(self) -> list[EmbeddedNats]:
        """Nodes that were started and whose process has ended."""
        return [n for n in self.nodes if n.process is not None and n.process.poll() is not None]

    def restart_exited(self) -> list[EmbeddedNats]:
        """Start again every node whose process ended (same name, ports and store); returns them."""
        restarted = self.exited()
        for node in restarted:
            node.process = None
            node.start()
        return restarted

    def stop(self, grace: float = 5.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after ``grace``); removes a temporary state folder."""
        for node in self.nodes:  # signal all first: the nodes shut down side by side
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop(grace)
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
