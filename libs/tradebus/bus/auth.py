"""NATS identities and permissions generated from the deployment file: one home for who may do what.

Every service instance and every strategy gets its own NATS user, allowed to publish and
subscribe only what its role needs (proto/SUBJECTS.md):

- only market_data publishes ``md.>``; only order_router publishes ``ord.evt.>`` and ``acct.>``;
- a strategy (and the strategy_runner hosting it) publishes order requests only on
  ``ord.req.*.<strategy>`` and reads only ``ord.evt.*.<strategy>`` and ``ctl.<strategy>.>``;
- only the operator (the CLI) publishes ``ctl.>``, ``bt.job``, the kill switch
  (``svc.order_router.kill/release``) and any other service command;
- each user's replies arrive under its own inbox prefix ``_INBOX_<user>``, so no user can read
  another's replies; ``$SRV`` requests reach a service only for its own name.

JetStream: each role may create, update and read only the streams it declares or reads
(``$JS.API.STREAM.*.<name>``), create consumers only on those streams and fetch/ack only its own
durable consumer. What NATS subject permissions cannot narrow (the filter of an ephemeral consumer
is in the request body, not the subject) is listed in SUBJECTS.md ("Permissions").

The same generator writes the embedded server's ``authorization`` block (passwords generated into
owner-only files in the state folder, :func:`write_credentials`) and the checked-in
``deploy/k8s/base/nats/auth.conf`` of compose and Kubernetes, where each password is a
``$TRADEBUS_NATS_PW_<USER>`` variable of the server's environment (``python -m tradebus.bus.auth``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import string
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tradebus.bus import jetstream
from tradebus.config import DeploymentConfig, ServiceEntry, load_deployment
from tradebus.proto import subjects

__all__ = [
    "OPERATOR",
    "NatsUser",
    "Permissions",
    "instance_names",
    "nats_users",
    "authorization_block",
    "password_variable",
    "inbox_prefix",
    "write_credentials",
    "operator_credentials",
    "credentials_env",
]

OPERATOR = "operator"
AUTH_DIR = "auth"  # inside the state folder: <user>.password files, owner-only
_SERVICE_MODULE = re.compile(r"tradebus\.services\.([a-z_]+)")
_SAFE_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9]{23,}")


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish and subscribe to; replies to requests it received are allowed."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


@dataclass(frozen=True)
class NatsUser:
    """One NATS identity: a service instance, a strategy, or the operator (``permissions`` None: all)."""

    name: str
    role: str
    permissions: Permissions | None = None


@dataclass
class _Grant:
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)

    def freeze(self) -> Permissions:
        return Permissions(tuple(dict.fromkeys(self.publish)), tuple(dict.fromkeys(self.subscribe)))


def inbox_prefix(user: str) -> str:
    """The reply-subject prefix of ``user`` (its requests' replies and JetStream deliveries)."""
    return f"_INBOX_{subjects.name_token(user, 'user')}"


def password_variable(user: str) -> str:
    """Name of the server-environment variable holding ``user``'s password in the deploy config."""
    return "TRADEBUS_NATS_PW_" + re.sub(r"[^A-Z0-9]", "_", user.upper())


def instance_names(name: str, entry: ServiceEntry, workers: int | None = None) -> list[str]:
    """The instance names ``tradebus up`` gives the replicas of service entry ``name``."""
    replicas = workers if (workers is not None and name == "backtest_worker") else entry.replicas
    return [name] if replicas == 1 else [f"{name}-{i + 1}" for i in range(replicas)]


# --- JetStream API grants ----------------------------------------------------------------------

def _declare(grant: _Grant, streams: Iterable[str]) -> None:
    """Create, update and inspect ``streams`` (what the idempotent declare functions need), and
    read the account info by which a declarer waits for a cluster's meta leader (wait_jetstream)."""
    grant.publish.append("$JS.API.INFO")
    for stream in streams:
        grant.publish += [f"$JS.API.STREAM.{op}.{stream}" for op in ("INFO", "CREATE", "UPDATE")]


def _read(grant: _Grant, stream: str) -> None:
    """Read ``stream`` through unnamed ordered consumers (KV watch, stream replay) and message gets:
    no named consumer, no acks, no deletes, so a reader cannot touch another role's consumers."""
    grant.publish += [
        "$JS.API.STREAM.NAMES", f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}", f"$JS.API.CONSUMER.INFO.{stream}.>", f"$JS.FC.{stream}.>",
    ]


def _durable(grant: _Grant, stream: str, consumer: str) -> None:
    """Create, fetch from and ack the durable ``consumer`` of ``stream``."""
    grant.publish += [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}", f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>", f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", f"$JS.ACK.{stream}.{consumer}.>",
    ]


