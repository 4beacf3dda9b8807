"""WebSocket side of the venue: market streams, listenKey and WS-API user-data streams.

The hub is the engine's sink: it turns engine events into Binance stream payloads and queues
them on each subscribed connection; a writer task per connection sends them in order.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from decimal import Decimal

import msgspec
from aiohttp import WSMsgType, web

from . import wire
from .engine import SPOT, USDM, Account, Engine, Fill, Instrument, Order, PublicTrade

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

MAX_BUFFERED = 200_000  # messages queued for one connection before it counts as a slow consumer
CLOSE_TIMEOUT_S = 1.0  # how long a closing handshake may wait for the peer
WRITE_HIGH_WATER = 4 << 20  # bytes in the transport before the writer waits for the peer
DEPTH_INTERVALS = {
    SPOT: {"": 1000, "@1000ms": 1000, "@100ms": 100},
    USDM: {"": 250, "@500ms": 500, "@250ms": 250, "@100ms": 100, "@0ms": 0},
}
KLINE_PUSH_MS = 250
KLINE_IDLE_PUSH_S = 1.0


_SHORT_HEADERS = tuple(b"\x81" + bytes((n,)) for n in range(126))
_MEDIUM_HEADERS = tuple(b"\x81\x7e" + n.to_bytes(2, "big") for n in range(126, 1024))


def _frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return _SHORT_HEADERS[size] + payload
    if size < 1024:
        return _MEDIUM_HEADERS[size - 126] + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Conn:
    """One WebSocket client and the queue of text frames still to send to it."""

    __slots__ = ("ws", "market", "combined", "streams", "buf", "wake", "sent", "closed", "path", "wsapi_subs",
                 "writer")

    def __init__(self, ws: web.WebSocketResponse, market: str, combined: bool, path: str):
        self.ws, self.market, self.combined, self.path = ws, market, combined, path
        self.streams: set[str] = set()
        self.buf: list[bytes] = []
        self.wake = asyncio.Event()
        self.sent = 0
        self.closed = False
        self.wsapi_subs: dict[int, tuple[Account, str]] = {}
        self.writer: asyncio.Task | None = None

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.buf.append(data)
        if len(self.buf) == 1:
            self.wake.set()


class DepthStream:
    """Diff-depth accumulator of one stream name: changes since the last push, with U/u/pu ids."""

    __slots__ = ("inst", "name", "interval", "dirty", "first", "last", "prev_u", "last_push", "pushed")

    def __init__(self, inst: Instrument, name: str, interval: int, update_id: int):
        self.inst, self.name, self.interval = inst, name, interval
        self.dirty: dict[tuple[bool, Decimal], Decimal] = {}
        self.first: int | None = None
        self.last = update_id
        self.prev_u = update_id
        self.last_push = 0.0
        self.pushed = 0


class TradeStreams:
    """``<symbol>@trade`` and ``@aggTrade`` of one instrument: names and payloads as JSON bytes.

    A trade is the venue's busiest stream, so its payload is formatted straight into bytes with
    the field order and texts that encoding the equivalent dict gives (``trade_payload`` /
    ``agg_trade_payload`` below are that dict; tests check both agree). Price and quantity texts
    repeat a lot (a few levels trade over and over), so they are cached.
    """

    __slots__ = ("trade", "agg", "trade_conns", "agg_conns", "_trade", "_agg", "_inst", "_texts")
    MAX_TEXTS = 8192

    def __init__(self, inst: Instrument):
        sym = inst.symbol
        self._inst = inst
        self.trade, self.agg = sym.lower() + "@trade", sym.lower() + "@aggTrade"
        # the Hub's subscriber sets, once they exist (a set stays in Hub.subs for good once made)
        self.trade_conns: set | None = None
        self.agg_conns: set | None = None
        s = sym.encode()
        tail = b',"M":true}' if inst.market == SPOT else b',"X":"MARKET"}'
        self._trade = b'{"e":"trade","E":%d,"s":"' + s + b'","t":%d,"p":"%s","q":"%s","T":%d,"m":%s' + tail
        self._agg = (b'{"e":"aggTrade","E":%d,"s":"' + s
                     + b'","a":%d,"p":"%s","q":"%s","f":%d,"l":%d,"T":%d,"m":%s,"M":true}')
        self._texts: tuple[dict[Decimal, bytes], dict[Decimal, bytes]] = ({}, {})

    def _text(self, value: Decimal, qty: bool) -> bytes:
        cache = self._texts[qty]
        text = cache.get(value)
        if text is None:
            if len(cache) >= self.MAX_TEXTS:
                cache.clear()
            fmt = wire.qty_text if qty else wire.price_text
            text = cache[value] = fmt(self._inst, value).encode()
        return text

    def trade_bytes(self, t: PublicTrade) -> bytes:
        return self._trade % (t.time, t.trade_id, self._text(t.price, False), self._text(t.qty, True), t.time,
                              b"true" if t.buyer_maker else b"false")

    def agg_bytes(self, t: PublicTrade) -> bytes:
        tid = t.trade_id
        return self._agg % (t.time, tid, self._text(t.price, False), self._text(t.qty, True), tid, tid, t.time,
                            b"true" if t.buyer_maker else b"false")


def trade_payload(inst: Instrument, t: PublicTrade) -> dict:
    """The ``<symbol>@trade`` event as the venue sends it (spot has ``M``, USD-M ``X``)."""
    payload = {"e": "trade", "E": t.time, "s": inst.symbol, "t": t.trade_id,
               "p": wire.price_text(inst, t.price), "q": wire.qty_text(inst, t.qty), "T": t.time,
               "m": t.buyer_maker}
    if inst.market == SPOT:
        payload["M"] = True
    else:
        payload["X"] = "MARKET"
    return payload


def agg_trade_payload(inst: Instrument, t: PublicTrade) -> dict:
    """The ``<symbol>@aggTrade`` event: one aggregate per printed trade."""
    return {"e": "aggTrade", "E": t.time, "s": inst.symbol, "a": t.trade_id, "p": wire.price_text(inst, t.price),
            "q": wire.qty_text(inst, t.qty), "f": t.trade_id, "l": t.trade_id, "T": t.time, "m": t.buyer_maker,
            "M": True}


class Hub:
    def __init__(self, engine: Engine, faults):
        self.engine = engine
        self.faults = faults  # live knobs object with ws_drop_after_messages / depth_gap_every
        self.conns: set[Conn] = set()
        self.subs: dict[tuple[str, str], set[Conn]] = {}
        self.depth: dict[tuple[str, str], DepthStream] = {}
        self.depth_by_inst: dict[tuple[str, str], list[DepthStream]] = {}
        self.gap_pending: set[tuple[str, str]] = set()
        self.bbo_sent: dict[tuple[str, str], tuple] = {}
        self.bbo_streams: set[tuple[str, str]] = set()
        self.trade_streams: dict[tuple[str, str], TradeStreams] = {}
        self.kline_dirty: set[tuple[str, str]] = set()
        self.last_kline_push = 0.0
        self.last_kline_idle_push = 0.0
        self.last_ticker_push = 0.0
        self.user_conns: dict[tuple[str, str], list[tuple[Conn, int | None]]] = {}
        self.listen_keys: dict[str, tuple[Account, str]] = {}
        self.counters = {"ws_messages": 0, "ws_dropped_conns": 0, "depth_gaps": 0}
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._ticker())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for conn in list(self.conns):
            await self.close_conn(conn, code=1001, message=b"server shutdown")

    async def close_conn(self, conn: Conn, code: int = 1000, message: bytes = b"") -> None:
        if conn.closed:
            return
        conn.closed = True
        conn.wake.set()
        self._forget(conn)
        try:
            await conn.ws.close(code=code, message=message)
        except Exception:  # the peer may already be gone
            pass

    async def drop_connections(self, path_prefix: str = "") -> int:
        """Fault knob: close every WebSocket whose path starts with ``path_prefix``."""
        victims = [c for c in self.conns if c.path.startswith(path_prefix)]
        for conn in victims:
            await self.close_conn(conn, code=1011, message=b"sim_exchange: dropped")
        self.counters["ws_dropped_conns"] += len(victims)
        return len(victims)

    def _forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for stream in conn.streams:
            self.subs.get((conn.market, stream), set()).discard(conn)
        for key, entries in self.user_conns.items():
            self.user_conns[key] = [e for e in entries if e[0] is not conn]

    # ------------------------------------------------------------------ connections

    async def serve_streams(self, request: web.BaseRequest, market: str, combined: bool,
                            tail: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20, compress=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = Conn(ws, market, combined, request.path)
        self.start_writer(conn, request)
        listen_key = request.query.get("listenKey")
        names = [n for n in tail.split("/") if n and not n.isdigit()]
        if combined:
            names += [n for n in request.query.get("streams", "").split("/") if n]
        for name in [listen_key] + names if listen_key else names:
            if name in self.listen_keys:
                self._attach_user(conn, *self.listen_keys[name], None)
            else:
                self._subscribe(conn, name)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_stream_request(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.closed = True
            conn.wake.set()
            self._forget(conn)
        return ws

    def start_writer(self, conn: Conn, request: web.BaseRequest) -> None:
        self.conns.add(conn)
        conn.writer = asyncio.get_running_loop().create_task(self._writer(conn, request.transport))

    def _on_stream_request(self, conn: Conn, text: str) -> None:
        try:
            request = _decode(text)
            method, req_id = request.get("method"), request.get("id")
            params = request.get("params") or []
        except Exception:
            conn.send(_encode({"error": {"code": 3, "msg": "Invalid JSON: expected an object"}}))
            return
        if method == "SUBSCRIBE":
            bad = [p for p in params if not self._subscribe(conn, p)]
            if bad:
                conn.send(_encode({"error": {"code": 2, "msg": f"Invalid request: invalid stream {bad[0]}"},
                                   "id": req_id}))
                return
            conn.send(_encode({"result": None, "id": req_id}))
        elif method == "UNSUBSCRIBE":
            for name in params:
                conn.streams.discard(name)
                self.subs.get((conn.market, name), set()).discard(conn)
            conn.send(_encode({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send(_encode({"result": sorted(conn.streams), "id": req_id}))
        else:
            conn.send(_encode({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                               "id": req_id}))

    def _subscribe(self, conn: Conn, name: str) -> bool:
        """Validate and register ``<symbol>@<kind>``; returns False for a stream the venue lacks."""
        if not isinstance(name, str) or "@" not in name:
            return False
        symbol, _, kind = name.partition("@")
        inst = self.engine.instruments.get((conn.market, symbol.upper()))
        if inst is None or symbol != symbol.lower():
            return False
        if kind.startswith("depth"):
            suffix = kind[len("depth"):]
            levels = ""
            while suffix[:1].isdigit():
                levels, suffix = levels + suffix[0], suffix[1:]
            if levels or suffix not in DEPTH_INTERVALS[conn.market]:
                return False
            if (conn.market, name) not in self.depth:
                stream = DepthStream(inst, name, DEPTH_INTERVALS[conn.market][suffix],
                                     self.engine.books[inst.key].update_id)
                self.depth[(conn.market, name)] = stream
                self.depth_by_inst.setdefault(inst.key, []).append(stream)
        elif kind.startswith("kline_"):
            if kind[len("kline_"):] not in wire.INTERVAL_MS:
                return False
        elif kind not in ("trade", "aggTrade", "bookTicker", "ticker"):
            return False
        if kind == "bookTicker":
            self.bbo_streams.add((conn.market, name))
        conn.streams.add(name)
        self.subs.setdefault((conn.market, name), set()).add(conn)
        return True

    async def _writer(self, conn: Conn, transport: asyncio.Transport) -> None:
        """Send queued messages as unmasked text frames, many per transport write.

        aiohttp's ``send_str`` costs a coroutine per frame; writing whole frames straight to the
        transport keeps 50k+ messages/s affordable. aiohttp's own control frames (pong, close)
        are whole frames too, so the two never interleave inside a frame.
        """
        try:
            while not conn.closed:
                await conn.wake.wait()
                conn.wake.clear()
                buf, conn.buf = conn.buf, []
                if conn.closed or transport.is_closing():
                    break
                limit = self.faults.ws_drop_after_messages
                if limit and conn.sent + len(buf) >= limit:
                    buf = buf[:max(0, limit - conn.sent)]
                    transport.write(b"".join(map(_frame, buf)))
                    conn.sent += len(buf)
                    self.counters["ws_dropped_conns"] += 1
                    await self.close_conn(conn, code=1011, message=b"sim_exchange: dropped")
                    return
                transport.write(b"".join(map(_frame, buf)))
                conn.sent += len(buf)
                while transport.get_write_buffer_size() > WRITE_HIGH_WATER and not transport.is_closing():
                    await asyncio.sleep(0.002)
        except asyncio.CancelledError:
            pass
        except Exception:  # a broken transport ends this connection only
            log.exception("websocket writer failed")
        conn.closed = True

    def _publish(self, market: str, name: str, payload: dict) -> None:
        conns = self.subs.get((market, name))
        if not conns:
            return
        self._send_all(conns, name, _encode(payload))

    def _send_all(self, conns: set[Conn], name: str, data: bytes) -> None:
        wrapped = None
        for conn in conns:
            if conn.combined:
                if wrapped is None:
                    wrapped = b'{"stream":"%s","data":%s}' % (name.encode(), data)
                conn.send(wrapped)
            else:
                conn.send(data)
            if len(conn.buf) > MAX_BUFFERED and not conn.closed:
                # a client this far behind is cut off, as the venue does with slow consumers
                conn.buf.clear()
                asyncio.ensure_future(self.close_conn(conn, code=1008, message=b"slow consumer"))
        self.counters["ws_messages"] += len(conns)

    # ------------------------------------------------------------------ engine sink

    def book_change(self, inst: Instrument, is_bid: bool, price: Decimal, total: Decimal, update_id: int):
        streams = self.depth_by_inst.get(inst.key)
        if streams:
            for stream in streams:
                stream.dirty[(is_bid, price)] = total
                if stream.first is None:
                    stream.first = update_id
                stream.last = update_id

    def public_trade(self, inst: Instrument, t: PublicTrade):
        key = inst.key
        self.kline_dirty.add(key)
        streams = self.trade_streams.get(key)
        if streams is None:
            streams = self.trade_streams[key] = TradeStreams(inst)
        conns = streams.trade_conns
        if conns is None:
            conns = streams.trade_conns = self.subs.get((inst.market, streams.trade))
        if conns:
            self._send_all(conns, streams.trade, streams.trade_bytes(t))
        conns = streams.agg_conns
        if conns is None:
            conns = streams.agg_conns = self.subs.get((inst.market, streams.agg))
        if conns:
            self._send_all(conns, streams.agg, streams.agg_bytes(t))

    def order_update(self, order: Order, exec_type: str, fill: Fill | None):
        market = order.inst.market
        log.info("order %s %s %s", exec_type, order.side, order.inst.symbol,
                 extra={"venue": f"sim:{market}", "client_order_id": order.client_id,
                        "exchange_order_id": str(order.order_id), "status": order.status})
        if not self.user_conns.get((order.account.api_key, market)):
            return
        if market == SPOT:
            event = wire.execution_report(order, exec_type, fill, now_ms())
        else:
            event = wire.order_trade_update(order, exec_type, fill, now_ms())
        self._user_event(order.account, market, event)

    def algo_update(self, order: Order):
        if not self.user_conns.get((order.account.api_key, USDM)):
            return
        self._user_event(order.account, USDM, wire.algo_update(order, now_ms()))

    def spot_balance(self, account: Account, assets: list[str]):
        if not self.user_conns.get((account.api_key, SPOT)):
            return
        self._user_event(account, SPOT, wire.outbound_account_position(account, assets, now_ms()))

    def futures_account(self, account: Account, symbols: list[str], reason: str):
        if not self.user_conns.get((account.api_key, USDM)):
            return
        self._user_event(account, USDM, wire.account_update(self.engine, account, symbols, reason, now_ms()))

    def _user_event(self, account: Account, market: str, event: dict) -> None:
        entries = self.user_conns.get((account.api_key, market))
        if not entries:
            return
        data = _encode(event)
        for conn, sub_id in entries:
            if sub_id is None:
                conn.send(data)
            else:
                conn.send(b'{"subscriptionId":%d,"event":%s}' % (sub_id, data))
        self.counters["ws_messages"] += len(entries)

    def _attach_user(self, conn: Conn, account: Account, market: str, sub_id: int | None) -> None:
        self.user_conns.setdefault((account.api_key, market), []).append((conn, sub_id))

    def listen_key(self, account: Account, market: str) -> str:
        key = hashlib.sha256(f"{market}:{account.api_key}".encode()).hexdigest()[:60]
        self.listen_keys[key] = (account, market)
        return key

    # ------------------------------------------------------------------ periodic pushes

    def inject_depth_gap(self, market: str, symbol: str) -> None:
        """Fault knob: the next diff-depth event of every stream of ``symbol`` is never sent."""
        self.gap_pending.add((market, symbol))

    def after_operation(self) -> None:
        """Push what the venue sends in real time: 0 ms depth streams and best bid/ask changes."""
        for stream in self.depth.values():
            if stream.interval == 0 and stream.dirty:
                self._push_depth(stream)
        for market, name in self.bbo_streams:
            if self.subs.get((market, name)):
                self._push_bbo(market, name)

    def _push_bbo(self, market: str, name: str) -> None:
        inst = self.engine.instruments[(market, name.partition("@")[0].upper())]
        book = self.engine.books[inst.key]
        bid, ask = book.bids.best(), book.asks.best()
        top = (bid.price if bid else None, bid.total() if bid else None,
               ask.price if ask else None, ask.total() if ask else None)
        if self.bbo_sent.get((market, name)) == top:
            return
        self.bbo_sent[(market, name)] = top
        zero = Decimal(0)
        payload = {"u": book.update_id, "s": inst.symbol,
                   "b": wire.price_text(inst, top[0] or zero), "B": wire.qty_text(inst, top[1] or zero),
                   "a": wire.price_text(inst, top[2] or zero), "A": wire.qty_text(inst, top[3] or zero)}
        if market == USDM:
            now = now_ms()
            payload = {"e": "bookTicker", **payload, "E": now, "T": now}
        self._publish(market, name, payload)

    def _push_depth(self, stream: DepthStream) -> None:
        inst = stream.inst
        dirty, stream.dirty = stream.dirty, {}
        first, last = stream.first, stream.last
        stream.first = None
        prev_u, stream.prev_u = stream.prev_u, last
        stream.pushed += 1
        key = (inst.market, inst.symbol)
        every = self.faults.depth_gap_every
        if key in self.gap_pending or (every and stream.pushed % every == 0):
            self.gap_pending.discard(key)
            self.counters["depth_gaps"] += 1
            return
        bids = [[wire.price_text(inst, p), wire.qty_text(inst, q)] for (b, p), q in dirty.items() if b]
        asks = [[wire.price_text(inst, p), wire.qty_text(inst, q)] for (b, p), q in dirty.items() if not b]
        now = now_ms()
        payload = {"e": "depthUpdate", "E": now, "s": inst.symbol, "U": first, "u": last, "b": bids, "a": asks}
        if inst.market == USDM:
            payload = {"e": "depthUpdate", "E": now, "T": now, "s": inst.symbol, "U": first, "u": last,
                       "pu": prev_u, "b": bids, "a": asks}
        self._publish(inst.market, stream.name, payload)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            try:
                self._tick()
            except Exception:  # one bad push must not stop the market data
                log.exception("stream push failed")

    def _tick(self) -> None:
        mono = time.monotonic()
        for stream in self.depth.values():
            if stream.interval and stream.dirty and (mono - stream.last_push) * 1000 >= stream.interval:
                stream.last_push = mono
                self._push_depth(stream)
        if (mono - self.last_kline_push) * 1000 >= KLINE_PUSH_MS and self.kline_dirty:
            self.last_kline_push = mono
            dirty, self.kline_dirty = self.kline_dirty, set()
            self._push_klines(lambda key: key in dirty)
        if mono - self.last_kline_idle_push >= KLINE_IDLE_PUSH_S:
            # like the venue, candles are pushed every couple of seconds even without trades
            self.last_kline_idle_push = mono
            self._push_klines(lambda key: True)
        if mono - self.last_ticker_push >= 1.0:
            self.last_ticker_push = mono
            for (market, name), conns in self.subs.items():
                if conns and name.endswith("@ticker"):
                    inst = self.engine.instruments[(market, name.partition("@")[0].upper())]
                    t = wire.ticker_24h(self.engine, inst, now_ms())
                    self._publish(market, name, {
                        "e": "24hrTicker", "E": now_ms(), "s": inst.symbol, "p": t["priceChange"],
                        "P": t["priceChangePercent"], "w": t["weightedAvgPrice"], "c": t["lastPrice"],
                        "Q": t["lastQty"], "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
                        "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"], "C": t["closeTime"],
                        "F": 0, "L": 0, "n": t["count"]})

    def _push_klines(self, wanted) -> None:
        for (market, name), conns in list(self.subs.items()):
            if conns and "@kline_" in name:
                inst = self.engine.instruments[(market, name.partition("@")[0].upper())]
                if wanted(inst.key):
                    self._push_kline(inst, name)

    def _push_kline(self, inst: Instrument, name: str) -> None:
        interval = name.partition("@kline_")[2]
        span = wire.INTERVAL_MS[interval]
        klines = self.engine.klines[inst.key]
        if not klines:
            return
        start = klines[-1].open_time - klines[-1].open_time % span
        recent = [k for k in klines[-max(1, span // 60000 + 1):] if k.open_time >= start]
        k = wire.aggregate_klines(recent, span)[-1]
        now = now_ms()
        self._publish(inst.market, name, {"e": "kline", "E": now, "s": inst.symbol, "k": {
            "t": k.open_time, "T": k.open_time + span - 1, "s": inst.symbol, "i": interval, "f": 0, "L": 0,
            "o": wire.price_text(inst, k.open), "c": wire.price_text(inst, k.close),
            "h": wire.price_text(inst, k.high), "l": wire.price_text(inst, k.low),
            "v": wire.qty_text(inst, k.volume), "n": k.trades, "x": now >= k.open_time + span,
            "q": wire.f8(k.quote_volume), "V": "0", "Q": "0", "B": "0"}})
