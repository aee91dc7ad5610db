"""What the REST gateway costs over a direct gRPC call, and against a bare Starlette handler.

``nox -s bench`` (or ``python -m bench.gateway [--calls N] [--seconds S] [--profile]``) compiles the
test-only echo service (tests/gateway/protos), then starts three servers, each in its own process:

(a) the echo service on the shared runtime, over mTLS;
(b) the gateway (uvicorn, uvloop, httptools) routing ``GET /api/svc/echo/api/rooms/{room}/echo`` to (a);
(c) a bare Starlette app under the same uvicorn settings returning the same JSON.

``EchoService/Echo`` does no I/O, and its user auth is optional, so no token is sent and neither auth,
user, Redis nor Postgres is needed. The load generator runs in this process, on the same machine: (a)
on a grpc.aio mTLS channel as the ``gateway`` workload, (b) and (c) on keep-alive HTTP/1.1 connections
of a minimal asyncio client, so the client's own cost stays small and is the same for (b) and (c). At
concurrency 1 it makes N sequential calls; at 64 it runs 64 workers for a fixed time. It prints
requests/s, p50 and p99 of each, then the gateway's p50 overhead at concurrency 1 and (b)/(c) requests/s
at 64 against the targets. ``--profile`` runs the gateway under cProfile for one extra 64-worker round
and prints its ten most expensive functions.

``python -m bench.gateway json-print [--boards N]`` times the response printing alone: a kanban listing
(``ListBoardsResponse`` with N boards, fields set as the board service sets them) printed by
``json_format.MessageToDict`` and by the gateway's compiled printer (gateway/jsonprint.py), after
checking that both print the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as HttpRoute
from starlette.types import ASGIApp
from wealist.board.v1 import board_pb2, common_pb2

from bench.load import Call, HttpConnection, Result, concurrent, sequential
from gateway.app import create_app
from gateway.jsonprint import message_to_dict
from gateway.settings import GatewaySettings
from mesh import Hosted, MeshSettings, Runtime, ensure_dev_pki, load_tls, open_channel, run
from tests.gateway.conftest import _servicer, compile_echo, import_echo

# Never contacted: the runtime and the gateway build their Redis clients lazily, and only token checks
# use them; the echo call is made without a token.
UNUSED_REDIS = "redis://127.0.0.1:1/0"
ROOM, TEXT, COUNT = "r1", "hello", 3
PATH = f"/api/svc/echo/api/rooms/{ROOM}/echo?text={TEXT}&count={COUNT}"
CONCURRENCY = (1, 64)
P50_TARGET_MS = 0.25
RPS_TARGET = 0.60


# ---- the servers, each run as ``python -m bench.gateway serve-* ...`` in a child process ----


def _serve_echo(state: Path, generated: Path, port: int) -> None:
    pb2, pb2_grpc = import_echo(generated)
    servicer = _servicer(pb2, pb2_grpc)
    service = pb2.DESCRIPTOR.services_by_name["EchoService"]
    settings = MeshSettings(
        workload="echo",
        state_dir=state,
        grpc_port=port,
        http_port=0,
        redis_url=UNUSED_REDIS,
        log_json=False,
        log_level="WARNING",
    )

    async def main(runtime: Runtime) -> None:
        await runtime.serve(
            [Hosted(service, lambda server: pb2_grpc.add_EchoServiceServicer_to_server(servicer, server))]
        )

    run(settings, main)


def _uvicorn(app: ASGIApp, port: int) -> None:
    # The settings of ``python -m gateway``.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def _exit_on_signal(number: int, frame: object) -> None:
    raise SystemExit(0)


def _serve_gateway(state: Path, generated: Path, port: int, echo: str, profile: Path | None) -> None:
    pb2, _ = import_echo(generated)
    settings = GatewaySettings(
        state_dir=state, http_port=port, redis_url=UNUSED_REDIS, log_json=False, log_level="WARNING"
    )
    app = create_app(
        settings, services=[pb2.DESCRIPTOR.services_by_name["EchoService"]], addresses={"echo": echo}
    )
    if profile is None:
        _uvicorn(app, port)
        return
    # uvicorn re-raises SIGTERM once it has shut down: end by SystemExit then, so the stats get written.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        _uvicorn(app, port)
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def bare_app() -> Starlette:
    """One handler answering the echo route with the JSON the gateway answers it with."""

    async def echo(request: Request) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        query = request.query_params
        data = {
            "room": request.path_params["room"],
            "text": query.get("text", ""),
            "count": int(query.get("count", "0")),
            "tags": [],
            "loud": False,
            "userId": "",
            "workspaceId": "",
        }
        body = json.dumps({"data": data, "requestId": request_id}, separators=(",", ":")).encode()
        return Response(body, status_code=201, media_type="application/json")

    return Starlette(routes=[HttpRoute("/api/svc/echo/api/rooms/{room}/echo", echo)])


# ---- the load generator (bench.load) against the three servers ----


async def _measure_http(port: int, count: int, seconds: float) -> dict[int, Result]:
    connections = [await HttpConnection.open(port, PATH) for _ in range(max(CONCURRENCY))]

    def call_on(connection: HttpConnection) -> Call:
        async def call() -> None:
            status, _ = await connection.get()
            if status != 201:
                raise RuntimeError(f"HTTP {status} from 127.0.0.1:{port}")

        return call

    try:
        return {
            1: await sequential(call_on(connections[0]), count),
            64: await concurrent([call_on(c) for c in connections], seconds),
        }
    finally:
        for connection in connections:
            await connection.close()


async def _measure_grpc(
    state: Path, generated: Path, address: str, count: int, seconds: float
) -> dict[int, Result]:
    pb2, pb2_grpc = import_echo(generated)
    channel = open_channel(address, workload="echo", tls=load_tls(state, "gateway"), propagate=False)
    echo = pb2_grpc.EchoServiceStub(channel).Echo
    request = pb2.EchoRequest(room=ROOM, text=TEXT, count=COUNT)

    async def call() -> object:
        return await echo(request, timeout=10)

    try:
        return {1: await sequential(call, count), 64: await concurrent([call] * 64, seconds)}
    finally:
        await channel.close()


async def _same_json(gateway_port: int, bare_port: int) -> bool:
    replies = []
    for port in (gateway_port, bare_port):
        connection = await HttpConnection.open(port, PATH)
        try:
            status, body = await connection.get()
        finally:
            await connection.close()
        payload = json.loads(body)
        payload.pop("requestId")
        replies.append((status, payload))
    if replies[0] != replies[1]:
        sys.stderr.write(f"gateway and bare replies differ: {replies[0]} != {replies[1]}\n")
    return replies[0] == replies[1]


# ---- orchestration ----


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server {process.args!r} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def _children() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], int]]]:
    started: list[subprocess.Popen[bytes]] = []

    def spawn(command: str, *args: str) -> tuple[subprocess.Popen[bytes], int]:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway", command, "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
        )
        started.append(process)
        _wait_for_port(port, process)
        return process, port

    try:
        yield spawn
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


def _print_table(results: dict[str, dict[int, Result]]) -> None:
    out = sys.stdout
    out.write(f"{'':<34}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}\n")
    for name, by_concurrency in results.items():
        for concurrency, result in by_concurrency.items():
            out.write(
                f"{name:<34}{concurrency:>5}{result.requests_per_second:>10.0f}"
                f"{result.p50_ms:>9.3f}{result.p99_ms:>9.3f}\n"
            )


def _profile_top(path: Path, count: int = 10) -> str:
    text = io.StringIO()
    stats = pstats.Stats(str(path), stream=text)
    stats.sort_stats("tottime").print_stats(count)
    return text.getvalue()


async def _bench(args: argparse.Namespace, tmp: Path, generated: Path) -> None:
    state = tmp / "state"
    ensure_dev_pki(state, ["echo", "gateway"])
    common = ["--state", str(state), "--generated", str(generated)]
    with _children() as spawn:
        _, echo_port = spawn("serve-echo", *common)
        echo = f"127.0.0.1:{echo_port}"
        gateway, gateway_port = spawn("serve-gateway", *common, "--echo", echo)
        _, bare_port = spawn("serve-bare")
        same = await _same_json(gateway_port, bare_port)
        direct = await _measure_grpc(state, generated, echo, args.calls, args.seconds)
        routed = await _measure_http(gateway_port, args.calls, args.seconds)
        bare = await _measure_http(bare_port, args.calls, args.seconds)
        out = sys.stdout
        out.write(
            f"EchoService/Echo (no I/O), loopback; c=1: {args.calls} sequential calls after "
            f"{max(1, args.calls // 10)} warm-up; c=64: 64 workers for {args.seconds:g} s after a warm-up\n"
            f"servers in their own processes; the load generator shares this {os.cpu_count()}-CPU "
            "machine with them\n"
            "HTTP client: minimal asyncio HTTP/1.1, one keep-alive connection per worker "
            "(same client cost in b and c)\n"
            f"gateway and bare handler return the same JSON (but requestId): {'yes' if same else 'NO'}\n"
        )
        _print_table(
            {
                "(a) gRPC direct, mTLS": direct,
                "(b) gateway, HTTP -> gRPC mTLS": routed,
                "(c) bare Starlette, same JSON": bare,
            }
        )
        overhead = routed[1].p50_ms - direct[1].p50_ms
        share = routed[64].requests_per_second / bare[64].requests_per_second
        grpc_share = direct[64].requests_per_second / bare[64].requests_per_second
        out.write(
            f"gateway overhead at c=1, p50 (b) - (a): {overhead:.3f} ms   target <= {P50_TARGET_MS} ms   "
            f"{'MET' if overhead <= P50_TARGET_MS else 'MISSED'}\n"
            f"gateway req/s at c=64, (b) / (c): {share * 100:.0f} %   target >= {RPS_TARGET * 100:.0f} %   "
            f"{'MET' if share >= RPS_TARGET else 'MISSED'}\n"
            f"(for scale, (a) / (c) req/s at c=64: {grpc_share * 100:.0f} %)\n"
        )
        if args.profile:
            _stop(gateway)
            profile = tmp / "gateway.prof"
            profiled, profiled_port = spawn(
                "serve-gateway", *common, "--echo", echo, "--profile-out", str(profile)
            )
            profiled_result = await _measure_http(profiled_port, max(1, args.calls // 10), args.seconds)
            _stop(profiled)
            out.write(
                f"\ngateway under cProfile, c=64: {profiled_result[64].requests_per_second:.0f} req/s "
                "(slowed by the profiler); top 10 by own time:\n"
            )
            out.write(_profile_top(profile))


def board_listing(boards: int) -> board_pb2.ListBoardsResponse:
    """A ``ListBoardsResponse`` like the board service's for one project: ids, text, custom fields,
    dates with microseconds (from Postgres), two participants, an attachment on every fourth board."""
    project, workspace, author = (str(uuid.uuid4()) for _ in range(3))
    members = [str(uuid.uuid4()) for _ in range(2)]
    stages = ("pending", "in_progress", "review", "approved")
    start = 1_767_225_600  # 2026-01-01
    listing = board_pb2.ListBoardsResponse()
    for n in range(boards):
        created = Timestamp(seconds=start + 37 * n, nanos=(123_456 * (n + 1)) % 1_000_000 * 1000)
        board = listing.boards.add(
            board_id=str(uuid.uuid4()),
            project_id=project,
            workspace_id=workspace,
            author_id=author,
            assignee_id=members[n % 2],
            title=f"Board {n}: tidy up the release checklist",
            content="Collect the open items, assign an owner to each and close the ones already done.",
            custom_fields={"stage": stages[n % 4], "importance": "high", "role": "developer"},
            start_date=Timestamp(seconds=start + 86_400 * (n % 30)),
            due_date=Timestamp(seconds=start + 86_400 * (n % 30 + 7)),
            participant_ids=members,
            created_at=created,
            updated_at=created,
        )
        if n % 4 == 0:
            board.attachments.append(
                common_pb2.AttachmentInline(
                    id=str(uuid.uuid4()),
                    file_name="spec.pdf",
                    file_url=f"http://127.0.0.1:9000/wealist/boards/{board.board_id}/spec.pdf?X-Amz-Signature=abc",
                    file_size=48_213,
                    content_type="application/pdf",
                    uploaded_by=author,
                    uploaded_at=created,
                )
            )
    return listing


def _json_print(boards: int) -> None:
    """Time MessageToDict against the compiled printer on one board listing."""
    listing = board_listing(boards)
    wire = listing.SerializeToString()
    reference = json_format.MessageToDict(listing, always_print_fields_with_no_presence=True)
    same = json.dumps(reference) == json.dumps(message_to_dict(listing))

    def reference_print(message: Message) -> object:
        return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)

    def best(call: Callable[[], object]) -> float:
        number = 20
        return min(timeit.repeat(call, number=number, repeat=7)) / number * 1000

    def printed(printer: Callable[[Message], object]) -> Callable[[], object]:
        return lambda: printer(listing)

    def received(printer: Callable[[Message], object]) -> Callable[[], object]:
        # As the gateway gets it: parsed from the wire, printed, encoded.
        def call() -> object:
            document = printer(board_pb2.ListBoardsResponse.FromString(wire))
            return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

        return call

    size = len(json.dumps(reference, separators=(",", ":")))
    out = sys.stdout
    out.write(
        f"ListBoardsResponse, {boards} boards ({size} bytes of JSON); best of 7 x 20, ms per response\n"
        f"same JSON (keys, order, values): {'yes' if same else 'NO'}\n"
    )
    for label, variant in (("print", printed), ("parse + print + json.dumps", received)):
        old, new = best(variant(reference_print)), best(variant(message_to_dict))
        out.write(f"  {label:28} MessageToDict {old:7.3f} ms   compiled {new:7.3f} ms   {old / new:4.1f}x\n")


def main() -> None:
    """Run the benchmark (no command), the printing micro-benchmark, or one of its servers (``serve-*``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", nargs="?", choices=["serve-echo", "serve-gateway", "serve-bare", "json-print"]
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls at concurrency 1")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration at concurrency 64")
    parser.add_argument("--profile", action="store_true", help="profile the gateway in an extra round")
    parser.add_argument("--port", type=int)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--generated", type=Path)
    parser.add_argument("--echo")
    parser.add_argument("--profile-out", dest="profile_out", type=Path)
    parser.add_argument("--boards", type=int, default=200, help="boards in the json-print listing")
    args = parser.parse_args()
    if args.command == "json-print":
        _json_print(args.boards)
        return
    if args.command == "serve-echo":
        _serve_echo(args.state, args.generated, args.port)
    elif args.command == "serve-gateway":
        _serve_gateway(args.state, args.generated, args.port, args.echo, args.profile_out)
    elif args.command == "serve-bare":
        _uvicorn(bare_app(), args.port)
    else:
        with tempfile.TemporaryDirectory(prefix="wealist-bench-") as tmp:
            generated = Path(tmp) / "gen"
            generated.mkdir()
            compile_echo(generated)
            asyncio.run(_bench(args, Path(tmp), generated))


if __name__ == "__main__":
    main()
