"""``tradebus up``: the local stack, supervised.

Starts the embedded NATS server (unless ``--nats-url`` names one; ``--cluster 3``: three of them
routed into one cluster, streams and buckets with three replicas, a node that dies started again)
with authentication on (one user per service instance, strategy and the operator, generated into
``<state>/auth``; TLS when the deployment file gives certificates), declares the JetStream streams
and KV buckets, starts every enabled service of the deployment file as a child process, shows
their status live, restarts a child that crashes (with backoff, up to ``max_restarts``) and stops
everything cleanly on Ctrl+C or SIGTERM.

Each child serves Prometheus metrics on its entry's ``metrics_port`` (plus its replica index);
a port already taken is replaced by a free one, and the ports in use are written to
``<state_dir>/prometheus-targets.json`` for Prometheus's ``file_sd_configs`` (see deploy/monitoring).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

import msgspec
import nats.errors

from tradebus.bus import Bus, EmbeddedNats, NatsCluster, NatsConfig, NatsServerError, RequestError, free_port, jetstream
from tradebus.bus.auth import (
    AUTH_DIR,
    OPERATOR,
    authorization_block,
    credentials_env,
    instance_names,
    nats_users,
    write_credentials,
)
from tradebus.bus.jetstream import wait_replicated
from tradebus.bus.server import tls_config
from tradebus.config import DEFAULT_CONFIG, ConfigError, DeploymentConfig, load_deployment
from tradebus.logs import message_of, use_log_format
from tradebus.proto import ServiceCommand, ServiceStatus
from tradebus.proto.subjects import service_subject
from tradebus.supervisor import ChildSpec, Supervisor

log = logging.getLogger("tradebus.up")

URL_FILE = "nats-url"
TARGETS_FILE = "prometheus-targets.json"


class MetricsTarget(NamedTuple):
    service: str
    instance: str
    port: int


def child_specs(config: DeploymentConfig, config_path: str, url: str, only: set[str] | None,
                workers: int | None, env: dict[str, dict[str, str]] | None = None
                ) -> tuple[list[ChildSpec], list[MetricsTarget]]:
    """The children to start (``env``: instance -> variables carrying its credentials) and the
    metrics endpoint each one is given."""
    specs, targets = [], []
    taken: set[int] = set()
    for name, entry in config.services.items():
        if not entry.enabled or (only and name not in only):
            continue
        for i, instance in enumerate(instance_names(name, entry, workers)):
            argv = [sys.executable, "-m", entry.module, "--config", config_path, "--nats-url", url, "--instance", instance]
            if entry.metrics_port and config.metrics.enabled:
                port = metrics_port(config.metrics.host, entry.metrics_port + i, taken)
                argv += ["--metrics-port", str(port)]
                targets.append(MetricsTarget(name, instance, port))
            specs.append(ChildSpec(name=instance, argv=argv + list(entry.args), env=(env or {}).get(instance, {})))
    return specs, targets


def metrics_port(host: str, wanted: int, taken: set[int]) -> int:
    """``wanted`` when free on ``host`` and not handed out yet, else a free port; recorded in ``taken``."""
    port = wanted if wanted not in taken and _port_free(host, wanted) else free_port(host)
    while port in taken:
        port = free_port(host)
    taken.add(port)
    return port


def write_targets(path: Path, host: str, targets: list[MetricsTarget]) -> None:
    """The metrics endpoints as a Prometheus file_sd file (labels: service, instance_name)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    groups = [{"targets": [f"{host}:{t.port}"], "labels": {"service": t.service, "instance_name": t.instance}}
              for t in targets]
    path.write_text(json.dumps(groups, indent=1) + "\n")


def secure_server_config(config: DeploymentConfig, state_dir: Path, workers: int | None) -> tuple[str, dict[str, dict[str, str]]]:
    """The embedded server's authorization (and TLS) configuration, and each user's environment.

    Passwords are generated into ``<state>/auth/<user>.password`` (0600, kept across runs); a child
    gets its user name and password file by environment, never on its command line.
    """
    emb = config.embedded_nats
    extra, env = "", {}
    if emb.auth:
        users = nats_users(config, workers=workers)
        passwords = write_credentials(state_dir / AUTH_DIR, [u.name for u in users])
        extra = authorization_block(users, passwords)
        env = {u.name: credentials_env(state_dir, u.name) for u in users}
    if emb.tls_cert_file and emb.tls_key_file:
        extra += tls_config(emb.tls_cert_file, emb.tls_key_file, emb.tls_ca_file) + "\n"
    return extra, env


