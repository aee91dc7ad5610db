"""The user API the gateway exposes: every noun's servicer, joined into the one ``UserService``."""

from __future__ import annotations

from services.user.accounts.servicer import AccountsServicer
from services.user.join_requests.servicer import JoinRequestsServicer
from services.user.members.servicer import MembersServicer
from services.user.pictures.servicer import PicturesServicer
from services.user.profiles.servicer import ProfilesServicer
from services.user.workspaces.servicer import WorkspacesServicer


class UserServicer(
    AccountsServicer,
    WorkspacesServicer,
    MembersServicer,
    JoinRequestsServicer,
    ProfilesServicer,
    PicturesServicer,
):
    """``UserService``: each RPC is implemented by exactly one noun (``tests/user/test_layout.py``)."""
