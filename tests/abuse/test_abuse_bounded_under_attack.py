"""Issue 17: a hostile request's CPU time stays under the budget (20x a normal call), and a
normal client's latency beside attackers stays within 2x of its idle latency.

The gateway runs in its own process (redaction on, the other guards off), so its CPU is its
own: read from the kernel's per-thread counters (``schedstat``, nanoseconds) of that process,
not from this process, which runs the client and the fake upstream. Each figure is a median
of calls measured one at a time. Latency is the p50 of sequential normal calls on one
keep-alive connection, in windows that alternate idle / under attack (the machine's own load
drifts: on a shared 2-core machine a fixed idle baseline taken once says little), compared
as medians of three windows each (bound: 2x idle plus ``SLACK_MS``). Attackers are child
processes at the lowest priority sending the issue's shapes back to back, so what is
measured is the gateway's share of the harm, not the attackers' own CPU. A measurement that
misses is taken again (three tries in all) before failing; a latency that misses in tries
where other work shared the cores (measured from the machine's busy time minus this test's
processes, see ``oversubscribed``) is reported as a skip with its figures, not judged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import pytest

from tests.abuse.hostile_clients import attack
from tests.fake_openai import FakeOpenAI
from tests.harness import PASS_THROUGH, TEST_KEY, GatewayProcess, make_policies_dir
from tests.redaction.dense import hostile_messages

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
    reason="needs Linux per-thread CPU counters and two cores",
)

#: Issue 17's targets.
MAX_CPU_RATIO = 20.0
MAX_LATENCY_RATIO = 2.0
#: Added to the latency bound: two more busy processes on two cores cost a normal call a
#: scheduling delay of its own (a wake-up waits for a core), under a millisecond on an idle
#: machine, whatever the gateway does. Before issue 17's work a hostile request held the
#: event loop for seconds (another client's p50: 3 -> 39 ms); that still fails here.
SLACK_MS = 1.0

KEY = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
NO_KEY = {"Content-Type": "application/json"}
NORMAL = {
    "model": "gpt-test",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant for an online shop."},
        {
            "role": "user",
            "content": "What is the status of my order 1234? It was placed last Tuesday, thanks!",
        },
    ],
    "max_tokens": 64,
}
#: Ten identical messages of 1,999 phone numbers (0.3 MB): analysed once, then cache hits
#: whose values are replaced once per request.
PHONES = orjson.dumps(
    {
        "model": "gpt-test",
        "messages": [
            {"role": "user", "content": " ".join(f"+1 415-555-{i:04d}" for i in range(1999))}
            for _ in range(10)
        ],
    }
)
#: Ten distinct messages of 1,999 numbers in unusual formats: over the candidate budget.
DENSE = orjson.dumps({"model": "gpt-test", "messages": hostile_messages(10, 1999)})
#: 3.6 MB of nested arrays: over the container bound.
NESTED = (
    b'{"model": "gpt-test", "messages": ['
    + b"[" * 1000
    + b"]" * 1000
    + b","
    + (b"[" * 500 + b"]" * 500 + b",") * 3600
    + b"1]}"
)


def cpu_ns(pid: int) -> int:
    """CPU nanoseconds of every thread of process ``pid`` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    fake = FakeOpenAI(fast=True).start()
    try:
        yield fake.base_url
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def gateway(upstream_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("abuse")
    policies, rego = make_policies_dir(root, upstream_url)
    config = {
        "policies_dir": policies,
        "rego_dir": rego,
        "data_dir": root / "data",
        **PASS_THROUGH,
        "redaction": {"enabled": True},
    }
    gw = GatewayProcess(config, root).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=60) as http:
        for _ in range(30):  # warm-up: first-request paths, the connection
            assert http.post("/chat/completions", json=NORMAL, headers=KEY).status_code == 200
        yield http


def cpu_per_call(pid: int, send: Callable[[], None], n: int) -> float:
    """Median gateway CPU seconds of ``send``, each call measured alone."""
    samples = []
    for _ in range(n):
        before = cpu_ns(pid)
        send()
        time.sleep(0.01)  # what the gateway does after the answer (finish, close) counts too
        samples.append((cpu_ns(pid) - before) / 1e9)
    return statistics.median(samples)


def post(client: httpx.Client, body: bytes, headers: dict[str, str], status: int, code: str | None) -> None:
    resp = client.post("/chat/completions", content=body, headers=headers)
    assert resp.status_code == status, resp.text[:300]
    if code is not None:
        assert resp.json()["error"]["code"] == code


HOSTILE: dict[str, tuple[bytes, dict[str, str], int, str | None]] = {
    "ten identical messages of 1,999 numbers (key)": (PHONES, KEY, 200, None),
    "ten messages of 1,999 unusual numbers (key)": (DENSE, KEY, 400, "content_too_complex"),
    "3.6 MB of nested arrays (key)": (NESTED, KEY, 400, "content_too_complex"),
    "3.6 MB of nested arrays (no key)": (NESTED, NO_KEY, 401, None),
}


def _cpu_ratios(gateway: GatewayProcess, client: httpx.Client) -> dict[str, float]:
    normal = cpu_per_call(gateway.pid, lambda: post(client, orjson.dumps(NORMAL), KEY, 200, None), 40)
    ratios = {}
    for name, (body, headers, status, code) in HOSTILE.items():
        post(client, body, headers, status, code)  # the first is analysed; the rest are what repeats
        hostile = cpu_per_call(
            gateway.pid, lambda b=body, h=headers, s=status, c=code: post(client, b, h, s, c), 7
        )
        ratios[name] = hostile / normal
    return ratios


