"""Google OAuth2 (authorization code with PKCE) end to end, against a fake Google on a real socket.

Only Google is faked: a second auth process runs with Google configured (and the dev OAuth switch on too,
to show that a configured Google wins), shares the stack's state folder (so its tokens are signed with the
same keys) and finds or creates users in the stack's user service. The fake plays Google's token and
userinfo endpoints over HTTP and checks what Google checks: the client's credentials, the redirect URI the
code was issued for, and the PKCE verifier against the challenge from the consent URL. The browser's visit
to the consent page is :meth:`FakeGoogle.consent`, which the test calls with the URL the service built.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import pytest_asyncio
from wealist.auth.v1 import auth_pb2, auth_pb2_grpc
from wealist.user.v1 import user_pb2, user_pb2_grpc

from devstack import StackInfo
from mesh import open_channel
from tests.support import ExtraService, Mesh, bearer, extra_service, unique_email

CLIENT_ID = "wealist-test.apps.googleusercontent.com"
CLIENT_SECRET = "fake-google-client-secret"
GOOGLE_REDIRECT_URI = "http://localhost:8088/api/oauth2/callback/google"
WEB_CALLBACK = "http://localhost:8088/oauth/callback"


def _s256(verifier: str) -> str:
    """PKCE's S256 transform: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _query(url: str) -> tuple[str, dict[str, str]]:
    """``scheme://host/path`` of a URL and its query parameters (each given once)."""
    parts = urlsplit(url)
    params = parse_qs(parts.query, keep_blank_values=True)
    assert all(len(values) == 1 for values in params.values()), url
    return f"{parts.scheme}://{parts.netloc}{parts.path}", {key: values[0] for key, values in params.items()}


@dataclass(frozen=True, slots=True)
class GoogleAccount:
    """A Google user as the userinfo endpoint describes them."""

    sub: str
    email: str
    name: str
    email_verified: bool = True


def google_account(prefix: str = "google", *, email_verified: bool = True) -> GoogleAccount:
    return GoogleAccount(
        sub=str(secrets.randbelow(10**20)),
        email=unique_email(prefix),
        name=f"{prefix.title()} Tester",
        email_verified=email_verified,
    )


@dataclass(frozen=True, slots=True)
class _Grant:
    """What an authorization code was issued for."""

    account: GoogleAccount
    client_id: str
    redirect_uri: str
    code_challenge: str


class FakeGoogle:
    """Google's OAuth2 token and userinfo endpoints on 127.0.0.1, run in a background thread."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self._lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, GoogleAccount] = {}
        #: Every token request's form, and the reason each refused one was refused.
        self.exchanges: list[dict[str, str]] = []
        self.refusals: list[str] = []
        #: While set, the token endpoint answers like a load balancer in trouble: 503 and an HTML page.
        self.outage = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-google", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def consent(self, authorize_url: str, account: GoogleAccount) -> str:
        """The user signs in as ``account`` on the consent page; returns the code Google redirects with.

        Checks the request as Google would: a known client, a registered redirect URI and an S256 challenge.
        """
        where, params = _query(authorize_url)
        assert where == f"{self.base_url}/authorize"
        assert params["response_type"] == "code"
        assert params["client_id"] == self.client_id
        assert params["redirect_uri"] == GOOGLE_REDIRECT_URI
        assert params["code_challenge_method"] == "S256"
        assert len(params["code_challenge"]) == 43  # base64url of a SHA-256 digest
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                account, params["client_id"], params["redirect_uri"], params["code_challenge"]
            )
        return code

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """``POST /token``: an access token for a good code, ``invalid_grant`` otherwise."""
        with self._lock:
            self.exchanges.append(form)
            client = _client_credentials(form, authorization)
            if client != (self.client_id, self.client_secret):
                return self._refuse(401, "invalid_client", "bad client credentials")
            if form.get("grant_type") != "authorization_code":
                return self._refuse(400, "unsupported_grant_type", "not an authorization code")
            # A code is good once, whatever the outcome, as Google does.
            grant = self._codes.pop(form.get("code", ""), None)
            if grant is None:
                return self._refuse(400, "invalid_grant", "unknown or used code")
            if grant.client_id != client[0] or form.get("redirect_uri") != grant.redirect_uri:
                return self._refuse(400, "invalid_grant", "redirect_uri mismatch")
            verifier = form.get("code_verifier", "")
            if not verifier or _s256(verifier) != grant.code_challenge:
                return self._refuse(400, "invalid_grant", "pkce mismatch")
            access_token = secrets.token_urlsafe(32)
            self._tokens[access_token] = grant.account
        return 200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600}

    def userinfo(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """``GET /userinfo`` with a bearer token from :meth:`token`."""
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            account = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if account is None:
            return 401, {"error": "invalid_token"}
        return 200, {
            "sub": account.sub,
            "email": account.email,
            "email_verified": account.email_verified,
            "name": account.name,
        }

    def _refuse(self, status: int, error: str, reason: str) -> tuple[int, dict[str, Any]]:
        self.refusals.append(reason)
        return status, {"error": error, "error_description": reason}


def _client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str] | None:
    """The client's id and secret, from HTTP Basic (client_secret_basic) or the form (client_secret_post)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return None
        return unquote(client_id), unquote(secret)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


