"""People of a test: fresh users from the gateway's test login, their tokens and their headers.

Every login goes through the real gateway (``/api/svc/auth/api/test/token``, on in the test stack's
environment), so a test's users are made the way the web client's are.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

AUTH = "/api/svc/auth"


def unique_email(prefix: str = "user") -> str:
    """An e-mail no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def authorization(token: str) -> dict[str, str]:
    """The HTTP ``Authorization`` header for a user token."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True, slots=True)
class Person:
    """A logged-in user of the test: who they are and the tokens of one login."""

    user_id: str
    email: str
    token: str
    # Empty where the test made the Person from an access token alone (a refresh's reply, say).
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return authorization(self.token)

    def in_workspace(self, workspace_id: str) -> dict[str, str]:
        """The headers of a call scoped to one workspace (``X-Workspace-Id``)."""
        return {**self.headers, "X-Workspace-Id": workspace_id}


async def issue_tokens(
    client: httpx.AsyncClient, email: str | None = None, *, user_id: str | None = None
) -> dict[str, str]:
    """The test login's reply as it comes (``accessToken``, ``refreshToken``, ``userId``).

    A fresh user unless ``email`` or ``user_id`` names an existing one: a second login of the same
    account is a new session of it.
    """
    request = {"userId": user_id} if user_id is not None else {"email": email or unique_email()}
    reply = await client.post(f"{AUTH}/api/test/token", json=request)
    assert reply.status_code == 200, reply.text
    body: dict[str, str] = reply.json()
    return body


async def login(client: httpx.AsyncClient, prefix: str = "user", *, email: str | None = None) -> Person:
    """A fresh user through the gateway's test login (or a new login of ``email``'s account)."""
    address = email or unique_email(prefix)
    body = await issue_tokens(client, address)
    return Person(body["userId"], address, body["accessToken"], body["refreshToken"])


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """Auth's refresh through the gateway, as the web client calls it; the reply unchecked."""
    return await client.post(f"{AUTH}/api/auth/refresh", json={"refreshToken": refresh_token})
