"""``tradebus farm --docker N STUDY ...``: a study on N backtest_worker containers it starts itself.

    tradebus farm --docker 4 sweep --grid fast=5:50:5 slow=20:200:10
    tradebus farm --docker 2 --network tradebus_default --worker-nats-url nats://nats:4222 \\
        --nats-url nats://127.0.0.1:4222 permutation --n 200

Through the Docker API at ``$DOCKER_HOST`` (the ``docker`` SDK; Docker or ``podman system
service``) it starts N containers of the tradebus image running ``backtest_worker``, runs the
study exactly as ``tradebus study`` does (queue the jobs, follow them, write the results), watches
the workers meanwhile (a worker that stops is reported and replaced, up to N times in all) and
removes every container it started when the study ends, fails, or on Ctrl+C.
"""
from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field

from tradebus.cli import study
from tradebus.cli.connect import bus_url, require_bus

log = logging.getLogger("tradebus.farm")

DEFAULT_IMAGE = "tradebus:latest"
LABEL = "io.tradebus.farm"
SECRET_PATH = "/run/secrets/nats_password"


class FarmError(RuntimeError):
    """The Docker host is unreachable, or the image or network is missing."""


@dataclass
class WorkerSpec:
    """How to start one worker container: image, network, NATS URL and credentials as seen inside."""

    image: str
    nats_url: str
    network: str | None = None
    user: str | None = None
    password_file: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def run_kwargs(self, farm_id: str, index: int) -> dict:
        environment = dict(self.env)
        environment["TRADEBUS_NATS_URL"] = self.nats_url
        volumes = {}
        if self.user:
            environment["TRADEBUS_NATS_USER"] = self.user
        if self.password_file:
            volumes[self.password_file] = {"bind": SECRET_PATH, "mode": "ro"}
            environment["TRADEBUS_NATS_PASSWORD_FILE"] = SECRET_PATH
        return {
            "image": self.image,
            "command": ["backtest_worker"],
            "name": f"tradebus-farm-{farm_id}-{index}",
            "hostname": f"farm-{farm_id}-{index}",
            "environment": environment,
            "volumes": volumes,
            "network": self.network,
            "labels": {LABEL: farm_id},
            "detach": True,
        }


class Farm:
    """N worker containers on a Docker-API host, watched from a thread, removed on ``stop``."""

    def __init__(self, client, spec: WorkerSpec, size: int, poll: float = 2.0) -> None:
        self.client = client
        self.spec = spec
        self.size = size
        self.poll = poll
        self.farm_id = secrets.token_hex(3)
        self.containers: list = []
        self.started = 0
        self.replaced = 0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _start_one(self):
        import docker.errors

        try:
            container = self.client.containers.run(**self.spec.run_kwargs(self.farm_id, self.started))
        except docker.errors.ImageNotFound as exc:
            raise FarmError(f"image {self.spec.image} not found on the Docker host (build it: make image)") from exc
        except docker.errors.NotFound as exc:
            raise FarmError(f"cannot start a worker: {exc.explanation or exc}") from exc
        except docker.errors.APIError as exc:
            raise FarmError(f"the Docker host refused a worker: {exc.explanation or exc}") from exc
        self.started += 1
        self.containers.append(container)
        return container

    def start(self) -> None:
        for _ in range(self.size):
            self._start_one()
        log.info("farm %s: %d backtest_worker containers started (%s)", self.farm_id, self.size,
                 ", ".join(c.name for c in self.containers))
        self._watcher = threading.Thread(target=self._watch, name="farm-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Report a worker that stopped and start another in its place (at most ``size`` times)."""
        import docker.errors

        while not self._stop.wait(self.poll):
            for container in list(self.containers):
                try:
                    container.reload()
                except docker.errors.NotFound:
                    status, code = "removed", None
                else:
                    if container.status not in ("exited", "dead"):
                        continue
                    status, code = container.status, container.attrs.get("State", {}).get("ExitCode")
                if self._stop.is_set():
                    return
                self.containers.remove(container)
                self._remove(container)
                if self.replaced >= self.size:
                    log.warning("farm %s: worker %s %s (exit %s); no replacement left", self.farm_id,
                                container.name, status, code)
                    continue
                self.replaced += 1
                try:
                    new = self._start_one()
                except FarmError as exc:
                    log.error("farm %s: worker %s %s and no replacement could start: %s", self.farm_id,
                              container.name, status, exc)
                    continue
                log.warning("farm %s: worker %s %s (exit %s); replaced by %s", self.farm_id, container.name,
                            status, code, new.name)

    def _remove(self, container) -> None:
        import docker.errors

        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log.error("farm %s: cannot remove %s: %s", self.farm_id, container.name, exc)

    def stop(self) -> None:
        """Stop watching and remove every container this farm started (also any left by a race)."""
        self._stop.set()
        if self._watcher:
            self._watcher.join(timeout=self.poll + 10)
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.farm_id}"}):
            self._remove(container)
        self.containers.clear()
        log.info("farm %s: workers removed", self.farm_id)


def docker_client():
    """A client for ``$DOCKER_HOST`` (or the default socket), checked with a ping."""
    import docker
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise FarmError(f"no Docker API at $DOCKER_HOST: {exc} (podman: `podman system service` gives one)") from exc
    return client


def run(args) -> int:
    if args.docker < 1:
        print("tradebus farm: --docker needs at least one worker")
        return 2
    spec = WorkerSpec(image=args.image, nats_url=args.worker_nats_url or bus_url(args) or "nats://nats:4222",
                      network=args.network, user=args.worker_user, password_file=args.worker_password_file,
                      env=dict(item.split("=", 1) for item in args.worker_env or []))
    try:
        client = docker_client()
    except FarmError as exc:
        print(f"tradebus farm: {exc}")
        return 1
    require_bus(bus_url(args), "tradebus-farm")  # before any container starts
    farm = Farm(client, spec, args.docker)
    try:
        farm.start()
        return study.run(args)
    except FarmError as exc:
        print(f"tradebus farm: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        farm.stop()


def register(sub) -> None:
    p = sub.add_parser("farm", help="run a study on N backtest_worker containers (Docker API), removed after")
    p.add_argument("--docker", type=int, required=True, metavar="N", help="number of worker containers")
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"tradebus image (default: {DEFAULT_IMAGE})")
    p.add_argument("--network", help="Docker network to attach the workers to (e.g. the compose project's)")
    p.add_argument("--worker-nats-url", help="NATS URL as the workers see it (default: --nats-url)")
    p.add_argument("--worker-user", help="NATS user of the workers")
    p.add_argument("--worker-password-file", help="file holding that user's password, mounted read-only")
    p.add_argument("--worker-env", action="append", metavar="KEY=VALUE", help="extra worker environment")
    kinds = p.add_subparsers(dest="study_command", metavar="STUDY", required=True)
    study.add_study_kinds(kinds)
    p.set_defaults(func=run)
