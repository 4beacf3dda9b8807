"""Account queries: what the venue says about the account, on request (AccountQuery).

Answers MLThon's fetch_* (and anyone else's) on ``svc.order_router.query.<venue>``: the account
name, a wallet balance, positions, the funding rate, and the router's own view of orders.
Venue calls go through ccxt's unified methods (fetch_balance, fetch_positions,
fetch_funding_rate); a market with no such thing (funding or positions on spot) is answered
``unsupported``, a venue error ``ok=False`` with the reason.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import ccxt.async_support as ccxt

from tradebus.proto import AccountQuery, AccountSnapshot, AssetBalance, OrderStatus, Position, QueryKind

__all__ = ["answer_query"]


async def answer_query(query: AccountQuery, *, venue: str, account: str, adapters: Iterable[Any],
                       adapter_for: Callable[[str], Any], orders: Callable[[str | None, str | None], list[OrderStatus]],
                       call: Callable[..., Awaitable[Any]]) -> AccountSnapshot:
    """The AccountSnapshot answering ``query``.

    ``adapters``: the router's venue adapters; ``adapter_for(symbol)``: the one trading a symbol
    (None if none); ``orders(strategy, symbol)``: the router's view of open orders;
    ``call(adapter, method, fn, *args)``: the router's rate-limited venue call.
    """
    now = time.time_ns()

    def snapshot(**fields) -> AccountSnapshot:
        return AccountSnapshot(venue=venue, kind=query.kind, ts_init=now, **fields)

    if query.venue != venue:
        return snapshot(ok=False, error=f"this router trades {venue}, not {query.venue}")
    try:
        match query.kind:
            case QueryKind.ACCOUNT:
                return snapshot(account=account)
            case QueryKind.WALLET:
                balances: dict[str, AssetBalance] = {}
                for adapter in adapters:
                    raw = await call(adapter, "fetch_balance", adapter.exchange.fetch_balance)
                    for currency, total in (raw.get("total") or {}).items():
                        if query.coin and currency.upper() != query.coin.upper():
                            continue
                        free = float((raw.get("free") or {}).get(currency) or 0.0)
                        used = float((raw.get("used") or {}).get(currency) or 0.0)
                        prev = balances.get(currency)
                        total = float(total or 0.0) + (prev.total if prev else 0.0)
                        balances[currency] = AssetBalance(currency=currency, free=free + (prev.free if prev else 0.0),
                                                          used=used + (prev.used if prev else 0.0), total=total)
                return snapshot(balances=list(balances.values()))
            case QueryKind.POSITION:
                adapter = _adapter(adapter_for, query.symbol)
                market = adapter.exchange.market(query.symbol)
                if market.get("spot"):
                    return snapshot(unsupported=True, error=f"{query.symbol} is spot: it has no position")
                raw = await call(adapter, "fetch_positions", adapter.exchange.fetch_positions, [query.symbol])
                return snapshot(positions=[_position(venue, p, now) for p in raw if p.get("symbol") == query.symbol])
            case QueryKind.FUNDING:
                adapter = _adapter(adapter_for, query.symbol)
                market = adapter.exchange.market(query.symbol)
                if not (market.get("swap") or market.get("future")) or not adapter.exchange.has.get("fetchFundingRate"):
                    return snapshot(unsupported=True, error=f"{query.symbol} has no funding rate")
                raw = await call(adapter, "fetch_funding_rate", adapter.exchange.fetch_funding_rate, query.symbol)
                next_ts = raw.get("fundingTimestamp") or raw.get("nextFundingTimestamp") or 0
                return snapshot(funding_rate=float(raw.get("fundingRate") or 0.0), next_funding_ts=int(next_ts) * 1_000_000)
            case QueryKind.ORDER | QueryKind.OPEN_ORDERS:
                found = orders(query.strategy or None, query.symbol or None)
                if query.kind == QueryKind.ORDER:
                    found = [o for o in found if o.client_order_id == query.client_order_id]
                return snapshot(orders=found)
    except LookupError as exc:
        return snapshot(ok=False, error=str(exc.args[0]) if exc.args else str(exc))
    except ccxt.NotSupported as exc:
        return snapshot(unsupported=True, error=str(exc))
    except ccxt.BaseError as exc:
        return snapshot(ok=False, error=f"{type(exc).__name__}: {exc}")
    return snapshot(ok=False, error=f"unknown query kind {query.kind!r}")


def _adapter(adapter_for, symbol: str):
    adapter = adapter_for(symbol) if symbol else None
    if adapter is None:
        raise LookupError(f"this router does not trade {symbol!r}")
    return adapter


def _position(venue: str, raw: dict, now: int) -> Position:
    contracts = float(raw.get("contracts") or 0.0) * float(raw.get("contractSize") or 1.0)
    qty = -contracts if raw.get("side") == "short" else contracts
    return Position(venue=venue, symbol=raw["symbol"], qty=qty, avg_price=float(raw.get("entryPrice") or 0.0),
                    unrealized_pnl=float(raw.get("unrealizedPnl") or 0.0),
                    leverage=None if raw.get("leverage") is None else float(raw["leverage"]), ts_init=now)
