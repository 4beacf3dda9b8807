"""Binance JSON shapes built from engine objects (REST responses and WS payloads)."""
from __future__ import annotations

from decimal import Decimal

from .engine import SPOT, USDM, ZERO, Account, Engine, Fill, Instrument, Kline, Order

MAINT_MARGIN_RATE = Decimal("0.004")  # first bracket of /fapi/v1/leverageBracket
INTERVAL_MS = {"1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
               "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
               "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
               "3d": 259_200_000, "1w": 604_800_000}


def f8(value: Decimal) -> str:
    return f"{value:.8f}"


def plain(value: Decimal) -> str:
    """Shortest exact decimal text, as USD-M prints it ("0.002", "61800.1")."""
    text = f"{value.normalize():f}"
    return text if text != "-0" else "0"


def price_text(inst: Instrument, value: Decimal | None) -> str:
    if value is None:
        value = ZERO
    return f8(value) if inst.market == SPOT else f"{value:.{inst.price_dp}f}"


def qty_text(inst: Instrument, value: Decimal) -> str:
    return f8(value) if inst.market == SPOT else f"{value:.{inst.qty_dp}f}"


# ------------------------------------------------------------------ exchangeInfo

def spot_symbol_info(inst: Instrument) -> dict:
    return {
        "symbol": inst.symbol, "status": "TRADING", "baseAsset": inst.base, "baseAssetPrecision": 8,
        "quoteAsset": inst.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                       "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False, "cancelReplaceAllowed": True,
        "amendAllowed": False, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": f8(inst.tick), "maxPrice": "1000000.00000000",
             "tickSize": f8(inst.tick)},
            {"filterType": "LOT_SIZE", "minQty": f8(inst.min_qty), "maxQty": f8(inst.max_qty),
             "stepSize": f8(inst.step)},
            {"filterType": "MIN_NOTIONAL", "minNotional": f8(inst.min_notional), "applyToMarket": True,
             "avgPriceMins": 5},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": f8(inst.max_qty),
             "stepSize": "0.00000000"},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