def _handler(google: FakeGoogle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/token":
                self._reply(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            if google.outage:
                self._send(503, "text/html", b"<html><body>Service Unavailable</body></html>")
                return
            form = {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}
            self._reply(*google.token(form, self.headers.get("Authorization")))

        def do_GET(self) -> None:
            if self.path != "/userinfo":
                self._reply(404, {"error": "not_found"})
                return
            self._reply(*google.userinfo(self.headers.get("Authorization")))

        def _reply(self, status: int, document: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(document).encode())

        def _send(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest would show every request on stderr."""

    return Handler


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle(CLIENT_ID, CLIENT_SECRET)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def google_auth(stack: StackInfo, google: FakeGoogle) -> Iterator[ExtraService]:
    """A second auth process with Google configured, pointing at the fake."""
    env = {
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_AUTHORIZE_URL": f"{google.base_url}/authorize",
        "GOOGLE_TOKEN_URL": f"{google.base_url}/token",
        "GOOGLE_USERINFO_URL": f"{google.base_url}/userinfo",
        "GOOGLE_REDIRECT_URI": GOOGLE_REDIRECT_URI,
        "AUTH_DEV_OAUTH_ENABLED": "true",
        "WEALIST_USER_ADDR": stack.services["user"].addr,
    }
    with extra_service(stack, "auth", env) as service:
        yield service


@pytest_asyncio.fixture(scope="module")
async def oauth(mesh: Mesh, google_auth: ExtraService) -> AsyncIterator[auth_pb2_grpc.AuthServiceAsyncStub]:
    """The Google-configured auth, called as the gateway over mTLS."""
    channel = open_channel(google_auth.addr, workload="auth", tls=mesh.tls("gateway"))
    yield auth_pb2_grpc.AuthServiceStub(channel)
    await channel.close()


async def _start(oauth: auth_pb2_grpc.AuthServiceAsyncStub, redirect_uri: str = "") -> str:
    started = await oauth.StartGoogleLogin(auth_pb2.StartGoogleLoginRequest(redirect_uri=redirect_uri))
    return started.location


async def _complete(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, *, code: str = "", state: str = "", error: str = ""
) -> str:
    completed = await oauth.CompleteGoogleLogin(
        auth_pb2.CompleteGoogleLoginRequest(code=code, state=state, error=error)
    )
    return completed.location


async def _login(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub,
    google: FakeGoogle,
    account: GoogleAccount,
    redirect_uri: str = "",
) -> tuple[str, dict[str, str]]:
    """The whole round trip; returns where the browser lands and the landing's query."""
    consent_url = await _start(oauth, redirect_uri)
    code = google.consent(consent_url, account)
    return _query(await _complete(oauth, code=code, state=_query(consent_url)[1]["state"]))


def _failed_landing(location: str) -> str:
    """The error code of a failed login's landing, which must carry no tokens."""
    where, params = _query(location)
    assert where == WEB_CALLBACK
    assert set(params) == {"error"}, location
    assert params["error"]
    return params["error"]


def _users(mesh: Mesh) -> user_pb2_grpc.UserServiceAsyncStub:
    return user_pb2_grpc.UserServiceStub(mesh.channel("user"))


async def test_start_sends_the_browser_to_google_with_pkce(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    location = await _start(oauth)
    where, params = _query(location)
    assert where == f"{google.base_url}/authorize"
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == GOOGLE_REDIRECT_URI
    assert {"openid", "email"} <= set(params["scope"].split())
    assert len(params["state"]) >= 32
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert not {"accessToken", "refreshToken", "code_verifier"} & set(params)
    again = _query(await _start(oauth))[1]
    assert again["state"] != params["state"]
    assert again["code_challenge"] != params["code_challenge"]


async def test_a_google_login_lands_with_tokens_for_that_account(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle, mesh: Mesh
) -> None:
    account = google_account()
    consent_url = await _start(oauth)
    consent = _query(consent_url)[1]
    code = google.consent(consent_url, account)
    where, tokens = _query(await _complete(oauth, code=code, state=consent["state"]))
    assert where == WEB_CALLBACK
    assert set(tokens) == {"accessToken", "refreshToken", "userId"}
    # What reached Google: the code, the registered redirect URI and the verifier behind the challenge.
    exchange = google.exchanges[-1]
    assert exchange["code"] == code
    assert exchange["redirect_uri"] == GOOGLE_REDIRECT_URI
    assert _s256(exchange["code_verifier"]) == consent["code_challenge"]
    me = await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(tokens["accessToken"]))
    assert me.user.user_id == tokens["userId"]
    assert me.user.email == account.email
    assert me.user.provider == "google"
    assert me.user.google_id == account.sub
    assert me.user.name == account.name
    _, again = await _login(oauth, google, account)
    assert again["userId"] == tokens["userId"]
    assert again["accessToken"] != tokens["accessToken"]


async def test_a_replayed_state_is_refused(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    consent_url = await _start(oauth)
    state = _query(consent_url)[1]["state"]
    first = await _complete(oauth, code=google.consent(consent_url, google_account()), state=state)
    assert "accessToken" in _query(first)[1]
    exchanges = len(google.exchanges)
    # A fresh, good code: only the state is spent.
    replay = await _complete(oauth, code=google.consent(consent_url, google_account()), state=state)
    assert _failed_landing(replay) == "oauth_state_invalid"
    assert len(google.exchanges) == exchanges, "a spent state must not reach Google"
    unknown = await _complete(oauth, code=google.consent(consent_url, google_account()), state="made-up")
    assert _failed_landing(unknown) == "oauth_state_invalid"


async def test_a_code_issued_for_another_challenge_fails_pkce(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    """A code intercepted from one login and replayed into another is refused by Google's PKCE check."""
    victim = await _start(oauth)
    attacker = await _start(oauth)
    stolen = google.consent(victim, google_account("victim"))
    refusals = len(google.refusals)
    location = await _complete(oauth, code=stolen, state=_query(attacker)[1]["state"])
    assert _failed_landing(location) == "oauth_code_rejected"
    assert google.refusals[refusals:] == ["pkce mismatch"]


async def test_declining_at_google_lands_with_access_denied(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub,
) -> None:
    consent_url = await _start(oauth)
    location = await _complete(oauth, state=_query(consent_url)[1]["state"], error="access_denied")
    assert _failed_landing(location) == "access_denied"


async def test_an_unverified_google_email_is_refused(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    where, params = await _login(oauth, google, google_account("unverified", email_verified=False))
    assert where == WEB_CALLBACK
    assert params == {"error": "oauth_email_unverified"}


async def test_an_allowed_landing_page_is_where_the_login_ends(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    wanted = "http://localhost:3000/oauth/callback"
    consent_url = await _start(oauth, wanted)
    # Google still gets the registered redirect URI; the landing page stays on the server with the state.
    assert _query(consent_url)[1]["redirect_uri"] == GOOGLE_REDIRECT_URI
    assert wanted not in consent_url
    code = google.consent(consent_url, google_account("landing"))
    where, tokens = _query(await _complete(oauth, code=code, state=_query(consent_url)[1]["state"]))
    assert where == wanted
    assert set(tokens) == {"accessToken", "refreshToken", "userId"}
    hostile, _ = await _login(oauth, google, google_account("hostile"), "https://evil.example/oauth/callback")
    assert hostile == WEB_CALLBACK


async def test_google_failing_lands_with_an_error(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    consent_url = await _start(oauth)
    code = google.consent(consent_url, google_account("outage"))
    google.outage = True
    try:
        location = await _complete(oauth, code=code, state=_query(consent_url)[1]["state"])
    finally:
        google.outage = False
    assert _failed_landing(location) == "oauth_provider_failed"


async def test_a_google_account_never_lands_in_an_account_linked_to_another(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle, mesh: Mesh
) -> None:
    """Linking is by Google's subject: another Google account with the same address is refused."""
    owner = google_account("owner")
    _, tokens = await _login(oauth, google, owner)
    impostor = GoogleAccount(sub=str(secrets.randbelow(10**20)), email=owner.email, name="Impostor")
    consent_url = await _start(oauth)
    code = google.consent(consent_url, impostor)
    location = await _complete(oauth, code=code, state=_query(consent_url)[1]["state"])
    assert _failed_landing(location) == "account_linked_elsewhere"
    # The owner still logs in to the same account.
    _, again = await _login(oauth, google, owner)
    assert again["userId"] == tokens["userId"]
    me = await _users(mesh).GetMyUser(user_pb2.GetMyUserRequest(), metadata=bearer(again["accessToken"]))
    assert me.user.google_id == owner.sub


async def test_a_google_profile_without_a_subject_is_refused(
    oauth: auth_pb2_grpc.AuthServiceAsyncStub, google: FakeGoogle
) -> None:
    """Accounts are linked by Google's subject: a login that names none cannot be placed."""
    nameless = GoogleAccount(sub="", email=unique_email("nosub"), name="No Sub")
    where, params = await _login(oauth, google, nameless)
    assert where == WEB_CALLBACK
    assert params == {"error": "oauth_userinfo_failed"}