def test_a_hostile_request_costs_at_most_20_normal_calls(
    gateway: GatewayProcess, client: httpx.Client
) -> None:
    ratios = _cpu_ratios(gateway, client)
    if max(ratios.values()) > MAX_CPU_RATIO:
        ratios = _cpu_ratios(gateway, client)  # once more: a burst of other work on the machine
    over = {name: round(r, 1) for name, r in ratios.items() if r > MAX_CPU_RATIO}
    assert not over, f"gateway CPU per hostile request, in normal calls: {ratios}"


def p50_ms(client: httpx.Client, seconds: float) -> float:
    """p50 of sequential normal calls during ``seconds`` (paced like an agent, not a load test)."""
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        resp = client.post("/chat/completions", json=NORMAL, headers=KEY)
        latencies.append(time.perf_counter() - started)
        assert resp.status_code == 200, resp.text[:300]
        time.sleep(0.005)
    return statistics.median(latencies) * 1000


def busy_ns() -> int:
    """CPU nanoseconds every core of the machine has spent busy so far (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    ticks = user + nice + system + irq + softirq + steal
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def foreign_cores(pids: list[int], window: Callable[[], float]) -> tuple[float, float]:
    """Run ``window`` and return its result with the cores that processes *other* than
    ``pids`` kept busy meanwhile (the machine's busy time minus theirs, per wall second)."""
    before = busy_ns() - sum(cpu_ns(pid) for pid in pids)
    t0 = time.monotonic()
    result = window()
    spent = busy_ns() - sum(cpu_ns(pid) for pid in pids) - before
    return result, max(0.0, spent / 1e9 / (time.monotonic() - t0))


@contextlib.contextmanager
def attackers(gateway: GatewayProcess) -> Iterator[tuple[Any, Any, list[int]]]:
    """Two attacker processes (dense phones, nested arrays, both with a key), paused until
    the yielded ``active`` event is set; ``sent`` counts their answered requests; their pids
    come third."""
    ctx = multiprocessing.get_context("spawn")
    active, stop, sent = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    procs = [
        ctx.Process(
            target=attack,
            args=("127.0.0.1", gateway.port, "/v1/chat/completions", body, KEY, stop, sent, active),
            daemon=True,
        )
        for body in (PHONES, NESTED)
    ]
    for proc in procs:
        proc.start()
    try:
        yield active, sent, [proc.pid for proc in procs if proc.pid is not None]
    finally:
        stop.set()
        active.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


class Latencies(NamedTuple):
    """One measurement: medians of three alternating idle and attacked windows."""

    idle: float
    attacked: float
    answered: int
    #: The gateway's busy share while attacked.
    busy: float
    #: The most cores other work on the machine (other tests, their gateways) kept busy in
    #: any window: this test's processes are the gateway, the two attackers and itself.
    foreign: float


def _latencies(gateway: GatewayProcess, client: httpx.Client) -> Latencies:
    idle, attacked, busy, foreign = [], [], [], []
    with attackers(gateway) as (active, sent, pids):
        ours = [gateway.pid, os.getpid(), *pids]
        time.sleep(1.0)  # the children are up
        for _ in range(3):
            p50, cores = foreign_cores(ours, lambda: p50_ms(client, 1.5))
            idle.append(p50)
            foreign.append(cores)
            active.set()
            time.sleep(0.2)
            cpu0, t0 = cpu_ns(gateway.pid), time.monotonic()
            p50, cores = foreign_cores(ours, lambda: p50_ms(client, 1.5))
            attacked.append(p50)
            foreign.append(cores)
            busy.append((cpu_ns(gateway.pid) - cpu0) / 1e9 / (time.monotonic() - t0))
            active.clear()
            time.sleep(0.3)  # what the attackers had in flight is done
        answered = sent.value
    return Latencies(
        statistics.median(idle),
        statistics.median(attacked),
        answered,
        statistics.median(busy),
        max(foreign),
    )


#: Other work on the machine that makes a window not a fair one: a quarter of a core. With
#: the gateway (one core while attacked), two attackers and the client on two cores, any
#: more runnable work is a wake-up that waits for a core, whatever the gateway does.
FOREIGN_CORES = 0.25


def oversubscribed(measured: Latencies) -> bool:
    """Other work shared the cores while this test measured: the scheduler, not the gateway,
    then decides the client's latency. Measured here at a load of 12-20 on 2 cores: the idle
    p50 alone swung between 2.5 and 20 ms from one window to the next, and /healthz, which
    runs no stage, slowed as much under attack as a proxied call while the gateway was only
    ~15% busy. The load average alone missed a CI run with three test workers (load under 4,
    yet 5.8 ms under attack vs 2.1 idle): it lags by a minute, so the other processes' CPU
    during the windows is measured too."""
    return measured.foreign > FOREIGN_CORES or os.getloadavg()[0] > 2 * (os.cpu_count() or 1)


def test_a_normal_client_beside_attackers_stays_within_2x_of_idle(
    gateway: GatewayProcess, client: httpx.Client
) -> None:
    def within(m: Latencies) -> bool:
        return m.attacked <= MAX_LATENCY_RATIO * m.idle + SLACK_MS

    tries = [_latencies(gateway, client)]
    while not within(tries[-1]) and len(tries) < 3:
        tries.append(_latencies(gateway, client))  # once more: a burst of other work
    m = tries[-1]
    figures = (
        f"normal p50 {m.attacked:.2f} ms under attack vs {m.idle:.2f} ms idle "
        f"({m.answered} hostile requests answered, gateway busy {m.busy:.0%} while attacked, "
        f"other work {m.foreign:.2f} cores, load {os.getloadavg()[0]:.1f}; try {len(tries)})"
    )
    assert m.answered >= 6, f"the attack did not happen: {figures}"
    if not within(m) and all(oversubscribed(t) for t in tries):
        pytest.skip(f"machine shared with other work in every try, not judged: {figures}")
    assert within(m), figures
