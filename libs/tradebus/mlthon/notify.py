"""Where ``publish_telegram`` messages go: the log by default, Telegram's Bot API when configured.

The bot token comes only from the environment (``TRADEBUS_TELEGRAM_BOT_TOKEN``) or a mounted
file (``TRADEBUS_TELEGRAM_BOT_TOKEN_FILE``), with the chat id in ``TRADEBUS_TELEGRAM_CHAT_ID``
and an optional ``TRADEBUS_TELEGRAM_API_URL`` (a local stand-in in tests). The token is never
logged: errors name the HTTP status or the failure, not the URL that holds it.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

log = logging.getLogger("tradebus.mlthon.notify")

DEFAULT_API_URL = "https://api.telegram.org"


class Notifier(Protocol):
    def send(self, text: str) -> None: ...

    def close(self) -> None: ...


class LogNotifier:
    """Writes each message to the log (the default sink)."""

    def __init__(self, strategy: str = "") -> None:
        self.strategy = strategy
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)
        log.info("telegram[%s]: %s", self.strategy, text)

    def close(self) -> None:
        return None


class TelegramNotifier:
    """Sends each message with the Bot API's ``sendMessage``, from a background thread so the
    strategy's callback never waits on the network. ``failures`` counts messages not delivered."""

    def __init__(self, token: str, chat_id: str, *, api_url: str = DEFAULT_API_URL, timeout: float = 10.0) -> None:
        if not token or not chat_id:
            raise ValueError("TelegramNotifier needs a bot token and a chat id")
        self._token = token
        self.chat_id = str(chat_id)
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.delivered = 0
        self.failures = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="telegram", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r}, api_url={self.api_url!r})"

    def send(self, text: str) -> None:
        self._queue.put(str(text))

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the sender."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (text := self._queue.get()) is not None:
            body = json.dumps({"chat_id": self.chat_id, "text": text}).encode()
            request = urllib.request.Request(f"{self.api_url}/bot{self._token}/sendMessage", data=body,
                                             headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    answer = json.loads(response.read() or b"{}")
                if answer.get("ok") is False:
                    raise ValueError(f"Telegram answered ok=false: {answer.get('description', '')}")
                self.delivered += 1
            except urllib.error.HTTPError as exc:
                self.failures += 1
                log.warning("telegram message not delivered: HTTP %s", exc.code)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures += 1
                reason = getattr(exc, "reason", exc)
                log.warning("telegram message not delivered: %s", str(reason).replace(self._token, "***"))


def notifier_from_env(strategy: str = "", environ=None) -> Notifier:
    """A TelegramNotifier when a bot token and a chat id are configured, else a LogNotifier."""
    env = os.environ if environ is None else environ
    token = env.get("TRADEBUS_TELEGRAM_BOT_TOKEN", "")
    token_file = env.get("TRADEBUS_TELEGRAM_BOT_TOKEN_FILE", "")
    if not token and token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"TRADEBUS_TELEGRAM_BOT_TOKEN_FILE: cannot read {token_file}: {exc.strerror}") from None
    chat_id = env.get("TRADEBUS_TELEGRAM_CHAT_ID", "")
    if token and chat_id:
        return TelegramNotifier(token, chat_id, api_url=env.get("TRADEBUS_TELEGRAM_API_URL", DEFAULT_API_URL))
    return LogNotifier(strategy)
