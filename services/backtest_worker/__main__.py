"""backtest_worker service: pulls backtest jobs from the BT_JOBS work queue and runs the engine.

    python -m tradebus.services.backtest_worker [--nats-url URL] [--batch N] [--ack-wait S] ...

Settings come from ``services.backtest_worker.settings`` of the deployment file; the flags below
override them. See worker.py for the delivery rules.
"""
import sys

import msgspec

from tradebus.bus.service import ServiceContext, service_main
from tradebus.config import service_section

from .settings import WorkerSettings
from .worker import Worker

DESCRIPTION = "Backtest worker: BT_JOBS work queue -> Cython engine -> BT_RESULTS"

FLAGS = {  # flag -> (settings field, type, help)
    "--batch": ("batch", int, "jobs fetched at once (0: 16 per core)"),
    "--threads": ("threads", int, "engine threads per run_batch (0: all cores)"),
    "--ack-wait": ("ack_wait", float, "seconds before an unacknowledged job is redelivered"),
    "--attempts": ("attempts", int, "runs of a failing job before its dead letter"),
    "--retry-delay": ("retry_delay", float, "seconds before a failed job is redelivered"),
    "--cache-dir": ("cache_dir", str, "dataset cache folder (may be a shared volume)"),
}


def add_arguments(parser) -> None:
    for flag, (dest, type_, help_) in FLAGS.items():
        parser.add_argument(flag, dest=dest, type=type_, default=None, help=help_)


def settings_of(svc: ServiceContext) -> WorkerSettings:
    """The deployment file's settings with the command-line flags applied."""
    settings = service_section(svc.config, "backtest_worker", WorkerSettings)
    overrides = {dest: getattr(svc.args, dest) for dest, _, _ in FLAGS.values() if getattr(svc.args, dest) is not None}
    return msgspec.convert({**msgspec.structs.asdict(settings), **overrides}, WorkerSettings)


async def setup(svc: ServiceContext) -> None:
    await Worker(svc, settings_of(svc)).start()


def main(argv=None) -> int:
    return service_main("backtest_worker", DESCRIPTION, setup, argv, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
