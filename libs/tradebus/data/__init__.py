"""Market-data files: the data folder, and downloads through ccxt (``tradebus data download``)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """$TRADEBUS_DATA_DIR, else ``<repo>/../shared/data``."""
    return Path(os.environ.get("TRADEBUS_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
