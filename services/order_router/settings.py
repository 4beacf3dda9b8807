"""order_router settings: ``services.order_router.settings`` of the deployment file."""
from __future__ import annotations

from tradebus.config import Settings
from tradebus.execution import RiskLimits
from tradebus.retry import BackoffSettings

__all__ = ["RouterOptions", "RouterSettings"]


class RouterOptions(Settings):
    """How the router consumes, retries and reconciles (``settings.router``). ``backoff`` paces
    reconnects, rate-limited and ambiguous retries; its ``initial`` is also the redelivery delay
    of a request whose outcome is unknown."""

    ack_wait: float = 60.0
    max_deliver: int = -1
    max_ack_pending: int = 2000
    fetch_batch: int = 256
    backoff: BackoffSettings = BackoffSettings(initial=0.25, multiplier=2.0, cap=10.0)
    rate_limit_retries: int = 8
    ambiguous_retries: int = 5
    watch: bool = True
    reconcile_on_start: bool = True
    stale_after_s: float = 300.0  # a NewOrder older than this (ts_init) when first seen is rejected, not sent
    keep_done: int = 1000  # terminal orders kept whole in memory; older ones are forgotten (state.py)
    clock_skew_s: float = 60.0  # forgotten ids are remembered stale_after_s + this (0 stale_after_s: for ever)
    sweep_every_s: float = 30.0  # how often ids past that are dropped and their KV entries purged
    trade_grace_s: float = 0.5  # how long a counted execution may wait for its trade record before a catch-up
    trade_fetch_retries: int = 3


class RouterSettings(Settings):
    """``services.order_router.settings`` of the deployment file."""

    venue: str = "sim"
    adapters: tuple[str, ...] = ("binance:spot", "binance:usdm")
    account: str = "paper"  # label printed before trading; never a key
    sim_url: str = "http://127.0.0.1:8765"
    sim_api_key: str = "sim-key"  # the sim's paper account (public test keys of sim_exchange)
    sim_secret: str = "sim-secret"
    sandbox: bool = True  # live only: use the venue's testnet
    timeout_ms: int = 10000
    order_entry: str | None = None  # rest | ws (the venue's WebSocket API); None: each adapter's YAML
    risk: dict[str, RiskLimits] = {}
    router: RouterOptions = RouterOptions()