_ALL_DECLARED = (*jetstream.STREAMS, *(f"KV_{b}" for b in jetstream.KV_BUCKETS),
                 *(f"OBJ_{b}" for b in jetstream.OBJECT_STORES))
"""What ``declare_all`` creates: every service that calls it may create these (and only these)."""


# --- roles -----------------------------------------------------------------------------------

def _service_base(user: str, service: str) -> _Grant:
    """Every service: its own ``svc.<service>.>`` endpoints, ``$SRV`` for its name, its inbox, and
    a ``$SRV.PING`` of its own name (the container HEALTHCHECK and Kubernetes probes run
    ``tradebus health <service>`` under the service's user)."""
    return _Grant(publish=[f"$SRV.PING.{service}"],
                  subscribe=[f"svc.{service}.>", "$SRV.*", f"$SRV.*.{service}", f"$SRV.*.{service}.>",
                             f"{inbox_prefix(user)}.>"])


def _strategy_grant(grant: _Grant, strategy: str, venue: str) -> None:
    """What one strategy may do: its own order requests, events, commands and params; market data."""
    strategy = subjects.name_token(strategy, "strategy")
    grant.publish += [f"ord.req.*.{strategy}", f"$KV.{subjects.KV_STRATEGY_PARAMS}.{subjects.params_key(strategy)}",
                      f"{subjects.service_subject('order_router', 'query')}.{subjects.venue_token(venue)}"]
    grant.subscribe += [subjects.md_wildcard(), subjects.order_event_wildcard(strategy=strategy),
                        f"ctl.{strategy}.>", subjects.account_wildcard(venue)]
    _read(grant, subjects.ORDERS_STREAM)           # restore positions from past fills
    _read(grant, f"KV_{subjects.KV_STRATEGY_PARAMS}")
    _declare(grant, [f"KV_{subjects.KV_STRATEGY_PARAMS}"])


def _strategies(entry: ServiceEntry) -> list[tuple[str, str]]:
    """(name, venue) of each strategy a strategy_runner entry hosts (venue default as in its settings)."""
    return [(s["name"], s.get("venue", "sim")) for s in entry.settings.get("strategies", []) if isinstance(s, Mapping)]


def _role_grant(role: str, user: str, entry: ServiceEntry) -> _Grant:
    grant = _service_base(user, role)
    if role == "market_data":
        grant.publish.append(subjects.md_wildcard())
        record = entry.settings.get("record") or {}
        _declare(grant, [record.get("stream", "MD_RECORD")])   # the JetStream recorder's stream
    elif role == "order_router":
        grant.publish += [subjects.order_event_wildcard(), subjects.account_wildcard(),
                          f"$KV.{subjects.KV_ROUTER_STATE}.>"]
        _declare(grant, _ALL_DECLARED)
        # its durable router_<venue> on ORDERS: the venue may come from an argument, so any consumer
        for prefix in ("$JS.API.CONSUMER.DURABLE.CREATE", "$JS.API.CONSUMER.CREATE", "$JS.API.CONSUMER.INFO",
                       "$JS.API.CONSUMER.MSG.NEXT", "$JS.ACK"):
            grant.publish.append(f"{prefix}.{subjects.ORDERS_STREAM}.>")
        _read(grant, f"KV_{subjects.KV_ROUTER_STATE}")
        grant.publish.append(f"$JS.API.STREAM.PURGE.KV_{subjects.KV_ROUTER_STATE}")  # finished orders' keys
    elif role == "strategy_runner":
        grant.publish.append(subjects.service_subject("strategy_runner", "event"))
        for name, venue in _strategies(entry):
            _strategy_grant(grant, name, venue)
    elif role == "backtest_worker":
        grant.publish += ["bt.result.>", "bt.dead.>"]
        _declare(grant, _ALL_DECLARED)
        _durable(grant, subjects.BT_JOBS_STREAM, subjects.BT_WORKER_CONSUMER)
        _read(grant, f"OBJ_{subjects.OBJECT_BT_DATASETS}")
    elif role != "sim_exchange":
        raise ValueError(f"no NATS permissions defined for service role {role!r}")
    return grant


def nats_users(config: DeploymentConfig, per_instance: bool = True, workers: int | None = None) -> list[NatsUser]:
    """Every NATS user of a deployment: one per enabled service instance (per service entry when
    ``per_instance`` is False: compose and Kubernetes scale replicas that share one secret), one per
    strategy, and the operator."""
    users: list[NatsUser] = []
    for name, entry in config.services.items():
        match = _SERVICE_MODULE.fullmatch(entry.module)
        if not entry.enabled or match is None:
            continue
        role = match.group(1)
        for instance in instance_names(name, entry, workers) if per_instance else [name]:
            users.append(NatsUser(instance, role, _role_grant(role, instance, entry).freeze()))
        if role == "strategy_runner":
            for strategy, venue in _strategies(entry):
                user = f"strategy-{strategy}"
                grant = _Grant(subscribe=[f"{inbox_prefix(user)}.>"])
                _strategy_grant(grant, strategy, venue)
                users.append(NatsUser(user, "strategy", grant.freeze()))
    users.append(NatsUser(OPERATOR, "operator"))
    names = [u.name for u in users]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"NATS user names are not unique: {dup}")
    return users


