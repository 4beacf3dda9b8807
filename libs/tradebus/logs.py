"""How every tradebus process logs: one JSON event per line, or the human format on a terminal.

    configure_logging("order_router", level="INFO")   # once, at process start
    set_log_context(instance="order_router-1")         # fields every later event carries
    log.info("order %s accepted", coid, extra={"strategy": name, "client_order_id": coid, "venue": venue})

A JSON event holds ``time`` (ISO 8601, UTC), ``service``, ``instance``, ``level``, ``logger``,
``message``, every field passed with ``extra=`` (``subject``, ``strategy``, ``client_order_id``,
``exchange_order_id``, ``venue``...) and ``exception`` (the traceback) when there is one. The
format is ``json`` or ``text`` as ``TRADEBUS_LOG_FORMAT`` says, else as the deployment file's
``logging.format`` says, else (``auto``) JSON unless stderr is a terminal.

Secrets are never passed to a logger. As a safety net every event is redacted: the values of the
environment variables that hold secrets (names with PASSWORD, SECRET, TOKEN, API_KEY, NKEY or
CREDS; for ``*_FILE``, ``*_CREDS`` and ``*_SEED`` ones the file's content) become ``***``.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

__all__ = ["configure_logging", "set_log_context", "use_log_format", "redact_also", "resolve_format",
           "order_fields", "parse_event", "message_of", "render_event", "Redactor", "LOG_FORMATS"]

LOG_FORMATS = ("auto", "json", "text")
FORMAT_ENV = "TRADEBUS_LOG_FORMAT"
REDACTED = "***"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|NKEY|CREDS", re.IGNORECASE)
MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words
MAX_SECRET_FILE = 64 * 1024

# Attributes every LogRecord has: the rest of a record's attributes came through ``extra=``.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Fields the human format shows in its head, not among the extras.
_HEAD_FIELDS = ("time", "service", "instance", "level", "logger", "message", "exception")

ORDER_FIELDS = ("strategy", "venue", "client_order_id", "exchange_order_id")

_context: dict[str, str] = {}


def order_fields(message: Any, subject: str = "") -> dict[str, str]:
    """The ``extra=`` of a log line about an order message: its subject and order ids, where set."""
    fields = {name: str(value) for name in ORDER_FIELDS if (value := getattr(message, name, None))}
    if subject:
        fields["subject"] = subject
    return fields


def _secret_file_values(path: str) -> list[str]:
    try:
        file = Path(path).expanduser()
        if not file.is_file() or file.stat().st_size > MAX_SECRET_FILE:
            return []
        text = file.read_text(errors="replace").strip()
    except OSError:
        return []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1:
        return lines
    return [line for line in lines if not any(c.isspace() for c in line)]  # .creds: the JWT and the seed


def secret_values(env: Mapping[str, str]) -> list[str]:
    """The secrets named by ``env``: values of secret-named variables, or the content of the files they name."""
    values: set[str] = set()
    for name, value in env.items():
        if not value or not SECRET_NAME.search(name):
            continue
        if name.endswith(("_FILE", "_CREDS", "_SEED")):
            values.update(_secret_file_values(value))
        else:
            values.add(value)
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


class Redactor:
    """Replaces every known secret in a text by ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pattern: re.Pattern[str] | None = None
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        self._secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        ordered = sorted(self._secrets, key=len, reverse=True)  # a secret inside a longer one goes second
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern else text


_redact = Redactor()


def redact_also(*secrets: str) -> None:
    """Redact these values too (credentials a process made after its logging was set up)."""
    _redact.add(*secrets)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def event_of(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """The event a record stands for, redacted."""
    event: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        **_context,
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _RECORD_FIELDS and not key.startswith("_"):
            event[key] = _jsonable(value)
    if record.exc_info:
        event["exception"] = formatter.formatException(record.exc_info)
    elif record.exc_text:
        event["exception"] = record.exc_text
    if record.stack_info:
        event["stack"] = formatter.formatStack(record.stack_info)
    return {k: _redact(v) if isinstance(v, str) else v for k, v in event.items()}


def render_event(event: Mapping[str, Any]) -> str:
    """The human form of an event: time, level, service[instance] (or logger), message, extra fields."""
    when = str(event.get("time", "")).replace("T", " ").rstrip("Z")[:23]
    who = str(event.get("service") or event.get("logger") or "")
    instance = event.get("instance")
    if instance and instance != who:
        who += f"[{instance}]"
    extras = " ".join(f"{k}={v}" for k, v in event.items() if k not in _HEAD_FIELDS and v not in (None, ""))
    line = f"{when} {event.get('level', '')} {who}: {event.get('message', '')}" + (f"  {extras}" if extras else "")
    if event.get("exception"):
        line += "\n" + str(event["exception"])
    return line


_encode_json = msgspec.json.Encoder(enc_hook=str).encode  # a sixth of json.dumps' time on an order event


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _encode_json(event_of(record, self)).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return render_event(event_of(record, self))


def parse_event(line: str) -> dict[str, Any] | None:
    """The event a JSON log line holds; None for any other line (a plain print, a text log line)."""
    if not line.startswith("{"):
        return None
    try:
        event = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    return event if isinstance(event, dict) and "time" in event and "message" in event else None


def message_of(line: str) -> str:
    """The message of a JSON log line, or the line itself (a plain print, a text log line)."""
    event = parse_event(line)
    return str(event["message"]) if event else line


def resolve_format(configured: str | None = None, stream: TextIO | None = None,
                   env: Mapping[str, str] | None = None) -> str:
    """``json`` or ``text``: $TRADEBUS_LOG_FORMAT, else ``configured``, else by whether ``stream`` is a terminal."""
    env = os.environ if env is None else env
    for choice in (env.get(FORMAT_ENV, "").strip().lower(), (configured or "").strip().lower()):
        if choice in ("json", "text"):
            return choice
        if choice and choice != "auto":
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)} (got {choice!r})")
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


_handler: logging.Handler | None = None


def configure_logging(service: str, level: str | int = "INFO", log_format: str | None = None,
                      stream: TextIO | None = None, instance: str = "") -> str:
    """Send every logger's events to ``stream`` (stderr) in one format; returns the format used.

    Replaces the root logger's handlers, so calling it again (e.g. after reading the deployment
    file) simply reconfigures. The secrets of the environment are read now.
    """
    global _handler
    stream = sys.stderr if stream is None else stream
    try:
        fmt, problem = resolve_format(log_format, stream), ""
    except ValueError as exc:
        fmt, problem = resolve_format("auto", stream, env={}), f"{exc}: using auto"
    _context.clear()
    _context["service"] = service
    if instance:
        _context["instance"] = instance
    _redact.add(*secret_values(os.environ))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    numeric = level if isinstance(level, int) else getattr(logging, str(level).upper(), logging.INFO)
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    _handler = handler
    if problem:
        logging.getLogger("tradebus.logs").warning("%s %s", FORMAT_ENV, problem)
    return fmt


def use_log_format(configured: str | None) -> str:
    """Apply the deployment file's ``logging.format`` (the environment still wins) to the handler
    :func:`configure_logging` installed (none: the caller's own logging setup is left alone)."""
    if _handler is None:
        return ""
    stream = getattr(_handler, "stream", None)
    try:
        fmt = resolve_format(configured, stream)
    except ValueError:  # a bad $TRADEBUS_LOG_FORMAT, already reported by configure_logging
        fmt = resolve_format(configured, stream, env={})
    _handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return fmt


def set_log_context(**fields: str) -> None:
    """Fields every later event carries (``instance`` once it is known)."""
    _context.update({k: v for k, v in fields.items() if v})
