"""Fixtures of the board tests (the shared ``client`` of the gateway lives in support.py)."""

from tests.board.support import client

__all__ = ["client"]
