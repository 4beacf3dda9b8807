"""market_data service: the one place market data enters tradebus (md.<venue>.<symbol>.<kind>).

Live: ccxt.pro venues from ``services.market_data.settings.venues``. Replay: ``settings.replay``.
Record: ``settings.record``. Control: requests on ``svc.market_data.control`` (ServiceCommand with
command ``add`` / ``remove`` / ``instruments`` / ``list`` and args ``venue``, ``symbols``, ``streams``).
"""
import sys

from tradebus.bus.service import service_main

from .service import setup

DESCRIPTION = "Market data: ccxt.pro streams or replay -> md.* events"


def main(argv=None) -> int:
    return service_main("market_data", DESCRIPTION, setup, argv)


if __name__ == "__main__":
    sys.exit(main())