# --- rendering ---------------------------------------------------------------------------------

def _subject_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in items) + "]"


def authorization_block(users: list[NatsUser], passwords: Mapping[str, str] | None = None) -> str:
    """The nats-server ``authorization`` block. ``passwords`` given: literal values (the embedded
    server's owner-only config); None: ``$TRADEBUS_NATS_PW_<USER>`` references to the server's
    environment (the checked-in deploy config)."""
    lines = ["authorization {", "  users: ["]
    for user in users:
        secret = json.dumps(passwords[user.name]) if passwords is not None else "$" + password_variable(user.name)
        head = f"    {{user: {json.dumps(user.name)}, password: {secret}"
        if user.permissions is None:
            lines.append(head + "}" + f"  # {user.role}: every subject")
            continue
        perms = user.permissions
        # an empty allow list would mean "anything": a role that only answers requests denies all
        publish = _subject_list(perms.publish) if perms.publish else '{deny: [">"]}'
        lines += [head + ", permissions: {  # " + user.role,
                  f"      publish: {publish}",
                  f"      subscribe: {_subject_list(perms.subscribe)}",
                  "      allow_responses: true}}"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def deploy_config_text(config: DeploymentConfig) -> str:
    """The checked-in ``auth.conf`` of compose and Kubernetes for ``config``."""
    header = ("# GENERATED by `python -m tradebus.bus.auth --deploy deploy/compose/deployment.yaml` from the\n"
              "# deployment file: do not edit (a test checks it equals the generator's output). One NATS user\n"
              "# per service, per strategy and the operator, each allowed only its role's subjects\n"
              "# (libs/tradebus/bus/auth.py, proto/SUBJECTS.md). Passwords come from the server's\n"
              "# environment (deploy/compose/make_secrets.py, a Kubernetes Secret).\n")
    return header + authorization_block(nats_users(config, per_instance=False))


# --- credentials on disk -----------------------------------------------------------------------

def _new_password() -> str:
    # a letter first and letters/digits only: a nats-server $VARIABLE must parse as a plain string
    alphabet = string.ascii_letters + string.digits
    return secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(31))


def write_credentials(folder: Path, users: Iterable[str], mode: int = 0o600) -> dict[str, str]:
    """A password file ``<user>.password`` per user in ``folder`` (0700), kept when already valid
    so a restarted stack keeps its credentials; returns user -> password."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    passwords = {}
    for user in users:
        path = folder / f"{user}.password"
        current = path.read_text().strip() if path.is_file() else ""
        if not _SAFE_PASSWORD.fullmatch(current):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w") as out:
                out.write(_new_password() + "\n")
        path.chmod(mode)
        passwords[user] = path.read_text().strip()
    return passwords


def credentials_env(state_dir: Path, user: str) -> dict[str, str]:
    """Environment that makes a child connect as ``user`` (the password by file, never on a command line)."""
    return {"TRADEBUS_NATS_USER": user,
            "TRADEBUS_NATS_PASSWORD_FILE": str((state_dir / AUTH_DIR / f"{user}.password").resolve())}


def operator_credentials(url: str, state_dirs: Iterable[str | os.PathLike]) -> tuple[str, str] | None:
    """(user, password file) of the operator of the local stack serving ``url``: the first state
    folder whose ``nats-url`` names ``url`` and that holds operator credentials."""
    wanted = {u.strip() for u in url.split(",") if u.strip()}
    for state in state_dirs:
        state = Path(state)
        try:
            written = {u.strip() for u in (state / "nats-url").read_text().split(",") if u.strip()}
        except OSError:
            continue
        secret = state / AUTH_DIR / f"{OPERATOR}.password"
        if written & wanted and secret.is_file():
            return OPERATOR, str(secret)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradebus.bus.auth",
                                     description="print the nats-server authorization generated from a deployment file")
    parser.add_argument("--deploy", required=True, help="deployment file (e.g. deploy/compose/deployment.yaml)")
    parser.add_argument("--users", action="store_true", help="print the user names only, one a line")
    args = parser.parse_args(argv)
    config = load_deployment(args.deploy)
    if args.users:
        print("\n".join(u.name for u in nats_users(config, per_instance=False)))
    else:
        sys.stdout.write(deploy_config_text(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