def usdm_symbol_info(inst: Instrument) -> dict:
    return {
        "symbol": inst.symbol, "pair": inst.symbol, "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": inst.base,
        "quoteAsset": inst.quote, "marginAsset": inst.quote, "pricePrecision": inst.price_dp,
        "quantityPrecision": inst.qty_dp, "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": [], "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": plain(inst.tick), "maxPrice": "4529764",
             "tickSize": plain(inst.tick)},
            {"filterType": "LOT_SIZE", "minQty": plain(inst.min_qty), "maxQty": plain(inst.max_qty),
             "stepSize": plain(inst.step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": plain(inst.min_qty), "maxQty": plain(inst.max_qty),
             "stepSize": plain(inst.step)},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": plain(inst.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
             "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def exchange_info(market: str, instruments: list[Instrument], now: int) -> dict:
    rate_limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    ]
    if market == SPOT:
        symbols = [spot_symbol_info(i) for i in instruments]
        return {"timezone": "UTC", "serverTime": now, "rateLimits": rate_limits, "exchangeFilters": [],
                "symbols": symbols}
    assets = sorted({i.quote for i in instruments})
    return {"timezone": "UTC", "serverTime": now, "futuresType": "U_MARGINED", "rateLimits": rate_limits,
            "exchangeFilters": [],
            "assets": [{"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets],
            "symbols": [usdm_symbol_info(i) for i in instruments]}


# ------------------------------------------------------------------ market data

def depth(engine: Engine, inst: Instrument, limit: int, now: int) -> dict:
    book = engine.books[inst.key]
    out = {"lastUpdateId": book.update_id,
           "bids": [[price_text(inst, p), qty_text(inst, q)] for p, q in book.bids.top(limit)],
           "asks": [[price_text(inst, p), qty_text(inst, q)] for p, q in book.asks.top(limit)]}
    if inst.market == USDM:
        out["E"] = now
        out["T"] = now
    return out


def trade(inst: Instrument, t) -> dict:
    return {"id": t.trade_id, "price": price_text(inst, t.price), "qty": qty_text(inst, t.qty),
            "quoteQty": price_text(inst, t.price * t.qty), "time": t.time, "isBuyerMaker": t.buyer_maker,
            "isBestMatch": True}


def agg_trade(inst: Instrument, t) -> dict:
    return {"a": t.trade_id, "p": price_text(inst, t.price), "q": qty_text(inst, t.qty), "f": t.trade_id,
            "l": t.trade_id, "T": t.time, "m": t.buyer_maker, "M": True}


def aggregate_klines(klines: list[Kline], interval_ms: int) -> list[Kline]:
    if interval_ms <= 60_000:
        return list(klines)
    out: list[Kline] = []
    for k in klines:
        start = k.open_time - k.open_time % interval_ms
        if out and out[-1].open_time == start:
            agg = out[-1]
            agg.high, agg.low, agg.close = max(agg.high, k.high), min(agg.low, k.low), k.close
            agg.volume += k.volume
            agg.quote_volume += k.quote_volume
            agg.trades += k.trades
        else:
            out.append(Kline(start, k.open, k.high, k.low, k.close, k.volume, k.quote_volume, k.trades))
    return out


def kline_row(inst: Instrument, k: Kline, interval_ms: int) -> list:
    return [k.open_time, price_text(inst, k.open), price_text(inst, k.high), price_text(inst, k.low),
            price_text(inst, k.close), qty_text(inst, k.volume), k.open_time + interval_ms - 1,
            f8(k.quote_volume), k.trades, "0", "0", "0"]


def ticker_24h(engine: Engine, inst: Instrument, now: int) -> dict:
    klines = [k for k in engine.klines[inst.key] if k.open_time >= now - 86_400_000]
    book = engine.books[inst.key]
    bid, ask = book.bids.best(), book.asks.best()
    last = engine.reference_price(inst)
    open_ = klines[0].open if klines else last
    high = max((k.high for k in klines), default=last)
    low = min((k.low for k in klines), default=last)
    volume = sum((k.volume for k in klines), ZERO)
    quote_volume = sum((k.quote_volume for k in klines), ZERO)
    count = sum(k.trades for k in klines)
    out = {"symbol": inst.symbol, "priceChange": price_text(inst, last - open_),
           "priceChangePercent": f"{((last - open_) / open_ * 100) if open_ else ZERO:.3f}",
           "weightedAvgPrice": price_text(inst, quote_volume / volume if volume else last),
           "lastPrice": price_text(inst, last), "lastQty": qty_text(inst, ZERO),
           "openPrice": price_text(inst, open_), "highPrice": price_text(inst, high),
           "lowPrice": price_text(inst, low), "volume": qty_text(inst, volume),
           "quoteVolume": f8(quote_volume), "openTime": now - 86_400_000, "closeTime": now,
           "firstId": 0, "lastId": 0, "count": count}
    if inst.market == SPOT:
        out.update({"prevClosePrice": price_text(inst, open_),
                    "bidPrice": price_text(inst, bid.price if bid else ZERO),
                    "bidQty": qty_text(inst, bid.total() if bid else ZERO),
                    "askPrice": price_text(inst, ask.price if ask else ZERO),
                    "askQty": qty_text(inst, ask.total() if ask else ZERO)})
    return out


def book_ticker(engine: Engine, inst: Instrument, now: int) -> dict:
    book = engine.books[inst.key]
    bid, ask = book.bids.best(), book.asks.best()
    out = {"symbol": inst.symbol,
           "bidPrice": price_text(inst, bid.price if bid else ZERO),
           "bidQty": qty_text(inst, bid.total() if bid else ZERO),
           "askPrice": price_text(inst, ask.price if ask else ZERO),
           "askQty": qty_text(inst, ask.total() if ask else ZERO)}
    if inst.market == USDM:
        out["time"] = now
        out["lastUpdateId"] = book.update_id
    return out


# ------------------------------------------------------------------ orders

def spot_order(order: Order, full: bool = False, fills: bool = False) -> dict:
    inst = order.inst
    out = {"symbol": inst.symbol, "orderId": order.order_id, "orderListId": -1,
           "clientOrderId": order.client_id}
    if full:
        out["transactTime"] = order.update_time
    out.update({
        "price": price_text(inst, order.price), "origQty": f8(order.qty), "executedQty": f8(order.executed),
        "cummulativeQuoteQty": f8(order.cum_quote), "status": order.status, "timeInForce": order.tif,
        "type": order.type, "side": order.side, "origQuoteOrderQty": f8(order.quote_qty),
        "selfTradePreventionMode": "NONE"})
    if order.stop_price is not None:
        out["stopPrice"] = f8(order.stop_price)
    if order.working_time >= 0:
        out["workingTime"] = order.working_time
    if not full:
        out.update({"icebergQty": "0.00000000", "time": order.time, "updateTime": order.update_time,
                    "isWorking": order.working_time >= 0 and order.is_open,
                    "workingTime": order.working_time})
    if fills:
        out["fills"] = [{"price": f8(f.price), "qty": f8(f.qty), "commission": f8(f.commission),
                         "commissionAsset": f.commission_asset, "tradeId": f.trade_id} for f in order.fills]
    return out


def usdm_order(order: Order) -> dict:
    inst = order.inst
    return {
        "orderId": order.order_id, "symbol": inst.symbol, "status": order.status,
        "clientOrderId": order.client_id, "price": price_text(inst, order.price),
        "avgPrice": price_text(inst, order.avg_price) if order.executed else "0.00",
        "origQty": qty_text(inst, order.qty), "executedQty": qty_text(inst, order.executed),
        "cumQty": qty_text(inst, order.executed), "cumQuote": f"{order.cum_quote:.8f}",
        "timeInForce": order.tif, "type": order.type, "reduceOnly": order.reduce_only,
        "closePosition": order.close_position, "side": order.side, "positionSide": "BOTH",
        "stopPrice": price_text(inst, order.stop_price), "workingType": order.working_type,
        "priceProtect": False, "origType": order.orig_type or order.type, "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": order.time,
        "updateTime": order.update_time,
    }


ALGO_STATUS = {"NEW": "NEW", "PARTIALLY_FILLED": "NEW", "CANCELED": "CANCELED", "EXPIRED": "EXPIRED",
               "TRIGGERED": "TRIGGERED", "FINISHED": "FINISHED", "FILLED": "FINISHED"}


def algo_order(order: Order) -> dict:
    inst = order.inst
    out = {
        "algoId": order.order_id, "clientAlgoId": order.client_id, "algoType": "CONDITIONAL",
        "orderType": order.type, "symbol": inst.symbol, "side": order.side, "positionSide": "BOTH",
        "timeInForce": order.tif, "quantity": qty_text(inst, order.qty),
        "algoStatus": ALGO_STATUS.get(order.status, order.status),
        "triggerPrice": price_text(inst, order.stop_price), "price": price_text(inst, order.price),
        "icebergQuantity": None, "selfTradePreventionMode": "NONE", "workingType": order.working_type,
        "priceMatch": "NONE", "closePosition": order.close_position, "priceProtect": False,
        "reduceOnly": order.reduce_only, "createTime": order.time, "updateTime": order.update_time,
        "triggerTime": order.trigger_time, "goodTillDate": 0,
        "actualOrderId": str(order.actual_order_id) if order.actual_order_id else "",
    }
    if order.type == "TRAILING_STOP_MARKET":
        out["callbackRate"] = plain(order.callback_rate)
        out["activatePrice"] = price_text(inst, order.activation_price)
    return out


def order_json(order: Order, full: bool = False) -> dict:
    if order.algo:
        return algo_order(order)
    if order.inst.market == SPOT:
        return spot_order(order, full=full, fills=full)
    return usdm_order(order)


def spot_my_trade(fill: Fill) -> dict:
    order = fill.order
    return {"symbol": order.inst.symbol, "id": fill.trade_id, "orderId": order.order_id, "orderListId": -1,
            "price": f8(fill.price), "qty": f8(fill.qty), "quoteQty": f8(fill.quote),
            "commission": f8(fill.commission), "commissionAsset": fill.commission_asset, "time": fill.time,
            "isBuyer": order.side == "BUY", "isMaker": fill.is_maker, "isBestMatch": True}


def usdm_my_trade(fill: Fill) -> dict:
    order, inst = fill.order, fill.order.inst
    return {"buyer": order.side == "BUY", "commission": f8(fill.commission),
            "commissionAsset": fill.commission_asset, "id": fill.trade_id, "maker": fill.is_maker,
            "orderId": order.order_id, "price": price_text(inst, fill.price), "qty": qty_text(inst, fill.qty),
            "quoteQty": f8(fill.quote), "realizedPnl": f8(fill.realized_pnl), "side": order.side,
            "positionSide": "BOTH", "symbol": inst.symbol, "time": fill.time}


# ------------------------------------------------------------------ accounts

def spot_account(acct: Account, now: int) -> dict:
    return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now,
            "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
            "balances": [{"asset": a, "free": f8(v[0]), "locked": f8(v[1])} for a, v in sorted(acct.spot.items())]}


def position_risk(engine: Engine, acct: Account, inst: Instrument, v2: bool) -> dict:
    pos = acct.position(inst.symbol)
    mark = engine.mark_price(inst)
    lev = acct.leverage_of(inst.symbol)
    notional = pos.amount * mark
    unrealized = pos.amount * (mark - pos.entry) if pos.amount else ZERO
    liq = ZERO
    if pos.amount:
        # cross margin, one position: where the wallet is lost (maintenance margin ignored)
        liq = max(ZERO, pos.entry - acct.futures.get("USDT", ZERO) / pos.amount)
    im = abs(notional) / lev
    out = {"symbol": inst.symbol, "positionSide": "BOTH", "positionAmt": qty_text(inst, pos.amount),
           "entryPrice": plain(pos.entry.quantize(Decimal("0.00000001"))) if pos.amount else "0.0",
           "breakEvenPrice": "0.0", "markPrice": f8(mark), "unRealizedProfit": f8(unrealized),
           "liquidationPrice": f8(liq), "isolatedMargin": "0.00000000", "notional": f8(notional),
           "marginAsset": "USDT", "isolatedWallet": "0", "initialMargin": f8(im),
           "maintMargin": f8(abs(notional) * MAINT_MARGIN_RATE),
           "positionInitialMargin": f8(im), "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0",
           "askNotional": "0", "updateTime": pos.update_time}
    if v2:
        out.update({"leverage": str(lev), "marginType": "cross", "isAutoAddMargin": "false",
                    "maxNotionalValue": "80000000"})
    return out


def usdm_account(engine: Engine, acct: Account, now: int, version: int) -> dict:
    s = engine.futures_state(acct)
    wallet, upnl, avail = s["wallet"], s["unrealized"], s["available"]
    im = s["position_im"] + s["order_im"]
    asset = {"asset": "USDT", "walletBalance": f8(wallet), "unrealizedProfit": f8(upnl),
             "marginBalance": f8(s["margin_balance"]), "maintMargin": "0.00000000",
             "initialMargin": f8(im), "positionInitialMargin": f8(s["position_im"]),
             "openOrderInitialMargin": f8(s["order_im"]), "crossWalletBalance": f8(wallet),
             "crossUnPnl": f8(upnl), "availableBalance": f8(avail), "maxWithdrawAmount": f8(max(avail, ZERO)),
             "updateTime": now}
    if version == 2:
        asset["marginAvailable"] = True
    positions = []
    for symbol, pos in sorted(acct.positions.items()):
        inst = engine.instruments[(USDM, symbol)]
        if version == 3 and not pos.amount:
            continue
        mark = engine.mark_price(inst)
        positions.append({"symbol": symbol, "positionSide": "BOTH", "positionAmt": qty_text(inst, pos.amount),
                          "unrealizedProfit": f8(pos.amount * (mark - pos.entry)),
                          "isolatedMargin": "0", "notional": f8(pos.amount * mark), "isolatedWallet": "0",
                          "initialMargin": f8(abs(pos.amount) * mark / acct.leverage_of(symbol)),
                          "maintMargin": "0", "updateTime": pos.update_time,
                          **({"leverage": str(acct.leverage_of(symbol)), "entryPrice": plain(pos.entry),
                              "isolated": False} if version == 2 else {})})
    return {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "feeBurn": False,
            "tradeGroupId": -1, "updateTime": 0, "multiAssetsMargin": False,
            "totalInitialMargin": f8(im), "totalMaintMargin": "0.00000000",
            "totalWalletBalance": f8(wallet), "totalUnrealizedProfit": f8(upnl),
            "totalMarginBalance": f8(s["margin_balance"]), "totalPositionInitialMargin": f8(s["position_im"]),
            "totalOpenOrderInitialMargin": f8(s["order_im"]), "totalCrossWalletBalance": f8(wallet),
            "totalCrossUnPnl": f8(upnl), "availableBalance": f8(avail), "maxWithdrawAmount": f8(max(avail, ZERO)),
            "assets": [asset], "positions": positions}


def usdm_balance(engine: Engine, acct: Account, now: int) -> list[dict]:
    s = engine.futures_state(acct)
    return [{"accountAlias": "sim", "asset": "USDT", "balance": f8(s["wallet"]),
             "crossWalletBalance": f8(s["wallet"]), "crossUnPnl": f8(s["unrealized"]),
             "availableBalance": f8(s["available"]), "maxWithdrawAmount": f8(max(s["available"], ZERO)),
             "marginAvailable": True, "updateTime": now}]


# ------------------------------------------------------------------ user-data events

def execution_report(order: Order, exec_type: str, fill: Fill | None, now: int) -> dict:
    return {"e": "executionReport", "E": now, "s": order.inst.symbol, "c": order.client_id, "S": order.side,
            "o": order.type, "f": order.tif, "q": f8(order.qty), "p": f8(order.price or ZERO),
            "P": f8(order.stop_price or ZERO), "F": "0.00000000", "g": -1, "C": "", "x": exec_type,
            "X": order.status, "r": "NONE", "i": order.order_id,
            "l": f8(fill.qty if fill else ZERO), "z": f8(order.executed),
            "L": f8(fill.price if fill else ZERO), "n": f8(fill.commission) if fill else "0",
            "N": fill.commission_asset if fill else None, "T": order.update_time,
            "t": fill.trade_id if fill else -1, "I": 0, "w": order.is_open and order.working_time >= 0,
            "m": fill.is_maker if fill else False, "M": False, "O": order.time, "Z": f8(order.cum_quote),
            "Y": f8(fill.quote if fill else ZERO), "Q": f8(order.quote_qty), "W": order.working_time,
            "V": "NONE"}


def order_trade_update(order: Order, exec_type: str, fill: Fill | None, now: int) -> dict:
    inst = order.inst
    o = {"s": inst.symbol, "c": order.client_id, "S": order.side, "o": order.type, "f": order.tif,
         "q": qty_text(inst, order.qty), "p": price_text(inst, order.price),
         "ap": price_text(inst, order.avg_price), "sp": price_text(inst, order.stop_price),
         "x": exec_type, "X": order.status, "i": order.order_id,
         "l": qty_text(inst, fill.qty if fill else ZERO), "z": qty_text(inst, order.executed),
         "L": price_text(inst, fill.price if fill else ZERO), "T": order.update_time,
         "t": fill.trade_id if fill else 0, "b": "0", "a": "0", "m": fill.is_maker if fill else False,
         "R": order.reduce_only, "wt": order.working_type, "ot": order.orig_type or order.type, "ps": "BOTH",
         "cp": order.close_position, "rp": f8(fill.realized_pnl if fill else ZERO), "pP": False, "si": 0,
         "ss": 0, "V": "NONE", "pm": "NONE", "gtd": 0}
    if fill:
        o["N"], o["n"] = fill.commission_asset, f8(fill.commission)
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": o}


def algo_update(order: Order, now: int) -> dict:
    inst = order.inst
    return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": {
        "caid": order.client_id, "aid": order.order_id, "at": "CONDITIONAL", "o": order.type,
        "s": inst.symbol, "S": order.side, "ps": "BOTH", "f": order.tif, "q": qty_text(inst, order.qty),
        "X": ALGO_STATUS.get(order.status, order.status),
        "ai": str(order.actual_order_id) if order.actual_order_id else "",
        "ap": price_text(inst, order.avg_price), "aq": qty_text(inst, order.executed), "act": "0",
        "tp": price_text(inst, order.stop_price), "p": price_text(inst, order.price), "V": "NONE",
        "wt": order.working_type, "pm": "NONE", "cp": order.close_position, "pP": False,
        "R": order.reduce_only, "tt": order.trigger_time, "gtd": 0, "rm": ""}}


def outbound_account_position(acct: Account, assets: list[str], now: int) -> dict:
    return {"e": "outboundAccountPosition", "E": now, "u": now,
            "B": [{"a": a, "f": f8(acct.asset(a)[0]), "l": f8(acct.asset(a)[1])} for a in assets]}


def account_update(engine: Engine, acct: Account, symbols: list[str], reason: str, now: int) -> dict:
    wallet = acct.futures.get("USDT", ZERO)
    positions = []
    for symbol in symbols:
        inst = engine.instruments[(USDM, symbol)]
        pos = acct.position(symbol)
        mark = engine.mark_price(inst)
        positions.append({"s": symbol, "pa": qty_text(inst, pos.amount), "ep": plain(pos.entry),
                          "bep": "0", "cr": "0", "up": f8(pos.amount * (mark - pos.entry)), "mt": "cross",
                          "iw": "0", "ps": "BOTH", "ma": "USDT"})
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
        "m": reason, "B": [{"a": "USDT", "wb": f8(wallet), "cw": f8(wallet), "bc": "0"}], "P": positions}}
