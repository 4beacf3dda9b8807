"""publish_telegram: the log by default, the Bot API's sendMessage against a local stand-in."""
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tradebus.mlthon import LogNotifier, TelegramNotifier, notifier_from_env

from .conftest import Recorder, market, run

TOKEN = "123456:FAKE-bot-token-never-logged"


@pytest.fixture
def bot_api():
    """A local stand-in for the Telegram Bot API: records each request, answers like Telegram."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, json.loads(body)))
            ok = "/bot" + TOKEN + "/sendMessage" == self.path
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"ok": ok, "result": {}} if ok else {"ok": False}).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_default_sink_is_the_log(caplog):
    notifier = notifier_from_env("demo", environ={})
    assert isinstance(notifier, LogNotifier)
    with caplog.at_level(logging.INFO, logger="tradebus.mlthon.notify"):
        notifier.send("hello")
    assert "hello" in caplog.text and notifier.sent == ["hello"]


def test_publish_telegram_reaches_the_bot_api(bot_api, tmp_path, caplog):
    url, seen = bot_api
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    notifier = notifier_from_env("demo", environ={"TRADEBUS_TELEGRAM_BOT_TOKEN_FILE": str(token_file),
                                                  "TRADEBUS_TELEGRAM_CHAT_ID": "-10042",
                                                  "TRADEBUS_TELEGRAM_API_URL": url})
    assert isinstance(notifier, TelegramNotifier) and TOKEN not in repr(notifier)

    def send(self, instruments):
        self.env.publish_telegram("filled 0.5 BTC")

    with caplog.at_level(logging.DEBUG):
        run(Recorder(hooks={"on_instruments": send}), market(3), notifier=notifier)
        notifier.close()
    assert seen == [(f"/bot{TOKEN}/sendMessage", {"chat_id": "-10042", "text": "filled 0.5 BTC"})]
    assert notifier.delivered == 1 and notifier.failures == 0
    assert TOKEN not in caplog.text


def test_a_refused_message_is_counted_and_the_token_stays_out_of_the_log(bot_api, caplog):
    url, seen = bot_api
    notifier = TelegramNotifier("999:wrong-token", "1", api_url=url)
    with caplog.at_level(logging.DEBUG):
        notifier.send("x")
        notifier.close()
    assert notifier.failures == 1 and len(seen) == 1
    assert "HTTP 401" in caplog.text and "wrong-token" not in caplog.text


def test_unreachable_api_is_counted(caplog):
    notifier = TelegramNotifier(TOKEN, "1", api_url="http://127.0.0.1:9", timeout=2)
    with caplog.at_level(logging.DEBUG):
        notifier.send("x")
        notifier.close()
    assert notifier.failures == 1 and TOKEN not in caplog.text
