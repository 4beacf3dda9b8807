"""Accounts of the sim venue: spot wallets (free/locked per asset), the USD-M wallet and
positions, and what orders do to them: reserving and releasing spot funds, the margin check,
reduce-only caps, settling fills, and reporting changed balances."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

from .records import BUY, SELL, SPOT, USDM, ZERO, Fill, Instrument, Order, SimError, q8

__all__ = ["Position", "Account", "Accounts"]


@dataclass(slots=True, eq=False)
class Position:
    amount: Decimal = ZERO  # signed, one-way mode
    entry: Decimal = ZERO
    update_time: int = 0


class Account:
    """One API key: a spot wallet (free/locked per asset), a USD-M wallet and positions."""

    def __init__(self, api_key: str, secret: str, spot: dict[str, Decimal], futures: dict[str, Decimal],
                 leverage: int):
        self.api_key, self.secret = api_key, secret
        self.spot: dict[str, list[Decimal]] = {a: [v, ZERO] for a, v in spot.items()}
        self.futures: dict[str, Decimal] = dict(futures)
        self.default_leverage = leverage
        self.leverage: dict[str, int] = {}
        self.positions: dict[str, Position] = {}
        self.orders: dict[tuple[str, int], Order] = {}
        self.algo_orders: dict[int, Order] = {}
        self.by_client: dict[tuple[str, str], Order] = {}
        self.open: dict[str, dict[int, Order]] = {SPOT: {}, USDM: {}}
        self.open_algo: dict[int, Order] = {}
        self.fills: dict[str, list[Fill]] = {SPOT: [], USDM: []}
        self.dirty_spot: set[str] = set()
        self.dirty_futures: set[str] = set()  # symbols whose position changed
        self.dirty_wallet = False

    def asset(self, name: str) -> list[Decimal]:
        return self.spot.setdefault(name, [ZERO, ZERO])

    def position(self, symbol: str) -> Position:
        return self.positions.setdefault(symbol, Position())

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.default_leverage)


class Accounts:
    """The Engine's account methods (a mixin: ``self`` is the Engine)."""

    # spot funds --------------------------------------------------------------

    def _reserve_spot(self, order: Order) -> None:
        inst, acct = order.inst, order.account
        if order.side == SELL:
            need_asset = inst.base
            if order.type == "MARKET" and order.quote_qty:
                need = self._sweep_qty_for_quote(order)
            else:
                need = order.qty
        else:
            need_asset = inst.quote
            if order.type == "MARKET":
                need = order.quote_qty if order.quote_qty else self._sweep_cost(order)
            elif order.price is not None:
                need = q8(order.price * order.qty, ROUND_UP)
            else:
                need = ZERO  # stop-market buy: funds are checked when it triggers
        wallet = acct.asset(need_asset)
        if need > wallet[0]:
            raise SimError(-2010, "Account has insufficient balance for requested action.")
        if need:
            wallet[0] -= need
            wallet[1] += need
            acct.dirty_spot.add(need_asset)
        order.locked = need

    def _spend_asset(self, order: Order) -> str:
        return order.inst.quote if order.side == BUY else order.inst.base

    def _release(self, order: Order, amount: Decimal | None = None) -> None:
        amount = order.locked if amount is None else amount
        if amount <= 0:
            return
        asset = self._spend_asset(order)
        wallet = order.account.asset(asset)
        wallet[1] -= amount
        wallet[0] += amount
        order.locked -= amount
        order.account.dirty_spot.add(asset)

    def _sweep_cost(self, order: Order) -> Decimal:
        """Quote a market buy would spend now (what the book can fill; the rest expires)."""
        plan = self._plan(order, None, order.qty, None)
        return sum((q8(level.price * qty) for level, qty, _ in plan), ZERO)

    def _sweep_qty_for_quote(self, order: Order) -> Decimal:
        plan = self._plan(order, None, order.inst.max_qty, order.quote_qty)
        return sum((qty for _, qty, _ in plan), ZERO)

    # futures margin ----------------------------------------------------------

    def futures_state(self, acct: Account) -> dict[str, Decimal]:
        """Wallet, unrealized PnL, margins and available balance of the USD-M account (USDT)."""
        wallet = acct.futures.get("USDT", ZERO)
        unrealized = position_im = ZERO
        for symbol, pos in acct.positions.items():
            if not pos.amount:
                continue
            inst = self.instruments[(USDM, symbol)]
            mark = self.mark_price(inst)
            unrealized += pos.amount * (mark - pos.entry)
            position_im += abs(pos.amount) * mark / acct.leverage_of(symbol)
        order_im = ZERO
        for order in acct.open[USDM].values():
            if not order.reduce_only and order.price is not None:
                order_im += order.price * order.remaining / acct.leverage_of(order.inst.symbol)
        margin_balance = wallet + unrealized
        available = margin_balance - position_im - order_im
        return {"wallet": wallet, "unrealized": unrealized, "position_im": position_im,
                "order_im": order_im, "margin_balance": margin_balance, "available": available}

    def _check_margin(self, order: Order) -> None:
        inst, acct = order.inst, order.account
        pos = acct.position(inst.symbol)
        reduces = pos.amount and ((pos.amount > 0) == (order.side == SELL))
        if order.reduce_only and not order.conditional and not reduces:
            raise SimError(-2022, "ReduceOnly Order is rejected.")
        if order.reduce_only or order.close_position or order.conditional:
            return
        qty = order.qty
        increase = max(ZERO, qty - abs(pos.amount)) if reduces else qty
        if not increase:
            return
        ref = order.price if order.price is not None else self._best_opposite(order) or self.mark_price(inst)
        required = ref * increase / acct.leverage_of(inst.symbol)
        if required > self.futures_state(acct)["available"]:
            raise SimError(-2019, "Margin is insufficient.")

    def _cap_reduce_only(self, order: Order, qty: Decimal) -> Decimal:
        """Reduce-only and close-position orders never trade more than the position they close."""
        if not (order.reduce_only or order.close_position):
            return qty
        pos = order.account.position(order.inst.symbol)
        if not pos.amount or (pos.amount > 0) == (order.side == BUY):
            return ZERO
        return min(qty, abs(pos.amount))

    def _settle(self, order: Order, price: Decimal, qty: Decimal, quote: Decimal, is_maker: bool,
                now: int) -> tuple[Decimal, str, Decimal]:
        """Move a fill's money: spot balances, or the USD-M position and wallet. Returns the
        commission, its asset and the realized PnL."""
        inst, acct = order.inst, order.account
        rate = inst.maker_fee if is_maker else inst.taker_fee
        realized = ZERO
        if inst.market == SPOT:
            if order.side == BUY:
                spend = acct.asset(inst.quote)
                spend[1] -= quote
                order.locked -= quote
                commission, commission_asset = q8(qty * rate), inst.base
                acct.asset(inst.base)[0] += qty - commission
            else:
                spend = acct.asset(inst.base)
                spend[1] -= qty
                order.locked -= qty
                commission, commission_asset = q8(quote * rate), inst.quote
                acct.asset(inst.quote)[0] += quote - commission
            acct.dirty_spot.update((inst.base, inst.quote))
        else:
            commission, commission_asset = q8(quote * rate), "USDT"
            pos = acct.position(inst.symbol)
            signed = qty if order.side == BUY else -qty
            if not pos.amount or (pos.amount > 0) == (signed > 0):
                total = abs(pos.amount) + qty
                pos.entry = (pos.entry * abs(pos.amount) + price * qty) / total
            else:
                closing = min(qty, abs(pos.amount))
                realized = q8(closing * (price - pos.entry) * (1 if pos.amount > 0 else -1))
                if qty > abs(pos.amount):
                    pos.entry = price
                elif qty == abs(pos.amount):
                    pos.entry = ZERO
            pos.amount += signed
            pos.update_time = now
            acct.futures["USDT"] = acct.futures.get("USDT", ZERO) + realized - commission
            acct.dirty_futures.add(inst.symbol)
            acct.dirty_wallet = True
        return commission, commission_asset, realized

    def set_leverage(self, account: Account, inst: Instrument, leverage: int) -> None:
        if not 1 <= leverage <= 125:
            raise SimError(-4028, f"Leverage {leverage} is not valid")
        account.leverage[inst.symbol] = leverage

    # account events ----------------------------------------------------------

    def _flush_accounts(self) -> None:
        for acct in self.accounts.values():
            if acct.dirty_spot:
                assets = sorted(acct.dirty_spot)
                acct.dirty_spot.clear()
                self.sink.spot_balance(acct, assets)
            if acct.dirty_futures or acct.dirty_wallet:
                symbols = sorted(acct.dirty_futures)
                acct.dirty_futures.clear()
                acct.dirty_wallet = False
                self.sink.futures_account(acct, symbols, "ORDER")

    def flush(self) -> None:
        """Report account changes made outside ``place``/``cancel`` (public for the replay driver)."""
        self._flush_accounts()
