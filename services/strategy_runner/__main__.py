"""strategy_runner service: hosts strategies; md.* in, order requests out, order events back in."""
import sys

from tradebus.bus.service import ServiceContext, service_main
from tradebus.proto import MarketDataEvent, OrderEvent
from tradebus.proto.subjects import md_wildcard, order_event_wildcard

DESCRIPTION = "Strategy runner: hosts strategies on md.* and order events"


async def setup(svc: ServiceContext) -> None:
    async def on_market_data(event, _msg) -> None:
        svc.counters["md_events"] += 1

    async def on_order_event(event, _msg) -> None:
        svc.counters["order_events"] += 1

    await svc.subscribe(md_wildcard(), MarketDataEvent, on_market_data)
    await svc.subscribe(order_event_wildcard(), OrderEvent, on_order_event)
    svc.message = "no strategies configured"


def main(argv=None) -> int:
    return service_main("strategy_runner", DESCRIPTION, setup, argv)


if __name__ == "__main__":
    sys.exit(main())
