"""Exchange adapters: per-venue YAML (ccxt id, options, rate-limit rules, status maps, order
params, capabilities) plus an adapter class whose ``place_*`` hooks make the routing table; a
registry that knows each venue as ``binance:spot`` and as ``BINANCE___SPOT``. ``sim`` points
ccxt at sim_exchange."""
from .adapter import VenueAdapter, make_adapter, register
from .capabilities import UnsupportedSubscription, check_subscription
from .errors import LocalReject, is_ambiguous, is_rate_limited, reject_code
from .ratelimit import (
                        Backoff,
                        RateLimiter,
                        RateLimitRejected,
                        RateLimitRule,
                        RateLimitScope,
                        RateLimitType,
                        RuleStatus,
                        TokenBucket,
                        rate_limit_info,
)
from .venue_config import (
                        VENUES_DIR,
                        Capabilities,
                        FeedCapabilities,
                        VenueConfig,
                        adapter_keys,
                        asset_types,
                        bt_api_key,
                        canonical_key,
                        load_config,
)

__all__ = ["VENUES_DIR", "Capabilities", "FeedCapabilities", "VenueAdapter", "VenueConfig", "adapter_keys",
           "asset_types", "bt_api_key", "canonical_key", "load_config", "make_adapter", "register",
           "LocalReject", "is_ambiguous", "is_rate_limited", "reject_code", "UnsupportedSubscription",
           "check_subscription", "RateLimiter", "RateLimitRejected", "RateLimitRule", "RateLimitScope",
           "RateLimitType", "RuleStatus", "TokenBucket", "Backoff", "rate_limit_info"]
