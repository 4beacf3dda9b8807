"""Market-data files: the data folder, and downloads through ccxt (``tradebus data download``).

The data folder is ``$TRADEBUS_DATA_DIR``; when that is unset, the first ``shared/data`` folder
found in the working directory or one of its parents (a checkout beside ``../shared``). It never
depends on where this package is installed.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "DataDirError", "data_dir", "find_data_dir"]

DATA_DIR_ENV = "TRADEBUS_DATA_DIR"


class DataDirError(FileNotFoundError):
    """No market data folder: $TRADEBUS_DATA_DIR is unset (and no shared/data was found) or wrong."""


def find_data_dir(env: Mapping[str, str] | None = None, start: Path | None = None) -> Path | None:
    """``$TRADEBUS_DATA_DIR`` (as given), else ``shared/data`` in ``start`` (the working directory)
    or its nearest parent that has one, else None."""
    env = os.environ if env is None else env
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def data_dir(env: Mapping[str, str] | None = None, start: Path | None = None) -> Path:
    """The market data folder (see the module docstring); DataDirError naming the setting when missing."""
    found = find_data_dir(env, start)
    if found is None:
        where = (start or Path.cwd()).resolve()
        raise DataDirError(f"no market data folder: set {DATA_DIR_ENV} to it (no shared/data in {where} "
                           "or its parents)")
    if not found.is_dir():
        raise DataDirError(f"{DATA_DIR_ENV}={found} is not a folder")
    return found
