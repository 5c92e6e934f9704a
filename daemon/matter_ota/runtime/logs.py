"""Daemon log lines: one line per event with stable keys, as text or JSON.

Every module logs ``event=<name> key=value ...`` through the standard :mod:`logging` module
(``log.info("event=query node=0x%X decision=%s", ...)``); this module only decides how a record
reaches the operator:

* ``text``: ``2026-11-29T18:50:00.123Z INFO matter_ota.serve event=start port=5540`` (the
  message as written, after a UTC timestamp, the level and the logger);
* ``json``: ``{"ts": "...", "level": "info", "logger": "...", "event": "start", "port":
  "5540"}``: the ``key=value`` pairs of the message become fields (values stay strings, as
  written), text before the first key goes to ``msg``, a traceback to ``exc``.

A value with spaces is written quoted by :func:`kv` (``reason="no such file"``); values logged
without quotes run to the next `` key=``, so a sentence such as a config error's reason still
lands whole in its field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

_KEY = re.compile(r"(?<!\S)([A-Za-z_][A-Za-z0-9_.]*)=")
_PLAIN = re.compile(r"[^\s\"=]*")
_JSON = json.JSONDecoder()


def kv(**fields: object) -> str:
    """``key=value`` pairs in order, values with spaces, quotes or ``=`` JSON-quoted."""
    return " ".join(f"{key}={quote(value)}" for key, value in fields.items())


def quote(value: object) -> str:
    text = "-" if value is None else str(value)
    return text if _PLAIN.fullmatch(text) and text else json.dumps(text)


def parse_fields(message: str) -> dict[str, str]:
    """The ``key=value`` pairs of a log message (see the module docstring)."""
    match = _KEY.search(message)
    if match is None:
        return {"msg": message} if message else {}
    fields: dict[str, str] = {}
    head = message[: match.start()].strip()
    if head:
        fields["msg"] = head
    while match is not None:
        key, start = match.group(1), match.end()
        if message.startswith('"', start):  # a quoted value (kv): read it as JSON
            try:
                value, end = _JSON.raw_decode(message, start)
            except ValueError:
                pass
            else:
                if end == len(message) or message[end].isspace():
                    fields.setdefault(key, str(value))
                    match = _KEY.search(message, end)
                    continue
        following = _KEY.search(message, start)
        end = following.start() if following is not None else len(message)
        fields.setdefault(key, message[start:end].strip())
        match = following
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower(),
                                 "logger": record.name}
        for key, value in parse_fields(record.getMessage()).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """Ours, so that configuring again replaces it instead of doubling every line."""


def configure(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr) in ``fmt``."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(LEVELS[level.lower()])


def set_level(level: str) -> None:
    """Change the level at run time (a config reload)."""
    logging.getLogger().setLevel(LEVELS[level.lower()])
