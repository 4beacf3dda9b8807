# FLOX "Connect FLOX to a CCXT exchange", Backoff and Subclassing per exchange, verbatim but for
# the import line (was: from flox_py.ccxt import CcxtBroker).
from tradebus.live import CcxtBroker
broker = CcxtBroker(
    "binance",
    retry_initial_delay=1.0, # first sleep after a failure
    retry_max_delay=60.0, # cap
    retry_multiplier=2.0, # delay *= multiplier on each consecutive fail
)
class BybitBroker(CcxtBroker):
    async def _place_stop_market(self, sym, side, sig):
        await self.exchange.create_order(
            sym, "stop_market", side, self._qty(sig), None,
            {"stopPrice": self._trigger(sig), "triggerBy": "MarkPrice"},
        )
