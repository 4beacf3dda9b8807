"""market_data service: the one place market data enters tradebus (md.<venue>.<symbol>.<kind>)."""
import sys

from tradebus.bus.service import ServiceContext, service_main

DESCRIPTION = "Market data: ccxt.pro streams or replay -> md.* events"


async def setup(svc: ServiceContext) -> None:
    svc.message = "no feeds configured"


def main(argv=None) -> int:
    return service_main("market_data", DESCRIPTION, setup, argv)


if __name__ == "__main__":
    sys.exit(main())