def operator_nats_config(config: DeploymentConfig, url: str, env: dict[str, dict[str, str]]) -> NatsConfig:
    """How ``tradebus up`` itself connects: the deployment's settings (TLS) as the operator."""
    nats_config = msgspec.structs.replace(config.nats, url=url, name="tradebus-up")
    operator = env.get(OPERATOR)
    if operator:
        nats_config = msgspec.structs.replace(nats_config, user=OPERATOR,
                                              password_file=operator["TRADEBUS_NATS_PASSWORD_FILE"])
    return nats_config


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def render(sup: Supervisor, answering: dict[str, int], started: float) -> str:
    parts = []
    for name, state, _pid, restarts, _ in sup.summary():
        service = name.rsplit("-", 1)[0] if name[-1].isdigit() and "-" in name else name
        mark = "ok" if state == "running" and answering.get(service, 0) else state
        parts.append(f"{name}:{mark}" + (f"(r{restarts})" if restarts else ""))
    return f"[{time.monotonic() - started:6.0f}s] " + "  ".join(parts)


async def service_messages(bus: Bus, names: list[str]) -> list[str]:
    """The status message of each named service that answers (e.g. the strategies' orders, fills, PnL)."""
    lines = []
    for name in names:
        try:
            status = await bus.request(service_subject(name, "status"), ServiceCommand(service=name, command="status"),
                                       ServiceStatus, timeout=0.5)
        except (TimeoutError, RequestError, Exception):
            continue
        if status.message:
            lines.append(f"{name}: {status.message}")
    return lines


def logged_summaries(log_dir: Path, names: list[str]) -> list[str]:
    """The ``summary:`` lines a service logged while stopping (its last run only)."""
    lines = []
    for name in names:
        for path in sorted(log_dir.glob(f"{name}*.log")):
            text = [message_of(line) for line in path.read_text(errors="replace").splitlines()]
            start = max((i for i, line in enumerate(text) if " running (instance " in line), default=0)
            lines += [line.split("summary: ", 1)[1] for line in text[start:] if "summary: " in line]
    return lines


def cluster_replicas(config: DeploymentConfig, nodes: int) -> int:
    """JetStream replicas on an embedded cluster of ``nodes``: the deployment's ``nats.stream_replicas``
    when it sets more than one, else 3 (JetStream's usual choice: survives losing one node)."""
    wanted = config.nats.stream_replicas if config.nats.stream_replicas > 1 else min(nodes, 3)
    if wanted > nodes:
        raise ConfigError(f"nats.stream_replicas is {wanted} but the embedded cluster has only {nodes} nodes")
    return wanted


def start_cluster(config: DeploymentConfig, nodes: int, state_dir: Path, extra_config: str = "") -> NatsCluster:
    """The embedded cluster: node 1 on the deployment's port when free, JetStream stores in
    ``<state_dir>/nats/node-<i>``. Started on this (main) thread: the nodes' parent-death signal follows it."""
    emb = config.embedded_nats
    first = emb.port if emb.port and _port_free(emb.host, emb.port) else 0
    cluster = NatsCluster(nodes, host=emb.host, state_dir=state_dir / "nats", first_port=first,
                          extra_config=extra_config).start()
    print(f"nats cluster (embedded, {nodes} nodes) on {cluster.url}, JetStream in {cluster.state_dir}/node-*", flush=True)
    return cluster


async def declare_replicated(bus: Bus, timeout: float) -> None:
    """Declare every stream with ``bus.stream_replicas`` replicas once the meta leader is elected,
    and wait until each has a leader and current replicas: services start on a ready cluster."""
    started = time.monotonic()
    try:
        await jetstream.declare_all(bus.js, replicas=bus.stream_replicas, ready_timeout=timeout)
    except nats.errors.Error as exc:
        raise TimeoutError(f"declaring the replicated streams failed: {exc}") from None
    await wait_replicated(bus.js, timeout=max(1.0, timeout - (time.monotonic() - started)))


