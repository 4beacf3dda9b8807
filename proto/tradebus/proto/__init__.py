"""tradebus wire contract: every event and request that crosses the bus, and where it goes.

msgspec Structs tagged by ``type`` (one union per stream), the subject builders, stream and
KV names, and reusable codecs. Imports nothing of tradebus outside this package.
"""
from .account import *  # noqa: F403
from .account import __all__ as _account
from .backtest import *  # noqa: F403
from .backtest import __all__ as _backtest
from .base import *  # noqa: F403
from .base import __all__ as _base
from .codec import *  # noqa: F403
from .codec import __all__ as _codec
from .control import *  # noqa: F403
from .control import __all__ as _control
from .instrument import *  # noqa: F403
from .instrument import __all__ as _instrument
from .market import *  # noqa: F403
from .market import __all__ as _market
from .order_events import *  # noqa: F403
from .order_events import __all__ as _order_events
from .orders import *  # noqa: F403
from .orders import __all__ as _orders
from .subjects import *  # noqa: F403
from .subjects import __all__ as _subjects

__all__ = sorted(
    set(_base + _market + _instrument + _orders + _order_events + _account + _control + _backtest
        + _subjects + _codec)
)
