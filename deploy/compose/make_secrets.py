#!/usr/bin/env python3
"""Write the compose stack's NATS credentials into a secrets folder (default: deploy/compose/secrets).

One random password per NATS user of deploy/k8s/base/nats/auth.conf (generated from the deployment
file by ``python -m tradebus.bus.auth``), twice: ``<user>.password`` for the service's compose secret
(mounted at /run/secrets/nats_password), and ``nats.env`` (the ``$TRADEBUS_NATS_PW_<USER>`` variable
auth.conf names for that user) for the server's environment. Existing passwords are kept, so
re-running changes nothing. The folder is owner-only (0700) and ignored by git; the files are
world-readable inside it so the non-root user of the containers can read its bind-mounted secret.
"""
from __future__ import annotations

import os
import re
import secrets
import string
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
AUTH_CONF = HERE.parent / "k8s" / "base" / "nats" / "auth.conf"
# user -> the server-environment variable auth.conf reads its password from
VARIABLES = dict(re.findall(r'\{user: "([\w-]+)", password: \$(\w+)', AUTH_CONF.read_text()))
USERS = list(VARIABLES)


# nats-server reads $VARIABLE references as config values: a password must parse as a plain
# string (a leading digit makes it a number), hence a letter first and letters and digits only.
SAFE = re.compile(r"[A-Za-z][A-Za-z0-9]{23,}")


def new_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(31))


def write_secrets(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    passwords = {}
    for user in USERS:
        path = folder / f"{user}.password"
        if not path.is_file() or not SAFE.fullmatch(path.read_text().strip()):
            path.write_text(new_password() + "\n")
        path.chmod(0o644)
        passwords[user] = path.read_text().strip()
    env = folder / "nats.env"
    env.write_text("".join(f"{VARIABLES[user]}={pw}\n" for user, pw in passwords.items()))
    env.chmod(0o644)
    return passwords


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TRADEBUS_SECRETS_DIR", HERE / "secrets"))
    write_secrets(target)
    print(f"NATS credentials for {', '.join(USERS)} in {target}")
