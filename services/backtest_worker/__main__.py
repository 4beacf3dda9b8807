"""backtest_worker service: pulls backtest jobs from the BT_JOBS work queue and runs the engine."""
import sys

from tradebus.bus.service import ServiceContext, service_main

DESCRIPTION = "Backtest worker: BT_JOBS work queue -> Cython engine -> BT_RESULTS"


async def setup(svc: ServiceContext) -> None:
    svc.message = "idle"


def main(argv=None) -> int:
    return service_main("backtest_worker", DESCRIPTION, setup, argv)


if __name__ == "__main__":
    sys.exit(main())
