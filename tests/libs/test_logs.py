"""tradebus.logs: one JSON event per line (or the human format), context fields, redaction."""
import io
import json
import logging
import os

import pytest

from tradebus import logs
from tradebus.logs import (
    Redactor,
    configure_logging,
    order_fields,
    parse_event,
    render_event,
    resolve_format,
    secret_values,
    set_log_context,
)
from tradebus.proto import NewOrder, OrderType, Side


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._context.clear()


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_each_event_is_one_json_line_with_its_context_and_extra_fields(restore_logging):
    out = io.StringIO()
    assert configure_logging("order_router", "INFO", "json", stream=out) == "json"
    set_log_context(instance="order_router-2")
    order = NewOrder(client_order_id="c-123", strategy="sma", venue="sim", symbol="BTC/USDT", side=Side.BUY,
                     order_type=OrderType.MARKET, qty=1.0, ts_init=1)
    log = logging.getLogger("tradebus.order_router")
    log.info("accepted %s", order.client_order_id, extra=order_fields(order, "ord.req.sim"))
    log.debug("not shown at INFO")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("failed")
    first, second = (json.loads(line) for line in lines_of(out))
    assert first["service"] == "order_router" and first["instance"] == "order_router-2"
    assert first["level"] == "INFO" and first["logger"] == "tradebus.order_router"
    assert first["message"] == "accepted c-123"
    assert first["time"].endswith("Z") and first["time"][:4].isdigit() and "T" in first["time"]
    assert {k: first[k] for k in ("subject", "strategy", "client_order_id", "venue")} == {
        "subject": "ord.req.sim", "strategy": "sma", "client_order_id": "c-123", "venue": "sim"}
    assert "exchange_order_id" not in first  # unset ids are left out
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exception"]


def test_the_human_format_shows_the_same_event(restore_logging):
    out = io.StringIO()
    configure_logging("strategy_runner", "INFO", "text", stream=out)
    logging.getLogger("x").warning("careful", extra={"strategy": "sma"})
    (line,) = lines_of(out)
    assert " WARNING strategy_runner: careful  strategy=sma" in line
    assert render_event(json.loads(json.dumps({"time": "2026-12-05T10:00:00.123456Z", "service": "a", "instance": "a-1",
                                              "level": "INFO", "logger": "l", "message": "m", "venue": "sim"}))) \
        == "2026-12-05 10:00:00.123 INFO a[a-1]: m  venue=sim"


def test_the_format_comes_from_the_environment_then_the_file_then_the_terminal():
    pipe = io.StringIO()
    assert resolve_format(None, pipe, env={}) == "json"
    assert resolve_format("text", pipe, env={}) == "text"
    assert resolve_format("text", pipe, env={"TRADEBUS_LOG_FORMAT": "json"}) == "json"
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "w") as terminal:
        assert resolve_format("auto", terminal, env={}) == "text"
        assert resolve_format("json", terminal, env={}) == "json"
    os.close(primary)
    with pytest.raises(ValueError, match="log format must be one of"):
        resolve_format(None, pipe, env={"TRADEBUS_LOG_FORMAT": "xml"})


def test_a_bad_format_variable_is_reported_and_auto_is_used(restore_logging, monkeypatch):
    monkeypatch.setenv("TRADEBUS_LOG_FORMAT", "yaml")
    out = io.StringIO()
    assert configure_logging("svc", stream=out) == "json"
    event = json.loads(lines_of(out)[0])
    assert event["level"] == "WARNING" and "'yaml'" in event["message"]


def test_secrets_of_the_environment_are_redacted_as_a_safety_net(restore_logging, monkeypatch, tmp_path):
    seed = tmp_path / "user.creds"
    seed.write_text("-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.payload\n"
                    "------END NATS USER JWT------\n\nSUAKYITMHPMSYUGPNQBLLPGOPFQN44XNCGXHNSHLJJVMD\n")
    password_file = tmp_path / "password"
    password_file.write_text("file-password-42\n")
    monkeypatch.setenv("TRADEBUS_BINANCE_SECRET", "hunter2-binance-secret")
    monkeypatch.setenv("TRADEBUS_NATS_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("TRADEBUS_NATS_CREDS", str(seed))
    monkeypatch.setenv("TRADEBUS_NATS_TOKEN", "abc")  # too short to redact safely
    monkeypatch.setenv("TRADEBUS_NATS_URL", "nats://127.0.0.1:4222")  # not a secret
    values = secret_values(os.environ)
    assert {"hunter2-binance-secret", "file-password-42", "SUAKYITMHPMSYUGPNQBLLPGOPFQN44XNCGXHNSHLJJVMD",
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5In0.payload"} <= set(values)
    assert "abc" not in values and "nats://127.0.0.1:4222" not in values
    for fmt in ("json", "text"):
        out = io.StringIO()
        configure_logging("order_router", "INFO", fmt, stream=out)
        log = logging.getLogger("leaky")
        log.warning("key %s and %s", "hunter2-binance-secret", "file-password-42", extra={"venue": "file-password-42"})
        try:
            raise ValueError("signed with SUAKYITMHPMSYUGPNQBLLPGOPFQN44XNCGXHNSHLJJVMD")
        except ValueError:
            log.exception("failed")
        text = out.getvalue()
        for secret in ("hunter2-binance-secret", "file-password-42", "SUAKYITMHPMSYUGPNQBLLPGOPFQN44XNCGXHNSHLJJVMD"):
            assert secret not in text
        assert "key *** and ***" in text and "ValueError: signed with ***" in text
        assert ("venue=***" if fmt == "text" else '"venue":"***"') in text


def test_redaction_takes_the_longest_secret_first():
    redact = Redactor(["secret-one", "secret-one-longer"])
    assert redact("a secret-one-longer b secret-one") == "a *** b ***"


def test_only_json_event_lines_parse_as_events():
    assert parse_event('{"time": "t", "message": "m", "level": "INFO"}') == {"time": "t", "message": "m",
                                                                              "level": "INFO"}
    assert parse_event("sim_exchange listening on http://127.0.0.1:1") is None
    assert parse_event('{"not": "an event"}') is None
    assert parse_event("{broken") is None
