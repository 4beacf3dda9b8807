"""Market-data files: the data folder, and downloads through ccxt (``tradebus data download``).

The data folder is ``$TRADEBUS_DATA_DIR``; when that is unset, ``../shared/data`` beside the
source checkout tradebus runs from (an editable install), else the first ``shared/data`` folder
in the working directory or one of its parents. An installed package never looks beside its
own files: there the setting (or the working directory) is the only way.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "DataDirError", "data_dir", "find_data_dir", "source_checkout"]

DATA_DIR_ENV = "TRADEBUS_DATA_DIR"


class DataDirError(FileNotFoundError):
    """No market data folder: $TRADEBUS_DATA_DIR is unset (and no shared/data was found) or wrong."""


def source_checkout(module_file: str = __file__) -> Path | None:
    """The repository root when ``module_file`` lies in a tradebus source checkout, else None."""
    root = Path(module_file).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "libs" / "tradebus").is_dir() else None


SOURCE_CHECKOUT = source_checkout()


def find_data_dir(env: Mapping[str, str] | None = None, start: Path | None = None,
                  checkout: Path | None = SOURCE_CHECKOUT) -> Path | None:
    """``$TRADEBUS_DATA_DIR`` (as given), else ``<checkout>/../shared/data``, else ``shared/data`` in
    ``start`` (the working directory) or its nearest parent that has one, else None."""
    env = os.environ if env is None else env
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    candidates = [checkout.parent / "shared" / "data"] if checkout is not None else []
    start = (start or Path.cwd()).resolve()
    candidates += [folder / "shared" / "data" for folder in (start, *start.parents)]
    return next((c for c in candidates if c.is_dir()), None)


def data_dir(env: Mapping[str, str] | None = None, start: Path | None = None,
             checkout: Path | None = SOURCE_CHECKOUT) -> Path:
    """The market data folder (see the module docstring); DataDirError naming the setting when missing."""
    found = find_data_dir(env, start, checkout)
    if found is None:
        where = (start or Path.cwd()).resolve()
        raise DataDirError(f"no market data folder: set {DATA_DIR_ENV} to it (no shared/data in {where} "
                           "or its parents)")
    if not found.is_dir():
        raise DataDirError(f"{DATA_DIR_ENV}={found} is not a folder")
    return found
