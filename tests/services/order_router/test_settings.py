"""Router settings decode strictly: a typo anywhere under them fails loudly."""
from __future__ import annotations

import pytest
import yaml

from tradebus.config import ConfigError, load_deployment, service_section
from tradebus.services.order_router.settings import RouterOptions, RouterSettings


@pytest.fixture
def config(tmp_path):
    """The deployment file a user writes, with ``settings`` under services.order_router."""
    def write(settings: dict):
        path = tmp_path / "deploy.yaml"
        path.write_text(yaml.safe_dump({"services": {"order_router": {
            "module": "tradebus.services.order_router", "settings": settings}}}))
        return load_deployment(path)
    return write


def test_a_typo_under_router_options_is_an_error(config):
    with pytest.raises(ConfigError, match="ack_wiat"):
        service_section(config({"router": {"ack_wiat": 5}}), "order_router", RouterSettings)
    with pytest.raises(ConfigError, match="max_ordr_qty"):
        service_section(config({"risk": {"*": {"max_ordr_qty": 1}}}), "order_router", RouterSettings)
    with pytest.raises(ConfigError, match="venu"):
        service_section(config({"venu": "x"}), "order_router", RouterSettings)


def test_spelled_right_they_are_taken(config):
    settings = service_section(config({"venue": "v1", "router": {"ack_wait": 5, "trade_grace_s": 0.1},
                                       "risk": {"*": {"max_order_qty": 1.5}}}), "order_router", RouterSettings)
    assert settings.venue == "v1" and settings.router == RouterOptions(ack_wait=5, trade_grace_s=0.1)
    assert settings.risk["*"].max_order_qty == 1.5
