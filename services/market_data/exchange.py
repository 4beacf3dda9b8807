"""The ccxt.pro instance of one venue, guarded so a message ccxt cannot parse is skipped, not fatal."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ccxt.pro as ccxtpro

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.marketdata.binance_trades import TradeTap

from .settings import VenueSettings

__all__ = ["make_exchange", "guard_messages"]


def guard_messages(exchange, on_bad: Callable[[str], None],
                   take: Callable[[Any, Any], bool] | None = None) -> None:
    """Skip (and report) a venue message ccxt.pro cannot parse.

    In ccxt 4.5.90 an exception out of ``handle_message`` escapes the client's receive callback,
    which then never schedules the next receive: the connection would go silent for good. The
    instance's handler is wrapped (no ccxt code changes) so such a message is counted and skipped.
    ``take`` (a TradeTap's) sees each message first, inside the same guard; True means it kept it.
    """
    handle = exchange.handle_message

    if take is None:
        def handle_message(client, message):
            try:
                return handle(client, message)
            except Exception as exc:
                on_bad(f"{type(exc).__name__}: {exc} in {str(message)[:200]}")
    else:
        def handle_message(client, message):
            try:
                if take(client, message):
                    return None
                return handle(client, message)
            except Exception as exc:
                on_bad(f"{type(exc).__name__}: {exc} in {str(message)[:200]}")
    exchange.handle_message = handle_message


def make_exchange(settings: VenueSettings, on_bad: Callable[[str], None] | None = None,
                  tap: TradeTap | None = None):
    """A ccxt.pro instance; ``tap`` (inside the guard, so its errors are counted too) takes trades first."""
    cls = getattr(ccxtpro, settings.exchange)
    config = {"enableRateLimit": True, "newUpdates": True, **settings.options}
    # ccxt.pro keeps this many trades between two watch returns and drops older ones: the default
    # 1,000 lost half the trades of a 100k/s burst on the generic path
    config["options"] = {"tradesLimit": 20_000, **config.get("options", {})}
    exchange = cls(config)
    if settings.sim_url:
        point_ccxt_at_sim(exchange, settings.sim_url)
    if on_bad is not None:
        if tap is not None:
            tap.attach(exchange)
        guard_messages(exchange, on_bad, tap.take if tap is not None else None)
    elif tap is not None:
        tap.install(exchange)
    return exchange
