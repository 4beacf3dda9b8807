"""One handler per market-data stream; ``run_watch`` (../watch.py) drives each of them."""
from __future__ import annotations

from .bars import Bars
from .bbo import Bbo
from .book import Book
from .funding import Funding
from .trades import Trades

HANDLERS = {"trades": Trades, "book": Book, "bbo": Bbo, "bars": Bars, "funding": Funding}

__all__ = ["HANDLERS", "Trades", "Book", "Bbo", "Bars", "Funding"]
