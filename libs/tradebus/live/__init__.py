"""In-process live trading without the bus: FLOX's CcxtBroker (see :mod:`tradebus.live.broker`)
and its routing table (:mod:`tradebus.live.routing`).

    from tradebus.live import CcxtBroker          # FLOX: from flox_py.ccxt import CcxtBroker
"""
from .broker import ADAPTERS_BY_EXCHANGE, SANDBOX_URL_ENV, STREAMS, CcxtBroker, UnsupportedOrderType
from .routing import UNIFIED_ORDERS

__all__ = ["CcxtBroker", "UnsupportedOrderType", "ADAPTERS_BY_EXCHANGE", "STREAMS", "SANDBOX_URL_ENV", "UNIFIED_ORDERS"]
