"""strategy_runner service: hosts strategies; md.* in, order requests out, order events back in.

Settings (``services.strategy_runner.settings``): see :mod:`.settings`. Handlers live in
:mod:`.host`; this module only wires them to the service's life.
"""
import asyncio
import sys
from pathlib import Path

from tradebus.bus.service import ServiceContext, service_main
from tradebus.config import DEFAULT_CONFIG, service_section
from tradebus.proto import AccountEvent, ControlMessage, MarketDataEvent, OrderEvent
from tradebus.proto.subjects import account_wildcard, control_wildcard, md_wildcard, order_event_wildcard

from .host import StrategyHost
from .settings import StrategyRunnerSettings

DESCRIPTION = "Strategy runner: hosts strategies on md.* and order events"


async def setup(svc: ServiceContext) -> None:
    settings = service_section(svc.config, "strategy_runner", StrategyRunnerSettings)
    config_dir = Path(svc.args.config).resolve().parent if svc.args.config else DEFAULT_CONFIG.parent
    sys.path[:0] = [p for p in settings.python_path if p not in sys.path]
    host = StrategyHost(svc, settings, config_dir)

    # Every md event is decoded (bad input is counted), then routed to the strategies that trade
    # that symbol; order events and commands only of the hosted strategies (all NATS lets it read).
    await svc.subscribe(md_wildcard(), MarketDataEvent, host.on_market_data)
    for name in host.specs:
        await svc.subscribe(order_event_wildcard(strategy=name), OrderEvent, host.on_order_event)
        await svc.subscribe(control_wildcard(name), ControlMessage, host.on_control)
    for venue in host.mlthon:
        await svc.subscribe(account_wildcard(venue), AccountEvent, host.on_account_event)
    await host.start()
    tasks = [asyncio.create_task(host.run_timers()), asyncio.create_task(host.watch_params()),
             asyncio.create_task(host.report_status(settings.status_interval))]

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await host.stop()

    svc.on_stop(stop)
    svc.message = host.status_line()


def main(argv=None) -> int:
    return service_main("strategy_runner", DESCRIPTION, setup, argv)


if __name__ == "__main__":
    sys.exit(main())
