"""Access tokens out of the gateway's logs.

Browsers cannot set headers on EventSource or WebSocket, so the web client sends its access token as
``?token=<JWT>`` (gateway/streams.py), and uvicorn logs request URLs with their query: an
``uvicorn.error`` line for every WebSocket handshake (``"WebSocket /api/...?token=..." [accepted]``),
and an ``uvicorn.access`` line for every request when access logs are on. A token in a log is a
credential anyone reading the logs can replay until it expires.

``TokenRedactor`` rewrites the value of every ``token`` query parameter in a record to ``[redacted]``,
the rest of the line kept. It is installed on the uvicorn loggers (whatever handlers a deployment gives
them, e.g. uvicorn's own log config), and by the entry point on the handlers of the root logger too, so
the line of any logger that propagates there is covered.

The record's arguments are redacted one by one, so a formatter that reads them (uvicorn's
``AccessFormatter`` unpacks the access line's five) still works; an argument of another type whose text
carries a token (a URL object) makes the record's message be replaced by its redacted text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
PARAMETER = "token"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

# One query parameter after ? or &: its name, "=", and its value up to the next separator, quote,
# whitespace or backslash (a JSON-escaped quote, when the text is already JSON).
_QUERY_PARAMETER = re.compile(r"(?<=[?&])([^=&?#\s\"'\\]+)=([^&#\s\"'\\]*)")


def _redact_match(match: re.Match[str]) -> str:
    name = match.group(1)
    if unquote_plus(name) == PARAMETER and match.group(2):
        return f"{name}={REDACTED}"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with the value of each ``token`` query parameter (however its name is escaped) redacted."""
    if "=" not in text:
        return text
    return _QUERY_PARAMETER.sub(_redact_match, text)


class TokenRedactor(logging.Filter):
    """Redacts ``?token=`` values in a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        elif isinstance(args, dict):
            record.args = {key: redact(arg) if isinstance(arg, str) else arg for key, arg in args.items()}
        if record.args:
            # An argument of another type may print a token (a URL object): then the message as text.
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: logging reports it when it formats the record
                return True
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_REDACTOR = TokenRedactor()


def _add(filterers: Iterable[logging.Filterer]) -> None:
    for filterer in filterers:
        if not any(isinstance(existing, TokenRedactor) for existing in filterer.filters):
            filterer.addFilter(_REDACTOR)


def redact_uvicorn_logs() -> None:
    """Install the redactor on uvicorn's loggers (idempotent)."""
    _add(logging.getLogger(name) for name in UVICORN_LOGGERS)


def redact_process_logs() -> None:
    """Install the redactor on uvicorn's loggers and on every handler of the root logger (idempotent).

    Called by the entry point once logging is configured, so every line the gateway process writes
    through the root logger is redacted, whichever logger it came from.
    """
    redact_uvicorn_logs()
    _add(logging.getLogger().handlers)