def supervise_nodes(cluster: NatsCluster, restarts: dict[str, int], max_restarts: int) -> None:
    """Start again a cluster node whose process ended (up to ``max_restarts`` times each)."""
    for node in cluster.exited():
        if restarts.get(node.server_name, 0) >= max_restarts:
            continue
        code = node.process.returncode if node.process else None
        restarts[node.server_name] = restarts.get(node.server_name, 0) + 1
        node.process = None
        try:
            node.start()
            print(f"\nnats node {node.server_name} exited ({code}); restarted on {node.url}", flush=True)
        except NatsServerError as exc:
            print(f"\nnats node {node.server_name} exited ({code}) and did not restart: {exc}", flush=True)


async def up(args) -> int:
    try:
        config = load_deployment(args.config)
    except ConfigError as exc:
        print(f"tradebus up: {exc}", file=sys.stderr)
        return 2
    use_log_format(config.logging.format)
    config_path = str(Path(args.config).resolve()) if args.config else str(DEFAULT_CONFIG)
    state_dir = Path(args.state_dir or config.embedded_nats.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)

    server = None
    cluster: NatsCluster | None = None
    nodes = args.cluster or config.embedded_nats.nodes
    if nodes > 1 and args.nats_url:
        print("tradebus up: --cluster starts embedded servers; leave out --nats-url", file=sys.stderr)
        return 2
    try:
        replicas = cluster_replicas(config, nodes) if nodes > 1 else config.nats.stream_replicas
        if replicas > 1 and nodes == 1 and not args.nats_url:
            raise ConfigError(f"nats.stream_replicas is {replicas} but the embedded server is a single node "
                              f"(use --cluster {max(3, replicas)})")
    except ConfigError as exc:
        print(f"tradebus up: {exc}", file=sys.stderr)
        return 2
    url = args.nats_url
    env: dict[str, dict[str, str]] = {}
    if nodes > 1:
        try:
            extra, env = secure_server_config(config, state_dir, args.workers)
            cluster = start_cluster(config, nodes, state_dir, extra)
        except (ValueError, NatsServerError) as exc:
            print(f"tradebus up: {exc}", file=sys.stderr)
            return 2
        url = cluster.url
    elif not url:
        emb = config.embedded_nats
        port = emb.port if emb.port and _port_free(emb.host, emb.port) else free_port(emb.host)
        try:
            extra, env = secure_server_config(config, state_dir, args.workers)
        except ValueError as exc:
            print(f"tradebus up: {exc}", file=sys.stderr)
            return 2
        server = EmbeddedNats(host=emb.host, port=port, state_dir=state_dir / "nats", extra_config=extra)
        server.start()  # on this (main) thread: the server's parent-death signal follows it
        url = server.url
        print(f"nats-server (embedded) on {url}, JetStream in {server.state_dir}"
              + (f", one user per service and strategy (credentials in {state_dir / AUTH_DIR})" if env else ""),
              flush=True)
    (state_dir / URL_FILE).write_text(url + "\n")

    # one bounded attempt (a --nats-url that does not answer is one line, as in every command)
    bus = await Bus.connect(operator_nats_config(config, url, env), retry_first_connect=False)
    bus.stream_replicas = replicas
    if cluster:
        try:
            await declare_replicated(bus, timeout=args.cluster_timeout)
        except TimeoutError as exc:
            print(f"tradebus up: the NATS cluster did not get ready: {exc}", file=sys.stderr)
            await bus.close()
            cluster.stop()
            return 1
        print(f"JetStream ready: meta leader elected, streams and buckets with {replicas} replicas current", flush=True)
    else:
        await bus.declare_all()
    if replicas > 1:  # what the services declare themselves gets the replicas too (children inherit it)
        os.environ["TRADEBUS_JS_REPLICAS"] = str(replicas)
    only = set(args.only.split(",")) if args.only else None
    specs, targets = child_specs(config, config_path, url, only, args.workers, env)
    write_targets(state_dir / TARGETS_FILE, config.metrics.host, targets)
    sup = Supervisor(specs, config.supervisor, log_dir=None if args.foreground_logs else str(state_dir / "logs"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    started = time.monotonic()
    await sup.start()
    if not args.foreground_logs:
        print(f"services: {', '.join(s.name for s in specs)} (logs in {state_dir / 'logs'})", flush=True)
    if targets:
        print(f"metrics: {len(targets)} /metrics endpoints from port {min(t.port for t in targets)} "
              f"(Prometheus targets in {state_dir / TARGETS_FILE})", flush=True)
    tty = sys.stdout.isatty()
    last_line = ""
    last_watched: dict[str, str] = {}
    watch = [name for name in (args.watch.split(",") if args.watch else []) if name in config.services]
    node_restarts: dict[str, int] = {}
    try:
        while not stop.is_set():
            if cluster:
                supervise_nodes(cluster, node_restarts, config.supervisor.max_restarts)
            pings = await bus.discover("PING", timeout=0.3)
            answering: dict[str, int] = {}
            for p in pings:
                answering[p["name"]] = answering.get(p["name"], 0) + 1
            line = render(sup, answering, started)
            watched = await service_messages(bus, watch) if watch else []
            if tty:
                print("\r" + line.ljust(len(last_line)), end="", flush=True)
                for extra in watched:
                    print("\n  " + extra, end="", flush=True)
                if watched:
                    print(f"\x1b[{len(watched)}A", end="", flush=True)  # back up to the status line
            else:
                if line.split("] ", 1)[1] != last_line.split("] ", 1)[-1]:
                    print(line, flush=True)
                for extra in watched:
                    if extra != last_watched.get(extra.split(":", 1)[0]):
                        print("  " + extra, flush=True)
                last_watched = {extra.split(":", 1)[0]: extra for extra in watched}
            last_line = line
            if args.duration and time.monotonic() - started >= args.duration:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.status_interval)
            except TimeoutError:
                pass
    finally:
        if tty:
            print("\n" * (len(watch) + 1), end="")
        print("stopping services...", flush=True)
        await sup.stop()
        await bus.close()
        if server:
            await asyncio.to_thread(server.stop)
        if cluster:
            cluster.stop()  # on this thread, like start
        for name, state, _pid, restarts, code in sup.summary():
            print(f"  {name:<20} {state:<8} restarts={restarts} exit={code}")
        if watch and not args.foreground_logs:
            summaries = logged_summaries(state_dir / "logs", watch)
            if summaries:
                print("summary:")
                for line in summaries:
                    print(f"  {line}")
        print("stopped.", flush=True)
    return 0


def run(args) -> int:
    return asyncio.run(up(args))


def register(sub) -> None:
    p = sub.add_parser("up", help="run the local stack (embedded NATS + all services)")
    p.add_argument("--config", help="deployment file (default: the packaged local.yaml)")
    p.add_argument("--nats-url", help="use this NATS server instead of starting the embedded one")
    p.add_argument("--state-dir", help="folder for JetStream data, logs and the nats-url file (default: .state)")
    p.add_argument("--only", help="comma-separated service names to start")
    p.add_argument("--workers", type=int, help="number of backtest_worker processes")
    p.add_argument("--cluster", type=int, metavar="N", help="run N embedded nats-servers as one cluster (3: streams "
                   "and buckets get 3 replicas; default: embedded_nats.nodes of the deployment, 1)")
    p.add_argument("--cluster-timeout", type=float, default=60.0,
                   help="seconds to wait for the cluster's meta leader and replicated streams")
    p.add_argument("--foreground-logs", action="store_true", help="children log to this terminal instead of files")
    p.add_argument("--status-interval", type=float, default=1.0)
    p.add_argument("--watch", default="strategy_runner",
                   help="comma-separated services whose status message is shown live (default: strategy_runner)")
    p.add_argument("--duration", type=float, default=0.0, help="stop by itself after this many seconds (0: run until Ctrl+C)")
    p.set_defaults(func=run)
