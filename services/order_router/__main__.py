"""order_router service: order requests -> ccxt calls on one venue account; order events out.

Paper mode is the default: the router trades sim_exchange at ``settings.sim_url`` with the sim's
own account keys. Trading a real venue needs ``--live`` (or TRADEBUS_LIVE=1) plus API keys in the
environment: ``TRADEBUS_<VENUE>_API_KEY``, ``TRADEBUS_<VENUE>_SECRET`` (and ``_PASSWORD`` for OKX).
"""
from __future__ import annotations

import os
import sys

from tradebus.bus.service import ServiceContext, service_main
from tradebus.config import service_section
from tradebus.exchanges import VenueAdapter, load_config, make_adapter
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.execution import RiskEngine

from .router import DESCRIPTION, OrderRouter
from .settings import RouterSettings


def add_arguments(parser) -> None:
    parser.add_argument("--venue", default=None, help="venue account this router owns (default: settings, 'sim')")
    parser.add_argument("--live", action="store_true", default=None,
                        help="trade the real venue (also TRADEBUS_LIVE=1); needs API keys in the environment")
    parser.add_argument("--sim-url", default=None, help="sim_exchange URL in paper mode")
    parser.add_argument("--adapters", default=None,
                        help="comma-separated venue adapters, binance:spot or BINANCE___SPOT (default: settings)")


def _env_prefix(venue: str) -> str:
    return "TRADEBUS_" + "".join(c if c.isalnum() else "_" for c in venue.upper())


def build_adapters(settings: RouterSettings, venue: str, live: bool, sim_url: str,
                   names: tuple[str, ...] | None = None) -> list[VenueAdapter]:
    """The venue adapters ``names`` (default: the settings'), in either spelling."""
    adapters = []
    for key in names or settings.adapters:
        config = load_config(key)
        ccxt_config = {"enableRateLimit": False, "timeout": settings.timeout_ms}
        if live:
            prefix = _env_prefix(venue)
            api_key, secret = os.environ.get(f"{prefix}_API_KEY"), os.environ.get(f"{prefix}_SECRET")
            if not api_key or not secret:
                raise ValueError(f"live trading on {venue} needs {prefix}_API_KEY and {prefix}_SECRET in the environment")
            ccxt_config.update(apiKey=api_key, secret=secret)
            if os.environ.get(f"{prefix}_PASSWORD"):
                ccxt_config["password"] = os.environ[f"{prefix}_PASSWORD"]
            exchange = VenueAdapter.build_exchange(config, sandbox=settings.sandbox, **ccxt_config)
        else:
            ccxt_config.update(apiKey=settings.sim_api_key, secret=settings.sim_secret)
            exchange = point_ccxt_at_sim(VenueAdapter.build_exchange(config, sandbox=False, **ccxt_config), sim_url)
        adapters.append(make_adapter(key, exchange, order_entry=settings.order_entry))
    return adapters


async def setup(svc: ServiceContext) -> None:
    settings = service_section(svc.config, "order_router", RouterSettings)
    venue = svc.args.venue or settings.venue
    live = bool(svc.args.live) or os.environ.get("TRADEBUS_LIVE", "") in ("1", "true", "yes")
    sim_url = svc.args.sim_url or settings.sim_url
    names = tuple(a.strip() for a in svc.args.adapters.split(",") if a.strip()) if svc.args.adapters else None
    adapters = build_adapters(settings, venue, live, sim_url, names)
    mode = (f"LIVE{' (testnet)' if settings.sandbox else ''} account {settings.account!r}" if live
            else f"PAPER against sim_exchange at {sim_url}")
    banner = f"order_router: venue {venue} [{', '.join(a.config.key for a in adapters)}], {mode}"
    print(banner, flush=True)
    svc.log.warning("%s", banner)
    router = OrderRouter(svc.bus, venue, adapters, RiskEngine(settings.risk), settings.router, counters=svc.counters)
    await router.start(svc.service)
    svc.on_stop(router.stop)
    svc.message = banner


def main(argv=None) -> int:
    return service_main("order_router", DESCRIPTION, setup, argv, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
