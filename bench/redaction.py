"""Redaction cost as a ratio to the same call with redaction off, and under hostile requests.

    .venv/bin/python bench/redaction.py [--scale 1.0] [--json] [--per-call]

Two gateway processes run side by side (one worker each, pinned to core 0; the bench's own
upstream and client on core 1), one with redaction off and one with the defaults on; each
case is sent to both, alternately, in one run, and reported as the ratio of the gateway's
CPU time per call (on / off; wall-clock p50 alongside: the machine may be shared):

  a) a 200 B prompt;
  b) a 2 KB new message on a 40 KB conversation already seen (the 40 KB are cache hits);
  c) a 20 KB new message;
  d) a ~57 KB CSV of 2,500 contacts (every phone number redacted);
  e) 2,500 ten-digit ids in JSON (left alone: ids are not phone numbers);
  f) a 2 KB answer streamed in 3-character chunks.

Targets: b <= 1.2x, c <= 3x, d and e <= 10x, f <= 1.5x; RSS <= 200 MB per worker.

Hostile requests (issue 17), to the redaction-on gateway: CPU per request against a normal
300-byte request (target <= 20x): ten messages of 1,999 phone numbers (refused before any
recognizer runs), and the most a request can cost inside the default work budget.

Every measured message is new (never a cache hit) unless the case says otherwise.
``--per-call`` adds the in-process per-call figures of ``redact_in`` (pre-filter on/off).
``--profile b`` instead profiles one case inside the gateway worker, redaction off and on, and
prints the difference by function (``bench/worker_profile.py``): the work only "on" does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_KEY, cpu_seconds, gateway, pinned
from gateway.call import Call, Endpoint
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.stage import RedactInStage
from tests.redaction.dense import contacts_csv, contacts_emails_csv, hostile_messages, ids_json

PROSE = [
    "I looked at the failing test and the problem is that the fixture is created once per session.",
    "Could you refactor the retry logic so that it backs off exponentially and gives up after five attempts?",
    "The deployment to staging finished without errors, but the health check took longer than usual.",
    "Here is the summary of the incident: the cache was cold after the restart and latency went up for ten minutes.",
    "Please keep the public API unchanged; only the internals of the parser should move to the new module.",
    "The customer asked whether the export can include archived projects as well as active ones.",
    "We should add a metric for queue depth and alert when it stays above the threshold for five minutes.",
    "The migration adds a nullable column first, backfills it in batches, then adds the constraint.",
]
CODE = [
    "def retry(fn, attempts=5, base=0.2):\n    for i in range(attempts):\n        try:\n            return fn()\n"
    "        except TimeoutError:\n            time.sleep(base * 2 ** i)\n    raise RuntimeError('gave up')",
    "for row in rows[:100]:\n    total += row['amount'] * 1.2\nprint(f'{total:.2f}')",
    "SELECT id, created_at, status FROM orders WHERE created_at > '2024-03-01' ORDER BY id DESC LIMIT 50;",
]
Messages = list[dict[str, Any]]
#: Issue 16's targets: gateway CPU per call with redaction on / off, by case letter (a and e
#: have none of their own: a is the baseline shape, e shares d's <= 10x).
TARGETS = {"b": 1.2, "c": 3.0, "d": 10.0, "e": 10.0, "f": 1.5}
RSS_TARGET_MB = 200


def log_line(rng: random.Random) -> str:
    return (
        f"2024-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z INFO request_id={rng.getrandbits(64):016x} "
        f"path=/api/v1/items/{rng.randint(1, 99999)} status=200 latency_ms={rng.randint(1, 900)} "
        f"client=10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def tool_result(rng: random.Random) -> str:
    return json.dumps(
        {
            "id": rng.randint(10000, 999999),
            "status": rng.choice(["open", "closed", "pending"]),
            "created_at": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:2{rng.randint(0, 9)}:00Z",
            "amount": round(rng.uniform(1, 5000), 2),
            "items": rng.randint(1, 40),
            "sku": f"SKU-{rng.randint(1000, 9999)}",
        }
    )


def entity(rng: random.Random) -> str:
    return rng.choice(
        [
            f"contact {rng.choice(['ana', 'li', 'sam', 'kim'])}.{rng.randint(1, 999)}@example.com about it",
            f"call {rng.choice(['+1 415 555 2671', '(212) 736-5000', '+44 20 7946 0958'])} if urgent",
            "the card on file is 4111 1111 1111 1111",
        ]
    )


def agent_text(rng: random.Random, size: int, profile: str = "dense") -> str:
    """``dense``: 20% log lines (timestamps, hex ids, an IP each), 20% JSON tool results, an
    e-mail/phone/card every ~1 KB. ``chat``: prose, code and JSON tool results, no logs, one
    e-mail/phone/card every ~2 KB."""
    parts: list[str] = []
    n = 0
    every = 1000 if profile == "dense" else 2000
    next_entity = every - 100
    while n < size:
        if n >= next_entity:
            part = entity(rng)
            next_entity += every
        else:
            kind = rng.random()
            if profile == "dense":
                part = (
                    rng.choice(PROSE)
                    if kind < 0.45
                    else rng.choice(CODE)
                    if kind < 0.6
                    else log_line(rng)
                    if kind < 0.8
                    else tool_result(rng)
                )
            else:
                part = (
                    rng.choice(PROSE) if kind < 0.6 else rng.choice(CODE) if kind < 0.85 else tool_result(rng)
                )
        parts.append(part)
        n += len(part) + 1
    return "\n".join(parts)[:size]


def call_for(messages: Messages) -> Call:
    return Call("bench", Endpoint.CHAT, {"model": "m", "messages": copy.deepcopy(messages)}, {})


def _p99(xs: list[float]) -> float:
    return round(sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))], 3)


async def measure(stage: RedactInStage, make: Callable[[int], Messages], iterations: int) -> dict[str, float]:
    """Wall time and process CPU time (event loop + analysis worker threads) per ``redact_in`` call."""
    wall, cpu = [], []
    for i in range(iterations):
        call = call_for(make(i))
        t0, c0 = time.perf_counter(), time.process_time()
        await stage.on_request(call)
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": round(statistics.median(wall), 3),
        "p99_ms": _p99(wall),
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_p99_ms": _p99(cpu),
    }


async def per_call(iterations: int, prefilter: bool, profile: str) -> dict[str, Any]:
    rng = random.Random(7)
    redactor = build(RedactionSettings())
    engine = redactor.engine
    if not prefilter:
        full = engine.detect
        engine.detect = lambda text, prefilter=True: full(text, prefilter=False)  # type: ignore[method-assign]
    stage = RedactInStage(redactor)
    small = [agent_text(rng, 200, profile) for _ in range(iterations)]
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": agent_text(rng, 2048, profile)}
        for i in range(20)
    ]
    await stage.on_request(call_for(history))  # the conversation so far: seen once, now cached
    new_2k = [agent_text(rng, 2048, profile) for _ in range(iterations)]
    big_n = max(30, iterations // 3)
    new_20k = [agent_text(rng, 20480, profile) for _ in range(big_n)]
    try:
        return {
            "a_200B": await measure(stage, lambda i: [{"role": "user", "content": small[i]}], iterations),
            "b_2KB_on_40KB_seen": await measure(
                stage, lambda i: [*history, {"role": "user", "content": new_2k[i]}], iterations
            ),
            "c_20KB": await measure(stage, lambda i: [{"role": "user", "content": new_20k[i]}], big_n),
        }
    finally:
        engine.close()


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the ratio suite -------------------------------------------------------------------------


class Upstream:
    """A minimal OpenAI-shaped upstream on its own core: a small JSON answer, or ``answer``
    streamed in 3-character chat deltas (the client of case f reads ~700 events)."""

    def __init__(self, answer: str) -> None:
        self.port = 0
        self._answer = answer
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        code = self._code()
        self._proc = subprocess.Popen(
            pinned([sys.executable, "-c", code], 1),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(self._answer.encode())
        self._proc.stdin.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/v1"

    def _code(self) -> str:
        """The upstream's program, on ``self.port``."""
        return _UPSTREAM.replace("@PORT@", str(self.port))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)


