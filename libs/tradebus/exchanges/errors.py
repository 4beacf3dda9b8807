"""ccxt exceptions -> unified RejectCode (the venue's message is kept as the reason)."""
from __future__ import annotations

import ccxt

from tradebus.proto import RejectCode

__all__ = ["reject_code", "is_ambiguous", "is_rate_limited", "LocalReject"]

# Most specific first: ccxt's hierarchy nests OrderNotFound in InvalidOrder, RateLimitExceeded
# and DDoSProtection in NetworkError, OnMaintenance in ExchangeNotAvailable in NetworkError.
_TABLE: tuple[tuple[type[Exception], RejectCode], ...] = (
    (ccxt.OrderNotFound, RejectCode.ORDER_NOT_FOUND),
    (ccxt.InsufficientFunds, RejectCode.INSUFFICIENT_FUNDS),
    (ccxt.RateLimitExceeded, RejectCode.RATE_LIMITED),
    (ccxt.DDoSProtection, RejectCode.RATE_LIMITED),
    (ccxt.ExchangeNotAvailable, RejectCode.EXCHANGE_UNAVAILABLE),
    (ccxt.NetworkError, RejectCode.NETWORK_ERROR),
    (ccxt.AuthenticationError, RejectCode.AUTH_FAILED),
    (ccxt.PermissionDenied, RejectCode.AUTH_FAILED),
    (ccxt.AccountSuspended, RejectCode.AUTH_FAILED),
    (ccxt.NotSupported, RejectCode.UNSUPPORTED),
    (ccxt.InvalidOrder, RejectCode.INVALID_ORDER),
    (ccxt.BadSymbol, RejectCode.INVALID_ORDER),
    (ccxt.BadRequest, RejectCode.INVALID_ORDER),
    (ccxt.ArgumentsRequired, RejectCode.INVALID_ORDER),
)


class LocalReject(Exception):
    """A request refused before anything was sent to the venue."""

    def __init__(self, code: RejectCode, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def reject_code(exc: BaseException) -> RejectCode:
    """The unified code of a ccxt (or local) exception; UNKNOWN for anything else."""
    if isinstance(exc, LocalReject):
        return exc.code
    for cls, code in _TABLE:
        if isinstance(exc, cls):
            return code
    return RejectCode.UNKNOWN


def is_rate_limited(exc: BaseException) -> bool:
    """The venue refused for load: nothing happened, retry after a pause."""
    return isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded))


def is_ambiguous(exc: BaseException) -> bool:
    """The request may or may not have reached the venue (timeout, dropped connection, 5xx)."""
    return isinstance(exc, (ccxt.RequestTimeout, ccxt.NetworkError)) and not isinstance(
        exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.OnMaintenance))
