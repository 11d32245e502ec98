"""How ``serve`` logs: JSON lines for machines or text for people, secrets redacted in both.

Every line of a serving process goes through here: the access log
(``access_log``), uvicorn's own lines and the gateway's warnings. In JSON each
is one object with ``time``, ``level``, ``logger`` and ``message``; access
lines add the exchange's fields. WEIGHTGATE_LOG_FORMAT chooses: ``auto`` (the
default) writes text to a terminal and JSON anywhere else (a container, a
process manager, a file).
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from uvicorn.logging import DefaultFormatter

from gateway.api.access_log import ACCESS_FIELDS, ACCESS_LOGGER, redact
from gateway.errors import InvalidInput

FORMATS = ("auto", "json", "text")


def resolve_format(setting: str, stream: TextIO | None = None) -> str:
    """``json`` or ``text``: what WEIGHTGATE_LOG_FORMAT asks for, ``auto`` decided by ``stream``."""
    if setting not in FORMATS:
        raise InvalidInput(f"WEIGHTGATE_LOG_FORMAT {setting!r}: expected auto, json or text")
    if setting != "auto":
        return setting
    return "text" if (stream or sys.stdout).isatty() else "json"


def serve_console(form: str) -> Console:
    """Where ``serve`` says what it has to say before serving: stderr, or log lines in JSON."""
    if form != "json":
        return Console(stderr=True, soft_wrap=True)
    logging.config.dictConfig(logging_config(form))
    lines = LoggedLines(logging.getLogger("gateway.serve"), logging.WARNING)
    return Console(file=lines, soft_wrap=True, color_system=None)


class LoggedLines(io.StringIO):
    """A text stream whose every line becomes a log record."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            if line.strip():
                self._logger.log(self._level, line)
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            self._logger.log(self._level, self._pending)
        self._pending = ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an access line's message names no query string at all."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker of ``serve --workers N``
        }
        fields = getattr(record, ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            line["message"] = f"{fields['method']} {fields['path']} {fields['status']}"
            line.update(fields)
        else:
            line["message"] = redact(record.getMessage())
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(DefaultFormatter):
    """uvicorn's ``INFO:     message`` lines, with secrets redacted from whatever they quote."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def logging_config(form: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` each serving process applies (uvicorn's ``log_config``).

    Access lines go to stdout and everything else to stderr, as uvicorn does.
    uvicorn's own access log is off: ``access_log`` writes one with the route,
    the caller and the latency instead.
    """
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if form == "json"
        else {"()": f"{__name__}.TextFormatter", "fmt": "%(levelprefix)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"lines": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "lines",
                "stream": "ext://sys.stderr",
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "lines",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            ACCESS_LOGGER: {"handlers": ["stdout"], "level": "INFO", "propagate": False},
            "gateway": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
