"""JSON log lines carry the request id of the call being served."""

from __future__ import annotations

import json
import logging
import sys

from mesh import CallContext
from mesh._context import _current
from mesh._logging import JsonFormatter


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("wealist.test", logging.INFO, __file__, 1, message, None, None)


def test_a_line_inside_a_call_names_its_request() -> None:
    token = _current.set(
        CallContext(method="/x.v1.S/M", request_id="req-77", caller="gateway", user=None, deadline=None)
    )
    try:
        line = JsonFormatter("auth").format(_record("hello"))
    finally:
        _current.reset(token)
    entry = json.loads(line)
    assert entry["requestId"] == "req-77"
    assert entry["workload"] == "auth"
    assert entry["message"] == "hello"
    assert entry["level"] == "INFO"


def test_a_line_outside_any_call_has_no_request_id() -> None:
    entry = json.loads(JsonFormatter("user").format(_record("start")))
    assert "requestId" not in entry


def test_exceptions_are_kept_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    line = JsonFormatter("user").format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_line_inside_a_call_carries_its_trace_without_tracing_on() -> None:
    """Tracing off: the ids the caller sent, so the line joins the browser's trace in any log search."""
    call = CallContext(
        method="/x.v1.S/M",
        request_id="r",
        caller="gateway",
        user=None,
        deadline=None,
        traceparent=TRACEPARENT,
    )
    token = _current.set(call)
    try:
        entry = json.loads(JsonFormatter("board").format(_record("hello")))
    finally:
        _current.reset(token)
    assert entry["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert entry["spanId"] == "b7ad6b7169203331"


def test_a_malformed_traceparent_gives_no_ids() -> None:
    call = CallContext(
        method="/x.v1.S/M", request_id="r", caller=None, user=None, deadline=None, traceparent="00-nonsense"
    )
    token = _current.set(call)
    try:
        entry = json.loads(JsonFormatter("board").format(_record("hello")))
    finally:
        _current.reset(token)
    assert "traceId" not in entry