_UPSTREAM = r"""
import asyncio, json, random, string, sys
answer = sys.stdin.read()
# Chunks as OpenAI writes them: compact, the full envelope, and a random-length random
# ``obfuscation`` pad on every chunk (so no two chunks have the same bytes around the content).
head = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 0, "model": "bench-model",
    "service_tier": "default", "system_fingerprint": "fp_bench"}
rng = random.Random(5)
def event(obj):
    obj["obfuscation"] = "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 12)))
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
def choice(delta, finish=None):
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
chunks = [event({**head, "choices": choice({"role": "assistant", "content": "", "refusal": None})})]
chunks += [event({**head, "choices": choice({"content": answer[i:i + 3]})}) for i in range(0, len(answer), 3)]
chunks.append(event({**head, "choices": choice({}, "stop")}))
chunks.append(event({**head, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 500, "total_tokens": 510}}))
chunks.append(b"data: [DONE]\n\n")
stream = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
stream = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + stream
body = json.dumps({"id": "chatcmpl-b", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}).encode()
plain = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
async def handle(reader, writer):
    try:
        while True:
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head_bytes.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            data = await reader.readexactly(length) if length else b""
            writer.write(stream if b'"stream":true' in data.replace(b" ", b"") else plain)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", @PORT@)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def _body(messages: Messages, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "bench-model", "messages": messages, "max_tokens": 1000}
    if stream:
        body["stream"] = True
    return body


def _call(client: httpx.Client, url: str, body: dict[str, Any]) -> int:
    if body.get("stream"):
        with client.stream("POST", url, json=body) as resp:
            for _ in resp.iter_bytes():
                pass
            return resp.status_code
    return client.post(url, json=body).status_code


def _cases(rng: random.Random, scale: float) -> dict[str, tuple[int, Callable[[int], dict[str, Any]]]]:
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": agent_text(rng, 2048, "chat")}
        for i in range(20)
    ]
    csv, _ = contacts_csv()
    csv_emails, _ = contacts_emails_csv()
    ids, _ = ids_json()

    def n(x: int) -> int:
        return max(5, int(x * scale))

    return {
        "a_200B_prompt": (
            n(200),
            lambda i: _body([{"role": "user", "content": agent_text(rng, 200, "chat")}]),
        ),
        "b_2KB_on_40KB_seen": (
            n(100),
            lambda i: _body([*history, {"role": "user", "content": agent_text(rng, 2048, "chat")}]),
        ),
        "c_20KB_new": (n(40), lambda i: _body([{"role": "user", "content": agent_text(rng, 20480, "chat")}])),
        "d_57KB_csv_2500_contacts": (
            n(15),
            lambda i: _body([{"role": "user", "content": f"batch {i}\n{csv}"}]),
        ),
        # Informational (no target; runs with d): d's shape as most exports have it, with e-mails.
        "d2_57KB_csv_1300_contacts_emails": (
            n(15),
            lambda i: _body([{"role": "user", "content": f"batch {i}\n{csv_emails}"}]),
        ),
        "e_2500_ids_json": (n(15), lambda i: _body([{"role": "user", "content": f"batch {i}\n{ids}"}])),
        "f_2KB_answer_3char_chunks": (
            n(40),
            lambda i: _body([{"role": "user", "content": f"summarise ticket {i}"}], stream=True),
        ),
    }


def _cpu(pid: int) -> float:
    """CPU seconds of every thread of ``pid``, to the nanosecond (``schedstat``; the clock-tick
    counters behind ``cpu_seconds`` move in 10 ms steps, longer than a whole small call)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    except OSError:
        return cpu_seconds(pid)
    return total / 1e9


