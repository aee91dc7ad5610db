"""Fixtures of the security tests: the gateway client the board tests use."""

from tests.board.support import client

__all__ = ["client"]
