"""``tradebus venues [NAME]``: the configured venues under both spellings (``binance:spot``,
``BINANCE___SPOT``), or one venue's capabilities and rate-limit rules."""
from __future__ import annotations

from tradebus.exchanges import adapter_keys, bt_api_key, load_config


def _summary(key: str) -> str:
    config = load_config(key)
    return (f"{key:<16} {bt_api_key(key):<18} {config.display_name} ({config.venue_type}, {config.asset_type}, "
            f"ccxt {config.ccxt_id})")


def _details(name: str) -> list[str]:
    config = load_config(name)
    caps, feed = config.capabilities, config.capabilities.market_data
    lines = [_summary(config.key),
             f"  orders:      {', '.join(t.value for t in caps.order_types)}"
             f" (modify {caps.modify}, cancel_all {caps.cancel_all}, positions {caps.positions})",
             f"  market data: trades {feed.trades}, book depths {list(feed.book_depths)}, bbo {feed.bbo}, "
             f"bars {', '.join(config.kline_periods) if feed.bars else 'no'}, funding {feed.funding}",
             f"  currencies:  {', '.join(config.legal_currency)}",
             "  rate limits:"]
    for rule in config.limit_rules():
        weights = f", weights {dict(rule.weight_map)}" if rule.weight_map else ""
        header = f", header {rule.header or rule.remaining_header}" if (rule.header or rule.remaining_header) else ""
        lines.append(f"    {rule.name}: {rule.limit:g} per {rule.interval:g}s ({rule.type}, {rule.scope}, "
                     f"weight {rule.weight:g}{weights}, on limit {rule.on_limit}{header})")
    return lines


def run(args) -> int:
    if args.name:
        try:
            print("\n".join(_details(args.name)))
        except ValueError as exc:
            print(exc)
            return 2
        return 0
    for key in adapter_keys():
        print(_summary(key))
    return 0


def register(sub) -> None:
    p = sub.add_parser("venues", help="configured venues (binance:spot or BINANCE___SPOT), their capabilities "
                                      "and rate-limit rules")
    p.add_argument("name", nargs="?", help="a venue in either spelling: show its capabilities and rules")
    p.set_defaults(func=run)
