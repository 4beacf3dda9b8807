"""Point an unmodified ccxt / ccxt.pro Binance instance at a running sim_exchange (paper venue).

In libs so order_router, market_data and the in-process broker can use it without importing a service.
"""
from __future__ import annotations

from urllib.parse import urlsplit

SERVED_MARKET_TYPES = ("spot", "linear")


def _rewrite(url: str, base: str) -> str:
    """Map a venue URL onto the sim: REST keeps its path; a WS host's first label becomes a prefix.

    https://api.binance.com/api/v3        -> http://HOST:PORT/api/v3
    wss://stream.binance.com:9443/ws      -> ws://HOST:PORT/stream/ws
    wss://fstream.binance.com/ws          -> ws://HOST:PORT/fstream/ws
    wss://ws-api.binance.com:443/ws-api/v3 -> ws://HOST:PORT/ws-api/v3 (WS-API keeps its own path)
    """
    parts = urlsplit(url)
    target = urlsplit(base)
    if parts.scheme in ("ws", "wss"):
        label = (parts.hostname or "").split(".")[0]
        path = parts.path if label.startswith("ws-") else f"/{label}{parts.path}"
        scheme = "wss" if target.scheme == "https" else "ws"
    else:
        path, scheme = parts.path, target.scheme
    return f"{scheme}://{target.netloc}{path}"


def _rewrite_tree(node, base: str):
    if isinstance(node, dict):
        return {key: _rewrite_tree(value, base) for key, value in node.items()}
    if isinstance(node, str) and "://" in node:
        return _rewrite(node, base)
    return node


def _venue_error_map(exchange) -> None:
    """Use the error map ccxt would pick for the real venue's URL.

    ccxt's Binance chooses a per-market-type map (spot / linear ...) by matching the request URL
    against ``https://fapi.binance.com/`` and the like; a sim URL matches none, so codes such as
    -2019 (margin) would fall back to the generic map. Merging the map of the instance's default
    market type into the generic one restores the classes the real venue gives. Only instance
    data changes, no ccxt code.
    """
    exceptions = getattr(exchange, "exceptions", None)
    if not isinstance(exceptions, dict):
        return
    options = exchange.options
    linear = options.get("defaultSubType") == "linear" or options.get("defaultType") in ("swap", "future")
    per_type = exceptions.get("linear" if linear else "spot")
    if not isinstance(per_type, dict):
        return
    merged = dict(exceptions)
    for kind in ("exact", "broad"):
        merged[kind] = {**exceptions.get(kind, {}), **per_type.get(kind, {})}
    exchange.exceptions = merged


def point_ccxt_at_sim(exchange, base_url: str, venue_errors: bool = True):
    """Rewrite every ``urls['api']`` entry (REST and WS) of ``exchange`` to the sim at ``base_url``.

    Also keeps ``load_markets`` on served endpoints: market types limited to spot and USD-M,
    no currencies (a private SAPI call) and no margin pairs. With ``venue_errors`` the error map
    of the instance's market type applies as it would against the real venue (use
    ``binanceusdm`` for futures errors, ``binance`` for spot ones). Returns the exchange.
    """
    base_url = base_url.rstrip("/")
    exchange.urls["api"] = _rewrite_tree(exchange.urls["api"], base_url)
    if venue_errors:
        _venue_error_map(exchange)
    options = exchange.options
    fetch_markets = options.get("fetchMarkets")
    if isinstance(fetch_markets, dict):
        types = [t for t in fetch_markets.get("types", SERVED_MARKET_TYPES) if t in SERVED_MARKET_TYPES]
        options["fetchMarkets"] = {**fetch_markets, "types": types or list(SERVED_MARKET_TYPES)}
    else:
        options["fetchMarkets"] = {"types": list(SERVED_MARKET_TYPES)}
    if exchange.id == "binance":
        options["fetchMarkets"]["types"] = list(SERVED_MARKET_TYPES)
    options["fetchCurrencies"] = False
    options["fetchMargins"] = False
    exchange.has["fetchCurrencies"] = False
    return exchange
