"""Exchange adapters: per-venue YAML (ccxt id, options, rate limits, status map, order params)
plus an adapter class whose ``place_*`` hooks make the routing table. ``sim`` points ccxt at
sim_exchange."""
from .adapter import VENUES_DIR, Capabilities, VenueAdapter, VenueConfig, adapter_keys, load_config, make_adapter, register
from .errors import LocalReject, is_ambiguous, is_rate_limited, reject_code
from .ratelimit import Backoff, TokenBucket

__all__ = ["VENUES_DIR", "Capabilities", "VenueAdapter", "VenueConfig", "adapter_keys", "load_config",
           "make_adapter", "register", "LocalReject", "is_ambiguous", "is_rate_limited", "reject_code",
           "TokenBucket", "Backoff"]
