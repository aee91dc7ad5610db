"""The user service's two servicers: every noun's part joined into the one ``UserService``, and the
internal lookups (``internal/servicer.py``)."""

from __future__ import annotations

from services.user.accounts.servicer import AccountsServicer
from services.user.internal.servicer import UserInternalServicer
from services.user.join_requests.servicer import JoinRequestsServicer
from services.user.members.servicer import MembersServicer
from services.user.pictures.servicer import PicturesServicer
from services.user.profiles.servicer import ProfilesServicer
from services.user.workspaces.servicer import WorkspacesServicer

__all__ = ["UserInternalServicer", "UserServicer"]


class UserServicer(
    AccountsServicer,
    WorkspacesServicer,
    MembersServicer,
    JoinRequestsServicer,
    ProfilesServicer,
    PicturesServicer,
):
    """``UserService``: each RPC is implemented by exactly one noun (``tests/user/test_layout.py``).

    The proto declares one service for all the nouns and the kit registers one servicer object for it,
    so the nouns' classes are joined here; their methods are their own, none overrides another's.
    """
