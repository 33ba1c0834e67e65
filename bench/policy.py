"""Policy decision latency per engine, and the cost of the policy stages per phase.

    python bench/policy.py [--n 5000] [--engines regorus,opa-lib,opa] [--opa-client]

- ``decision``: one ``evaluate`` of ``wardgate/{request,response}/decision`` on a realistic
  input (5 messages, 3 tools; the answer has 2 tool calls), normalised — p50/p99 per engine.
- ``stage``: ``PolicyRequestStage.on_request`` / ``PolicyResponseStage.on_response`` on a
  ``Call`` (input built from the call, decision, effects, headers, metrics): what the policy
  adds to a gateway call per phase; ``both phases`` runs the two on one call, as the gateway
  does (the response phase reuses the request's keyed tools and tool results).
- ``--gateway``: the real gateway (``wardgate serve``, one worker, other guards off) in front
  of the fast fake upstream, policy off vs on, c=1, measured with wrk (bench/common.py): the
  latency and CPU the two policy phases add to a call.
- ``--opa-client``: the ``opa`` hot path, ``opa-python-client``'s ``AsyncOpaClient.query_rule``
  against a plain ``aiohttp`` POST on a pooled session and the lean ``wire`` client
  (``gateway/policy/engines/opa_wire.py``), to the same OPA-compatible server
  (tests/opa_server.py, run in a child process so only the client's CPU is in this process).

The ``opa`` engine is measured against tests/opa_server.py (a Python server over the real
OPA engine), so its numbers include that server; a real OPA server answers faster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry  # noqa: E402

from gateway.call import Call, Endpoint, ModelResponse, Principal  # noqa: E402
from gateway.callstate import Budget, RunTally  # noqa: E402
from gateway.policy.config import PolicySettings  # noqa: E402
from gateway.policy.decision import PolicyDecision  # noqa: E402
from gateway.policy.engines import create_engine  # noqa: E402
from gateway.policy.input import build_input  # noqa: E402
from gateway.policy.metrics import PolicyMetrics  # noqa: E402
from gateway.policy.reload import PolicyManager  # noqa: E402
from gateway.policy.service import PolicyService  # noqa: E402
from gateway.policy.source import load_policy_set  # noqa: E402
from gateway.policy.stage import PolicyRequestStage, PolicyResponseStage  # noqa: E402

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": n,
            "description": d,
            "parameters": {
                "type": "object",
                "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
            },
        },
    }
    for n, d in (
        ("search_orders", "Find orders"),
        ("issue_refund", "Refund an order"),
        ("transfer_funds", "Move money"),
    )
]


def realistic_body() -> dict[str, Any]:
    return {
        "model": "mock-chat",
        "messages": [
            {"role": "system", "content": "You are the support agent of ACME. Be brief and polite. " * 4},
            {"role": "user", "content": "My order A-1234 arrived broken, can I get my money back? " * 3},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_orders", "arguments": '{"order_id": "A-1234"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": '{"order_id": "A-1234", "amount": 129.9, "status": "delivered", "items": 3}',
            },
            {"role": "user", "content": "Yes please refund the full amount to my card."},
        ],
        "tools": TOOLS,
        "temperature": 0.2,
        "max_tokens": 512,
    }


def realistic_answer() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "mock-chat",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Refunding now.",
                    "tool_calls": [
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {
                                "name": "issue_refund",
                                "arguments": '{"order_id": "A-1234", "amount": 129.9}',
                            },
                        },
                        {
                            "id": "call_3",
                            "type": "function",
                            "function": {
                                "name": "transfer_funds",
                                "arguments": '{"amount": 12.5, "to": "customer"}',
                            },
                        },
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 420, "completion_tokens": 60, "total_tokens": 480},
    }


def make_call() -> Call:
    return Call(
        request_id="bench",
        endpoint=Endpoint.CHAT,
        body=realistic_body(),
        headers={},
        model="mock-chat",
        principal=Principal(key_id="k1", team="demo", user="u1", roles=("developer",)),
        agent_id="agent-1",
        run_id="run-1",
        pii={"entities": {"EMAIL_ADDRESS": 1}, "locations": [], "unscanned": 0},
        budget=Budget(
            0.004, remaining_usd={"key": 20.0, "team": 180.0}, budget_usd={"key": 25.0, "team": 200.0}
        ),
        run=RunTally(calls=4, spend_usd=0.02, repeats=0),
    )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Samples(list[float]):
    """Wall times of each call, plus the process CPU time per call (less disturbed by other
    processes on a busy machine than wall time)."""

    cpu_per_call: float = 0.0


async def timed(n: int, fn: Callable[[], Awaitable[Any]], warmup: int = 200) -> Samples:
    for _ in range(warmup):
        await fn()
    out = Samples()
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    out.cpu_per_call = (time.process_time() - cpu0) / n
    return out


def row(label: str, samples: Samples) -> str:
    us = [s * 1e6 for s in samples]
    return (
        f"{label:<34} p50 {pct(us, 0.5):8.1f} µs   p99 {pct(us, 0.99):8.1f} µs   "
        f"mean {statistics.fmean(us):8.1f} µs   CPU {samples.cpu_per_call * 1e6:7.1f} µs/call"
    )


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def opa_server_process(canned: bool = False) -> Iterator[str]:
    """tests/opa_server.py in a child process, or (``canned``) a bare server answering every
    request with one fixed decision, so that only the client's own cost is measured."""
    port = free_port()
    args = (
        [str(Path(__file__).resolve()), "--serve-canned", str(port)]
        if canned
        else [
            str(REPO / "tests" / "opa_server.py"),
            "--port",
            str(port),
            "--rego",
            str(REPO / "rego"),
            "--policies",
            str(REPO / "policies"),
        ]
    )
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server {args[0]} did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def bench_engine(kind: str, n: int, opa_url: str | None) -> None:
    settings = PolicySettings(engine=kind, opa_url=opa_url or "http://127.0.0.1:8181", timeout_ms=1000)
    engine = create_engine(settings)
    registry = CollectorRegistry()
    metrics = PolicyMetrics(registry)
    manager = PolicyManager(engine, REPO / "rego", REPO / "policies", metrics=metrics, run_tests=False)
    result = await manager.reload(reason="bench")
    if result.result != "loaded":
        raise SystemExit(f"policy set refused: {result.errors}")
    service = PolicyService(manager, settings, metrics)
    call = make_call()
    req_doc = build_input(call)
    from gateway.policy.answer import answer_view

    resp_doc = build_input(call, answer_view(Endpoint.CHAT, realistic_answer()))
    snap = engine.snapshot()

    async def req() -> Any:
        return PolicyDecision.from_result(await snap.evaluate(settings.request_path, req_doc))

    async def resp() -> Any:
        return PolicyDecision.from_result(await snap.evaluate(settings.response_path, resp_doc))

    count = n if kind != "opa" else max(500, n // 5)
    print(row(f"{kind:<8} decision request", await timed(count, req)))
    print(row(f"{kind:<8} decision response", await timed(count, resp)))

    request_stage, response_stage = PolicyRequestStage(service), PolicyResponseStage(service)
    answer = ModelResponse(200, {}, json=realistic_answer())
    calls = iter([make_call() for _ in range(2 * (count + 200))])

    async def stage_req() -> None:
        await request_stage.on_request(next(calls))

    async def stage_resp() -> None:
        await response_stage.on_response(next(calls), answer)

    async def stage_both() -> None:
        call = next(calls)
        await request_stage.on_request(call)
        await response_stage.on_response(call, answer)

    print(row(f"{kind:<8} stage policy_request", await timed(count, stage_req)))
    print(row(f"{kind:<8} stage policy_response", await timed(count, stage_resp)))
    calls = iter([make_call() for _ in range(count + 200)])
    print(row(f"{kind:<8} stage both phases", await timed(count, stage_both)))
    await engine.close()


def serve_canned(port: int) -> None:
    """Answer every HTTP request with a fixed OPA decision (keep-alive, no parsing beyond framing)."""
    body = b'{"result":{"allow":true,"deny":[],"require_approval":[],"redact":{},"route":{},"limits":{},"tags":{}}}'
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buf = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, _, rest = self.buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(rest) < length:
                    return
                self.buf = rest[length:]
                self.transport.write(answer)

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(run())


async def bench_opa_client(url: str, n: int) -> None:
    import aiohttp
    import orjson
    from opa_client import AsyncOpaClient

    doc = build_input(make_call())
    path = "wardgate/request/decision"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def plain() -> Any:
        async with session.post(
            f"{url}/v1/data/{path}",
            data=orjson.dumps({"input": doc}),
            headers={"Content-Type": "application/json"},
        ) as r:
            return orjson.loads(await r.read())["result"]

    from gateway.policy.engines.opa_wire import WireClient

    wire_client = WireClient(url)

    async def wire() -> Any:
        _status, raw = await wire_client.post(f"/v1/data/{path}", orjson.dumps({"input": doc}))
        return orjson.loads(raw)["result"]

    port = int(url.rsplit(":", 1)[1])
    async with AsyncOpaClient(host="127.0.0.1", port=port, timeout=5.0) as client:

        async def lib() -> Any:
            return (await client.query_rule(doc, "wardgate/request", "decision"))["result"]

        if not (await plain() == await lib() == await wire()):
            raise SystemExit("the clients disagree")
        print(f"-- against {url}")
        for label, fn in (
            ("aiohttp POST (pooled session)", plain),
            ("AsyncOpaClient.query_rule", lib),
            ("wire (engines/opa_wire.py)", wire),
        ):
            print(row(label, await timed(n, fn)))
    await session.close()
    wire_client.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--engines", default="regorus,opa-lib,opa")
    parser.add_argument("--opa-client", action="store_true", help="compare AsyncOpaClient with a plain POST")
    parser.add_argument("--gateway", action="store_true", help="gateway latency with the policy on vs off")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run (--gateway)")
    args = parser.parse_args()
    kinds = [k for k in args.engines.split(",") if k]
    load = load_policy_set(REPO / "rego", REPO / "policies")
    print(f"policy revision {load.revision}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    need_server = "opa" in kinds or args.opa_client
    with opa_server_process() if need_server else contextlib.nullcontext() as url:
        for kind in kinds:
            await bench_engine(kind, args.n, url)
        if args.opa_client:
            await bench_opa_client(url, max(500, args.n // 5))
    if args.opa_client:
        with opa_server_process(canned=True) as canned_url:
            await bench_opa_client(canned_url, max(1000, args.n // 2))
    if args.gateway:
        bench_gateway(args.seconds)


def bench_gateway(seconds: int) -> None:
    from bench.common import CHAT_BODY, cpu_seconds, fake_upstream, gateway, wrk

    with fake_upstream() as upstream:
        for stream in (False, True):
            body = {**CHAT_BODY, "stream": stream}
            results = {}
            for label, config in (
                ("policy off", {}),
                ("policy on", {"policy": {"enabled": True, "watch": False}}),
            ):
                with gateway(upstream, config) as gw:
                    wrk(gw.url + "/chat/completions", body, 4, 2)  # warm-up
                    cpu0 = cpu_seconds(gw.pid)
                    result = wrk(gw.url + "/chat/completions", body, 1, seconds)
                    cpu = (cpu_seconds(gw.pid) - cpu0) / max(result.requests, 1) * 1e6
                    results[label] = (result, cpu)
                    kind = "stream" if stream else "non-stream"
                    print(
                        f"gateway {kind:10s} c=1 {label:<10} {result.row()}  cpu {cpu:6.0f} µs/req",
                        flush=True,
                    )
            (off, cpu_off), (on, cpu_on) = results["policy off"], results["policy on"]
            print(
                f"gateway {'stream' if stream else 'non-stream':10s} policy adds p50 {on.p50_ms - off.p50_ms:+.3f} ms "
                f"(both phases)  CPU {cpu_on - cpu_off:+.0f} µs/req",
                flush=True,
            )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-canned":
        serve_canned(int(sys.argv[2]))
    else:
        asyncio.run(main())
