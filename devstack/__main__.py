"""``python -m devstack up``: run the whole platform on this machine until Ctrl-C.

Exit status: 0 after Ctrl-C/SIGTERM (a clean stop), 1 when something failed to start or died.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack._process import DevstackError
from devstack.stack import DEBUG_WORKLOAD, GATEWAY_WORKLOAD, Stack, StackInfo
from devstack.supervisor import REPO_ROOT

logger = logging.getLogger("devstack")

#: The account the printed test-login commands create (or log in as).
DEV_EMAIL = "dev@wealist.local"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start infrastructure, PKI and services; block until Ctrl-C")
    up.add_argument("--state-dir", type=Path, default=Path(".state"), help="state folder (default: .state)")
    up.add_argument("--port-offset", type=int, default=0, help="shift every port by this much (default: 0)")
    up.add_argument(
        "--no-test-login", action="store_true", help="leave auth's test-token endpoint switched off"
    )
    up.add_argument(
        "--no-dev-oauth", action="store_true", help="leave auth's offline 'continue with Google' switched off"
    )
    up.add_argument("--ready-file", type=Path, help="write the addresses as JSON here once all is healthy")
    up.add_argument(
        "--services", help="comma-separated subset of services to run (default: all present; '' for none)"
    )
    up.add_argument(
        "--health-timeout", type=float, default=60.0, help="seconds to wait for health (default: 60)"
    )
    up.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra variable for the services"
    )
    return parser.parse_args(argv)


class _Signals:
    """SIGINT/SIGTERM/SIGHUP become one KeyboardInterrupt; repeats during the shutdown are ignored.

    Ignoring them matters: a second Ctrl-C that interrupted the teardown would leave servers running.
    """

    def __init__(self) -> None:
        self.stopping = False

    def install(self) -> None:
        """Route the stop signals through :meth:`handle`."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Interrupt the main thread the first time; afterwards only say that we are on it."""
        if self.stopping:
            logger.warning("%s: already stopping, please wait", signal.Signals(signum).name)
            return
        self.stopping = True
        raise KeyboardInterrupt


def _extra_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        "AUTH_TEST_LOGIN_ENABLED": "false" if args.no_test_login else "true",
        "AUTH_DEV_OAUTH_ENABLED": "false" if args.no_dev_oauth else "true",
    }
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DevstackError(f"--env wants KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def _proto_flags(repo_root: Path, proto: str) -> list[str]:
    """grpcurl flags to read ``proto`` from source: our proto/ plus wherever google/api/*.proto is."""
    paths = [repo_root / "proto"]
    if (repo_root / "third_party" / "google" / "api").is_dir():
        paths.append(repo_root / "third_party")  # made by `nox -s proto`
    else:
        # The googleapis-common-protos wheel ships the .proto files next to its modules.
        spec = importlib.util.find_spec("google.api")
        if spec is not None and spec.submodule_search_locations:
            paths.append(Path(next(iter(spec.submodule_search_locations))).parent.parent)
    flags: list[str] = []
    for path in paths:
        flags += ["-import-path", str(path)]
    return [*flags, "-proto", proto]


def _summary(info: StackInfo, *, test_login: bool, repo_root: Path = REPO_ROOT) -> str:
    """The block printed once everything is healthy: addresses and commands to copy."""
    lines = [
        "",
        f"weAlist mesh is up in {info.startup_seconds:.1f} s (state: {info.state_dir})",
        "",
    ]
    width = max((len(name) for name in info.services), default=7)
    for name, spec in info.services.items():
        if spec.grpc_port is None:
            lines.append(f"  {name:<{width}}  http://{spec.addr:<18}  {spec.health_url}  {spec.metrics_url}")
        else:
            lines.append(f"  {name:<{width}}  grpc {spec.addr:<20}  {spec.metrics_url}")
    if not info.services:
        lines.append("  (no services: infrastructure only)")
    where = {True: "embedded", False: "external"}
    lines += [
        "",
        f"  Postgres  {info.database_url}  ({where[info.embedded.get('postgres', True)]}; "
        f"databases wealist_<svc>)",
        f"  Redis     {info.redis_url}  ({where[info.embedded.get('redis', True)]})",
        f"  S3        {info.s3.endpoint}  bucket {info.s3.bucket}, key {info.s3.access_key} / "
        f"{info.s3.secret_key}"
        + ("  (moto: objects live in memory only)" if info.embedded.get("s3", True) else "  (external)"),
        "",
    ]
    auth = info.services.get("auth")
    if auth is not None and test_login:
        body = json.dumps({"email": DEV_EMAIL})
        gateway = info.services.get("gateway")
        lines.append("  Test login:")
        if gateway is not None:
            curl = [
                "curl", "-s", "-X", "POST", f"{gateway.http_base}/api/svc/auth/api/test/token",
                "-H", "Content-Type: application/json", "-d", body,
            ]  # fmt: skip
            lines.append(f"    {shlex.join(curl)}")
        # Straight to auth over mTLS, presenting the gateway's identity (the only caller it accepts).
        # The gateway may not use reflection, so grpcurl reads the .proto files instead.
        grpc = [
            *info.grpcurl_args(GATEWAY_WORKLOAD), *_proto_flags(repo_root, "wealist/auth/v1/auth.proto"),
            "-d", body, auth.addr, "wealist.auth.v1.AuthService/IssueTestToken",
        ]  # fmt: skip
        lines.append(f"    {shlex.join(grpc)}")
        lines.append("")
    target = auth or next((s for s in info.services.values() if s.grpc_port is not None), None)
    if target is not None:
        lines.append(f"  grpcurl as the {DEBUG_WORKLOAD} identity (reflection):")
        lines.append(f"    {shlex.join([*info.grpcurl_args(DEBUG_WORKLOAD), target.addr, 'list'])}")
        lines.append("")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines) + "\n"


def _write_ready_file(path: Path, info: StackInfo) -> None:
    # Written beside the target and renamed, so a test polling for the file never reads half of it.
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8")
    scratch.replace(path)


def _up(args: argparse.Namespace) -> int:
    signals = _Signals()
    signals.install()
    services = None
    if args.services is not None:
        services = [s.strip() for s in args.services.split(",") if s.strip()]
    stack: Stack | None = None
    code = 0
    try:
        stack = Stack(
            args.state_dir,
            port_offset=args.port_offset,
            extra_env=_extra_env(args),
            services=services,
            health_timeout=args.health_timeout,
        )
        logger.info("starting the dev stack in %s", stack.state_dir)
        info = stack.start()
        sys.stdout.write(_summary(info, test_login=not args.no_test_login, repo_root=stack.repo_root))
        sys.stdout.flush()
        if args.ready_file is not None:
            _write_ready_file(args.ready_file, info)
        while True:
            stack.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        logger.info("stopping")
    except DevstackError as exc:
        # The message carries the cause and the log tail; a traceback would only bury it.
        logger.error("%s", exc)
        code = 1
    finally:
        signals.stopping = True
        if stack is not None:
            stack.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    if code == 0:
        logger.info("stopped")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m devstack``."""
    # Our own progress at INFO; libraries (httpx logs every health poll) only when they warn.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s  %(message)s", datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)
    args = _parse_args(argv)
    if args.command == "up":
        return _up(args)
    return 2  # argparse rejects unknown commands before this


if __name__ == "__main__":
    sys.exit(main())
