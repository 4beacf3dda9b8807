"""Deployment checks share one set-up: the dev overlay's Secrets come from files git ignores."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "compose"))
from make_secrets import write_secrets  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def dev_secrets():
    """Make the dev overlay's secret files when missing (a fresh clone has none), for every test
    that renders or plays the overlay."""
    write_secrets(ROOT / "deploy" / "k8s" / "overlays" / "dev" / "secrets")
