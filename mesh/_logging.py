"""Structured JSON logs, one object a line, carrying the request id of the call being served."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from mesh._context import current_call
from mesh._tracing import log_ids


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; the request id comes from the served call's context."""

    def __init__(self, workload: str) -> None:
        super().__init__()
        self.workload = workload

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "workload": self.workload,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = current_call()
        request_id = getattr(record, "request_id", None) or (call.request_id if call else None)
        if request_id:
            entry["requestId"] = request_id
        ids = log_ids(call.traceparent if call else getattr(record, "traceparent", None))
        if ids is not None:
            entry["traceId"], entry["spanId"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(workload: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Send the root logger to stderr, as JSON lines unless asked for plain text."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(workload))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {workload} %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
