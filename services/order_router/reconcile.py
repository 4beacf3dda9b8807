"""Reconciliation: the venue's balances, positions and open orders, at start and after every
stream reconnect. Open orders go through the same path as any venue view (``observe``), so an
order nobody placed through the bus is adopted as ``_external``; an order KV thinks open that the
venue no longer lists open is refreshed from the venue.
"""
from __future__ import annotations

import time

from tradebus.exchanges import VenueAdapter
from tradebus.proto import AssetBalance, Balance, OrderState, Position
from tradebus.proto.subjects import account_subject

__all__ = ["Reconciliation"]


class Reconciliation:
    """Part of OrderRouter: bring its state in line with the venue's."""

    async def reconcile(self) -> None:
        """Balances, positions and open orders from the venue; orders KV thinks open are refreshed."""
        async with self._reconcile_lock:
            self.counters["reconciles"] += 1
            for adapter in self.adapters:
                await self._reconcile_adapter(adapter)

    async def _reconcile_adapter(self, adapter: VenueAdapter) -> None:
        ts = time.time_ns()
        balance = await self._call(adapter, "fetch_balance", adapter.exchange.fetch_balance)
        assets = [AssetBalance(currency=c, free=float(v.get("free") or 0.0), used=float(v.get("used") or 0.0),
                               total=float(v.get("total") or 0.0))
                  for c, v in balance.items() if isinstance(v, dict) and c not in ("info", "free", "used", "total")
                  and v.get("total")]
        await self._publish_core(account_subject(self.venue, "balance"), Balance(venue=self.venue, balances=assets, ts_init=ts))
        for p in await self._call(adapter, "fetch_positions", adapter.fetch_positions):
            if not p.get("symbol"):
                continue
            pos = Position(venue=self.venue, symbol=p["symbol"], qty=venue_position_qty(p),
                           avg_price=float(p.get("entryPrice") or 0.0),
                           unrealized_pnl=float(p.get("unrealizedPnl") or 0.0),
                           leverage=float(p["leverage"]) if p.get("leverage") else None, ts_init=ts)
            await self.store.save_position(pos)
            await self._publish_core(account_subject(self.venue, "position"), pos)
        seen = set()
        for order in await self._call(adapter, "fetch_open_orders", adapter.fetch_open_orders):
            rec = await self.observe(order, adapter, reconciled=True)
            if rec is not None:
                seen.add(rec.status.client_order_id)
        for rec in self.store.open_orders():
            if rec.adapter is adapter and rec.status.client_order_id not in seen \
                    and rec.status.status is not OrderState.NEW:
                await self._refresh(rec)


def venue_position_qty(position: dict) -> float:
    """Signed contracts of a ccxt position structure (short: negative)."""
    contracts = float(position.get("contracts") or 0.0)
    return -contracts if position.get("side") == "short" else contracts
