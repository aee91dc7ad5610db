"""The HTTP status a service asks for with x-http-code, read from the response metadata."""

from __future__ import annotations

import grpc
import pytest

from gateway.metadata import http_code


@pytest.mark.parametrize(("value", "expected"), [("200", 200), ("201", 201), ("207", 207), ("299", 299)])
def test_a_2xx_code_is_taken(value: str, expected: int) -> None:
    metadata = grpc.aio.Metadata(("x-request-id", "r"), ("x-http-code", value))
    assert http_code(metadata) == expected


@pytest.mark.parametrize(
    "value",
    [
        "500",
        "302",
        "199",
        "300",
        "abc",
        "",
        " 207",
        "207 ",
        "2070",
        "0207",
        "+207",
        "\uff12\uff10\uff17",
        "\u0662\u0660\u0667",
    ],
)
def test_anything_else_is_ignored(value: str) -> None:
    assert http_code(grpc.aio.Metadata(("x-http-code", value))) is None


def test_no_metadata_or_no_code() -> None:
    assert http_code(None) is None
    assert http_code(grpc.aio.Metadata()) is None
    assert http_code(grpc.aio.Metadata(("x-request-id", "207"))) is None