def _measure(client: httpx.Client, gw: Any, body: dict[str, Any]) -> tuple[float, float, int]:
    c0, t0 = _cpu(gw.pid), time.perf_counter()
    status = _call(client, gw.url + "/chat/completions", body)
    return _cpu(gw.pid) - c0, time.perf_counter() - t0, status


def ratio_suite(
    scale: float, only: str = "abcdef", hostile_too: bool = True, on_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    rng = random.Random(7)
    answer = agent_text(random.Random(3), 2048, "chat")
    out: dict[str, Any] = {}
    with Upstream(answer) as upstream_url:
        with (
            gateway(upstream_url, {}) as off,
            gateway(upstream_url, {"redaction": {"enabled": True, **(on_config or {})}}) as on,
            httpx.Client(headers={"authorization": f"Bearer {BENCH_KEY}"}, timeout=120) as client,
        ):
            for gw in (off, on):  # warm-up: imports, first-request paths
                for _ in range(5):
                    _call(client, gw.url + "/chat/completions", _body([{"role": "user", "content": "hello"}]))
            for name, (iterations, make) in _cases(rng, scale).items():
                if name[0] not in only:
                    continue
                samples: dict[str, list[tuple[float, float, int]]] = {"off": [], "on": []}
                for i in range(iterations):
                    body = make(i)
                    for label, gw in (("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off)):
                        samples[label].append(_measure(client, gw, body))
                row: dict[str, Any] = {"iterations": iterations}
                for label in ("off", "on"):
                    cpu = [c for c, _, _ in samples[label]]
                    wall = [w for _, w, _ in samples[label]]
                    row[f"cpu_ms_{label}"] = round(sum(cpu) / len(cpu) * 1000, 3)
                    row[f"wall_p50_ms_{label}"] = round(statistics.median(wall) * 1000, 3)
                    row[f"errors_{label}"] = sum(1 for _, _, s in samples[label] if s != 200)
                row["cpu_ratio"] = round(row["cpu_ms_on"] / max(row["cpu_ms_off"], 1e-6), 2)
                row["wall_ratio"] = round(row["wall_p50_ms_on"] / max(row["wall_p50_ms_off"], 1e-6), 2)
                out[name] = row
            if hostile_too:
                out["hostile"] = hostile(client, on, scale)
            out["rss_mb_off"] = round(_rss_mb(off.pid), 1)
            out["rss_mb_on"] = round(_rss_mb(on.pid), 1)
    return out


def profile_worker(case: str, calls: int, on_config: dict[str, Any]) -> list[str]:
    """``--profile``: one case's calls through a profiled redaction-off and -on worker."""
    from bench.worker_profile import profile_case

    rng = random.Random(7)
    answer = agent_text(random.Random(3), 2048, "chat")
    make = next(make for name, (_, make) in _cases(rng, 1).items() if name[0] == case)
    bodies = [make(i) for i in range(calls + 10)]
    with (
        Upstream(answer) as upstream_url,
        httpx.Client(headers={"authorization": f"Bearer {BENCH_KEY}"}, timeout=120) as client,
    ):
        lines = profile_case(upstream_url, on_config, bodies, _call, client)
    return [f"case {case}, {calls} calls; load average {os.getloadavg()[0]:.2f}", *lines]


def hostile(client: httpx.Client, gw: Any, scale: float) -> dict[str, Any]:
    """CPU per hostile request against a normal 300-byte request, on the redaction-on gateway."""
    rng = random.Random(11)
    normal = [
        _measure(client, gw, _body([{"role": "user", "content": agent_text(rng, 300, "chat")}]))
        for _ in range(max(20, int(60 * scale)))
    ]
    base = sum(c for c, _, _ in normal) / len(normal)
    prose = "The migration adds a nullable column first, backfills it in batches, then adds the constraint. "
    csv_big, _ = contacts_csv(5900, seed=21)  # just under max_candidates
    shapes = {
        "10x1999_phone_numbers (issue 17)": lambda i: _body(hostile_messages(10, 1999, seed=i)),
        "40x1999_phone_numbers": lambda i: _body(hostile_messages(40, 1999, seed=100 + i)),
        "1M_chars_prose_at_the_char_budget": lambda i: _body(
            [{"role": "user", "content": (f"{i} " + prose * 11000)[:1_040_000]}]
        ),
        "5900_formatted_phones_at_the_candidate_budget": lambda i: _body(
            [{"role": "user", "content": f"batch {i}\n{csv_big}"}]
        ),
        "990_unformatted_phones_at_the_matcher_budget": lambda i: _body(
            [
                {
                    "role": "user",
                    "content": " ".join(f"+44 20 7946 {rng.randint(0, 9999):04d}" for _ in range(990)),
                }
            ]
        ),
    }
    out: dict[str, Any] = {"normal_300B_cpu_ms": round(base * 1000, 3)}
    for name, make in shapes.items():
        runs = [_measure(client, gw, make(i)) for i in range(max(3, int(6 * scale)))]
        cpu = sum(c for c, _, _ in runs) / len(runs)
        out[name] = {
            "cpu_ms": round(cpu * 1000, 2),
            "x_normal": round(cpu / max(base, 1e-6), 1),
            "status": sorted({s for _, _, s in runs}),
        }
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="iterations multiplier (0.3 for a quick run)")
    ap.add_argument("--per-call", action="store_true", help="also the in-process per-call figures")
    ap.add_argument("--iterations", type=int, default=300, help="--per-call iterations")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cases", default="abcdef", help="the ratio cases to run (letters), e.g. bd")
    ap.add_argument("--no-hostile", action="store_true", help="skip the hostile-request figures")
    ap.add_argument(
        "--on-config", default="{}", help="JSON merged into the redaction-on gateway's redaction settings"
    )
    ap.add_argument("--profile", default="", help="profile one case (a letter) in the worker, on vs off")
    ap.add_argument("--profile-calls", type=int, default=200, help="--profile: calls per worker")
    args = ap.parse_args()
    if args.profile:
        print("\n".join(profile_worker(args.profile, args.profile_calls, json.loads(args.on_config))))
        return
    results: dict[str, Any] = {
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    results["ratios"] = ratio_suite(args.scale, args.cases, not args.no_hostile, json.loads(args.on_config))
    if args.per_call:
        for profile in ("dense", "chat"):
            results[f"per_call/{profile}"] = await per_call(args.iterations, True, profile)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"load average {results['load_average_at_start']} -> {results['load_average_at_end']} on {results['cpus']} CPUs"
    )
    print(
        f"{'case':<32} {'cpu off':>9} {'cpu on':>9} {'ratio':>7} {'target':>8}   "
        f"{'wall p50 off':>12} {'on':>9} {'ratio':>7}"
    )
    for name, r in results["ratios"].items():
        if not name.startswith(("a_", "b_", "c_", "d_", "d2_", "e_", "f_")):
            continue
        target = TARGETS.get(name.split("_")[0])
        verdict = "" if target is None else f"<={target:g}x " + ("ok" if r["cpu_ratio"] <= target else "NO")
        print(
            f"{name:<32} {r['cpu_ms_off']:>7.2f}ms {r['cpu_ms_on']:>7.2f}ms {r['cpu_ratio']:>6.2f}x {verdict:>8}   "
            f"{r['wall_p50_ms_off']:>10.2f}ms {r['wall_p50_ms_on']:>7.2f}ms {r['wall_ratio']:>6.2f}x"
            + (f"  errors {r['errors_off']}/{r['errors_on']}" if r["errors_off"] or r["errors_on"] else "")
        )
    h = results["ratios"].get("hostile", {})
    if h:
        print(
            f"\nhostile requests (redaction on), CPU vs a normal 300 B request ({h['normal_300B_cpu_ms']} ms):"
        )
    for name, r in h.items():
        if isinstance(r, dict):
            print(f"  {name:<48} {r['cpu_ms']:>9.2f} ms  {r['x_normal']:>7.1f}x  status {r['status']}")
    rss_on = results["ratios"]["rss_mb_on"]
    print(
        f"\nRSS per worker: redaction off {results['ratios']['rss_mb_off']} MB, on {rss_on} MB "
        f"(target <= {RSS_TARGET_MB} MB: {'ok' if rss_on <= RSS_TARGET_MB else 'NO'})"
    )
    for key, value in results.items():
        if key.startswith("per_call/"):
            print(f"{key}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
