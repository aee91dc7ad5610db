"""What the REST gateway costs over a direct gRPC call, and against a bare Starlette handler.

``nox -s bench`` (or ``python -m bench.gateway [--calls N] [--seconds S] [--profile]``) compiles the
test-only echo service (tests/gateway/protos), then starts three servers, each in its own process:

(a) the echo service on the shared runtime, over mTLS;
(b) the gateway (uvicorn, uvloop, httptools) routing ``GET /api/svc/echo/api/rooms/{room}/echo`` to (a);
(c) a bare Starlette app under the same uvicorn settings returning the same JSON;
(d) a hand-written Starlette handler for the same route that makes the same gRPC call on the same kind of
    channel and writes the same JSON: what a proxy written for this one method costs, the generic
    gateway's natural baseline.

``EchoService/Echo`` does no I/O, and its user auth is optional, so no token is sent and neither auth,
user, Redis nor Postgres is needed. The load generator runs in this process, on the same machine: (a)
on a grpc.aio mTLS channel as the ``gateway`` workload, (b), (c) and (d) on keep-alive HTTP/1.1
connections of a minimal asyncio client, so the client's own cost stays small and is the same for each.
At concurrency 1 it makes N sequential calls; at 64 it runs 64 workers for a fixed time. It prints
requests/s, p50 and p99 of each; the CPU time each process spent per request at 64 (from /proc, all
threads), which says where the time goes whatever share of the CPUs each process got; then the
gateway's p50 overhead at concurrency 1 and (b)/(c) requests/s at 64 against the targets. ``--profile``
runs the gateway under cProfile for one extra 64-worker round and prints its ten most expensive
functions.

``python -m bench.gateway json-print [--boards N]`` times the response printing alone: a kanban listing
(``ListBoardsResponse`` with N boards, fields set as the board service sets them) printed by
``json_format.MessageToDict`` and by the gateway's compiled printer (gateway/jsonprint.py), after
checking that both print the same JSON; then as a response costs in all, parsed, printed and written:
MessageToDict with ``json.dumps`` against the compiled printer with orjson.
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from bench.load import Call, CpuMeter, HttpConnection, Result, concurrent, interleaved
from gateway.app import create_app
from gateway.jsonprint import encode, message_to_dict
from gateway.settings import GatewaySettings
from mesh import Hosted, MeshSettings, Runtime, ensure_dev_pki, load_tls, open_channel, run
from tests.support.echo import compile_echo, echo_servicer, import_echo

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
    servicer = echo_servicer(pb2, pb2_grpc)
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

    async def build(runtime: Runtime[MeshSettings]) -> list[object]:
        return [Hosted(service, lambda server: pb2_grpc.add_EchoServiceServicer_to_server(servicer, server))]

    run(settings, build)


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


def proxy_app(state: Path, generated: Path, echo: str) -> Starlette:
    """The echo route written by hand: path and query to EchoRequest, one gRPC call, the reply as JSON."""
    pb2, pb2_grpc = import_echo(generated)
    stubs: list[Any] = []

    async def route(request: Request) -> Response:
        if not stubs:  # a grpc.aio channel belongs to the loop it is made in: make it on the first call
            channel = open_channel(echo, workload="echo", tls=load_tls(state, "gateway"), propagate=False)
            stubs.append(pb2_grpc.EchoServiceStub(channel))
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        query = request.query_params
        message = pb2.EchoRequest(
            room=request.path_params["room"], text=query.get("text", ""), count=int(query.get("count", "0"))
        )
        reply = await stubs[0].Echo(message, timeout=30, metadata=(("x-request-id", request_id),))
        data = {
            "room": reply.room,
            "text": reply.text,
            "count": reply.count,
            "tags": list(reply.tags),
            "loud": reply.loud,
            "userId": reply.user_id,
            "workspaceId": reply.workspace_id,
        }
        body = json.dumps({"data": data, "requestId": request_id}, separators=(",", ":")).encode()
        return Response(body, status_code=201, media_type="application/json")

    return Starlette(routes=[HttpRoute("/api/svc/echo/api/rooms/{room}/echo", route)])


# ---- the load generator (bench.load) against the servers ----


@dataclass
class Target:
    """One way of making the echo call: one call for c=1, and ``workers()`` for c=64.

    The 64 HTTP connections are opened just before their round: a server closes a keep-alive connection
    left idle for a few seconds (uvicorn after 5), which they would be through the c=1 turns.
    """

    one: Call
    workers: Callable[[], Awaitable[list[Call]]]
    close: Callable[[], Awaitable[None]]


async def _http_target(port: int) -> Target:
    connections = [await HttpConnection.open(port, PATH)]

    def call_on(connection: HttpConnection) -> Call:
        async def call() -> None:
            status, _ = await connection.get()
            if status != 201:
                raise RuntimeError(f"HTTP {status} from 127.0.0.1:{port}")

        return call

    async def workers() -> list[Call]:
        more = [await HttpConnection.open(port, PATH) for _ in range(max(CONCURRENCY))]
        connections.extend(more)
        return [call_on(connection) for connection in more]

    async def close() -> None:
        for connection in connections:
            await connection.close()

    return Target(call_on(connections[0]), workers, close)


def _grpc_target(state: Path, generated: Path, address: str) -> Target:
    pb2, pb2_grpc = import_echo(generated)
    channel = open_channel(address, workload="echo", tls=load_tls(state, "gateway"), propagate=False)
    echo = pb2_grpc.EchoServiceStub(channel).Echo
    request = pb2.EchoRequest(room=ROOM, text=TEXT, count=COUNT)

    async def call() -> object:
        return await echo(request, timeout=10)

    async def workers() -> list[Call]:
        return [call] * max(CONCURRENCY)  # one channel, as the gateway has one per backend

    return Target(call, workers, channel.close)


Measured = tuple[dict[int, Result], dict[str, float]]


async def _measure(
    targets: dict[str, Target], meters: dict[str, CpuMeter], count: int, seconds: float
) -> dict[str, Measured]:
    """c=1 for all targets in turns, then c=64 for each in turn with the CPU its processes spent."""
    try:
        one = await interleaved({name: target.one for name, target in targets.items()}, count)
        measured = {}
        for name, target in targets.items():
            workers = await target.workers()
            before = meters[name].snapshot()
            many = await concurrent(workers, seconds)
            used = meters[name].per_request_us(before, meters[name].snapshot(), many.requests)
            measured[name] = ({1: one[name], 64: many}, used)
        return measured
    finally:
        for target in targets.values():
            await target.close()


async def _same_json(*ports: int) -> bool:
    replies = []
    for port in ports:
        connection = await HttpConnection.open(port, PATH)
        try:
            status, body = await connection.get()
        finally:
            await connection.close()
        payload = json.loads(body)
        payload.pop("requestId")
        replies.append((status, payload))
    same = all(reply == replies[0] for reply in replies)
    if not same:
        sys.stderr.write(f"the servers' replies differ: {replies}\n")
    return same


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


def _print_cpu(cpu: dict[str, dict[str, float]]) -> None:
    """CPU microseconds per request at c=64, by process; a dash where the process takes no part."""
    out = sys.stdout
    columns = ("load", "gateway", "proxy", "bare", "echo")
    out.write(f"\nCPU per request at c=64, us (all threads){'':<3}" + "".join(f"{c:>9}" for c in columns))
    out.write(f"{'total':>9}\n")
    for name, used in cpu.items():
        cells = "".join(f"{used[c]:>9.0f}" if c in used else f"{'-':>9}" for c in columns)
        out.write(f"{name:<44}{cells}{sum(used.values()):>9.0f}\n")


async def _bench(args: argparse.Namespace, tmp: Path, generated: Path) -> None:
    state = tmp / "state"
    ensure_dev_pki(state, ["echo", "gateway"])
    common = ["--state", str(state), "--generated", str(generated)]
    with _children() as spawn:
        echo_process, echo_port = spawn("serve-echo", *common)
        echo = f"127.0.0.1:{echo_port}"
        gateway, gateway_port = spawn("serve-gateway", *common, "--echo", echo)
        proxy, proxy_port = spawn("serve-proxy", *common, "--echo", echo)
        bare_process, bare_port = spawn("serve-bare")
        pids = {
            "echo": echo_process.pid,
            "gateway": gateway.pid,
            "proxy": proxy.pid,
            "bare": bare_process.pid,
        }

        def meter(*names: str) -> CpuMeter:
            return CpuMeter({"load": None, **{name: pids[name] for name in names}})

        same = await _same_json(gateway_port, proxy_port, bare_port)
        measured = await _measure(
            {
                "a": _grpc_target(state, generated, echo),
                "b": await _http_target(gateway_port),
                "c": await _http_target(bare_port),
                "d": await _http_target(proxy_port),
            },
            {
                "a": meter("echo"),
                "b": meter("gateway", "echo"),
                "c": meter("bare"),
                "d": meter("proxy", "echo"),
            },
            args.calls,
            args.seconds,
        )
        (direct, direct_cpu), (routed, routed_cpu) = measured["a"], measured["b"]
        (bare, bare_cpu), (handmade, handmade_cpu) = measured["c"], measured["d"]
        out = sys.stdout
        out.write(
            f"EchoService/Echo (no I/O), loopback; c=1: {args.calls} sequential calls of each after "
            f"{max(1, args.calls // 10)} warm-up, in 10 turns taken in turn; c=64: 64 workers for "
            f"{args.seconds:g} s after a warm-up\n"
            f"servers in their own processes; the load generator shares this {os.cpu_count()}-CPU "
            "machine with them\n"
            "HTTP client: minimal asyncio HTTP/1.1, one keep-alive connection per worker "
            "(same client cost in b, c and d)\n"
            f"gateway, hand-written proxy and bare handler return the same JSON (but requestId): "
            f"{'yes' if same else 'NO'}\n"
        )
        _print_table(
            {
                "(a) gRPC direct, mTLS": direct,
                "(b) gateway, HTTP -> gRPC mTLS": routed,
                "(c) bare Starlette, same JSON": bare,
                "(d) hand-written proxy, same call": handmade,
            }
        )
        _print_cpu(
            {
                "(a) gRPC direct": direct_cpu,
                "(b) gateway": routed_cpu,
                "(c) bare Starlette": bare_cpu,
                "(d) hand-written proxy": handmade_cpu,
            }
        )
        overhead = routed[1].p50_ms - direct[1].p50_ms
        share = routed[64].requests_per_second / bare[64].requests_per_second
        grpc_share = direct[64].requests_per_second / bare[64].requests_per_second
        handmade_share = routed[64].requests_per_second / handmade[64].requests_per_second
        out.write(
            f"\ngateway overhead at c=1, p50 (b) - (a): {overhead:.3f} ms   target <= {P50_TARGET_MS} ms   "
            f"{'MET' if overhead <= P50_TARGET_MS else 'MISSED'}\n"
            f"gateway req/s at c=64, (b) / (c): {share * 100:.0f} %   target >= {RPS_TARGET * 100:.0f} %   "
            f"{'MET' if share >= RPS_TARGET else 'MISSED'}\n"
            f"(for scale, at c=64: (a) / (c) {grpc_share * 100:.0f} %; "
            f"(b) / (d) {handmade_share * 100:.0f} %, the generic gateway against the hand-written proxy)\n"
        )
        if args.profile:
            _stop(gateway)
            profile = tmp / "gateway.prof"
            profiled, profiled_port = spawn(
                "serve-gateway", *common, "--echo", echo, "--profile-out", str(profile)
            )
            profiled_result, _ = (
                await _measure(
                    {"b": await _http_target(profiled_port)},
                    {"b": CpuMeter({"load": None})},
                    max(1, args.calls // 10),
                    args.seconds,
                )
            )["b"]
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

    def dumps(document: object) -> bytes:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def received(
        printer: Callable[[Message], object], write: Callable[[object], bytes]
    ) -> Callable[[], object]:
        # As the gateway gets it: parsed from the wire, printed, written.
        def call() -> object:
            return write(printer(board_pb2.ListBoardsResponse.FromString(wire)))

        return call

    size = len(json.dumps(reference, separators=(",", ":")))
    out = sys.stdout
    out.write(
        f"ListBoardsResponse, {boards} boards ({size} bytes of JSON); best of 7 x 20, ms per response\n"
        f"same JSON (keys, order, values): {'yes' if same else 'NO'}\n"
    )
    old, new = best(printed(reference_print)), best(printed(message_to_dict))
    out.write(f"  {'print':30} MessageToDict {old:7.3f} ms   compiled {new:7.3f} ms   {old / new:4.1f}x\n")
    written = encode(message_to_dict(listing)) == dumps(reference)
    out.write(f"  written by orjson and by json.dumps, same bytes: {'yes' if written else 'NO'}\n")
    old, new = best(received(reference_print, dumps)), best(received(message_to_dict, encode))
    out.write(
        f"  {'parse + print + write':30} MessageToDict + json.dumps {old:7.3f} ms   "
        f"compiled + orjson {new:7.3f} ms   {old / new:4.1f}x\n"
    )


def main() -> None:
    """Run the benchmark (no command), the printing micro-benchmark, or one of its servers (``serve-*``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve-echo", "serve-gateway", "serve-proxy", "serve-bare", "json-print"],
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
    elif args.command == "serve-proxy":
        _uvicorn(proxy_app(args.state, args.generated, args.echo), args.port)
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
