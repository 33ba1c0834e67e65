"""What a hostile client costs the gateway, and what a well-behaved one feels meanwhile.

    .venv/bin/python bench/abuse.py [--seconds 5]

One gateway process (redaction on, the other guards off; pinned to core 0) in front of the
fast fake upstream; this script (clients and attackers) runs on core 1. For each hostile
shape it prints the gateway's CPU seconds per hostile request next to a normal ~300-byte
chat request, and the p50 of a well-behaved client (sequential calls on one keep-alive
connection) while attackers send that shape continuously, next to its idle p50.

Shapes: dense phone numbers (10 identical messages x 1,999 numbers, 0.3 MB, valid key), and the
same ten messages made distinct and each sent alone first (so all ten are cache hits: the
values are replaced, not analysed); 3.7 MB of nested arrays without a key (and, for
comparison, with one: refused by the container bound); one 16 MB header; slow-loris (200
connections each trickling a byte a second, reconnecting when closed). The header attack also reports the worker's RSS growth
while 10 connections each send 20 MB of never-ending headers.
Targets (issue 17): no hostile request over 20x the CPU of a normal one; the normal client's
p50 under attack <= 2x idle; RSS growth under the header attack <= 20 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_KEY, CHAT_BODY, fake_upstream, gateway

AUTH = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
PHONES = {
    "model": "bench-model",
    "messages": [
        {"role": "user", "content": " ".join(f"+1 415-555-{i % 10000:04d}" for i in range(1999))}
        for _ in range(10)
    ],
}
#: Ten distinct messages of 1,999 numbers; each is sent alone first, so the request of all
#: ten is ten cache hits (20,000 values to replace, none to analyse).
DISTINCT = {
    "model": "bench-model",
    "messages": [
        {
            "role": "user",
            "content": f"batch {m}: " + " ".join(f"+1 415-555-{i % 10000:04d}" for i in range(1999)),
        }
        for m in range(10)
    ],
}
NESTED = (
    b'{"model": "bench-model", "messages": ['
    + b"[" * 1000
    + b"]" * 1000
    + b","
    + (b"[" * 500 + b"]" * 500 + b",") * 3600
    + b"1]}"
)


def cpu_ns(pid: int) -> int:
    """CPU nanoseconds of every thread of ``pid`` so far (``schedstat``): the clock-tick counters
    move in 10 ms steps, longer than a normal call and close to a hostile one."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _addr(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    return host, int(port)


class Client:
    """The well-behaved client: sequential normal calls on one keep-alive connection."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=base_url, headers=AUTH, timeout=30)
        self.latencies: list[float] = []

    def call(self) -> None:
        t0 = time.perf_counter()
        resp = self._http.post("/chat/completions", json=CHAT_BODY)
        self.latencies.append(time.perf_counter() - t0)
        resp.raise_for_status()

    def run_for(self, seconds: float) -> float:
        """p50 in ms of the calls made during ``seconds``."""
        self.latencies = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.call()
            time.sleep(0.005)  # a client paced like an agent, not a load generator
        return statistics.median(self.latencies) * 1000


PHONES_RAW, DISTINCT_RAW = orjson.dumps(PHONES), orjson.dumps(DISTINCT)  # encoded once: attackers send


def send_phones(base_url: str) -> None:
    httpx.post(base_url + "/chat/completions", content=PHONES_RAW, headers=AUTH, timeout=120)


def send_distinct(base_url: str) -> None:
    httpx.post(base_url + "/chat/completions", content=DISTINCT_RAW, headers=AUTH, timeout=120)


def prime_distinct(base_url: str) -> None:
    """Each of the ten messages alone (fits the budget): afterwards all ten are cache hits."""
    for message in DISTINCT["messages"]:
        resp = httpx.post(
            base_url + "/chat/completions",
            json={**DISTINCT, "messages": [message]},
            headers=AUTH,
            timeout=120,
        )
        resp.raise_for_status()


def send_nested(base_url: str) -> None:
    httpx.post(
        base_url + "/chat/completions",
        content=NESTED,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def send_nested_with_key(base_url: str) -> None:
    httpx.post(base_url + "/chat/completions", content=NESTED, headers=AUTH, timeout=60)


def send_big_header(base_url: str, size: int = 16 * 1024 * 1024) -> None:
    with contextlib.suppress(OSError), socket.create_connection(_addr(base_url), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        sock.recv(65536)


SHAPES: dict[str, Callable[[str], None]] = {
    "dense phones (key)": send_phones,
    "10 distinct, cached (key)": send_distinct,
    "3.7 MB nesting (no key)": send_nested,
    "3.7 MB nesting (key)": send_nested_with_key,
    "16 MB header": send_big_header,
}


def cpu_per_call(pid: int, send: Callable[[], None], n: int) -> float:
    """Median CPU seconds of the gateway per ``send`` (each measured alone)."""
    samples = []
    for _ in range(n):
        cpu0 = cpu_ns(pid)
        send()
        time.sleep(0.02)  # let the gateway finish what it was sent (drain, close)
        samples.append((cpu_ns(pid) - cpu0) / 1e9)
    return statistics.median(samples)


def _attacker(shape: str, url: str, stop: Any, count: Any) -> None:
    """One attacker process at idle priority: on the client's core it must not slow the
    well-behaved client down itself (the gateway's own core is what is measured)."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # runs only when core 1 is free
    if shape == "slowloris":
        _slowloris(url, 200, stop, count)
        return
    send = SHAPES[shape]
    while not stop.is_set():
        with contextlib.suppress(httpx.HTTPError, OSError):
            send(url)
        with count.get_lock():
            count.value += 1


@contextlib.contextmanager
def attacking(shape: str, url: str, processes: int) -> Iterator[Any]:
    """``processes`` attackers sending ``shape`` until the block ends; yields their count."""
    ctx = multiprocessing.get_context("spawn")
    stop, count = ctx.Event(), ctx.Value("i", 0)
    procs = [
        ctx.Process(target=_attacker, args=(shape, url, stop, count), daemon=True) for _ in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(1.0)  # the attackers are up (spawn imports this module) before anything is timed
    try:
        yield count
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _slowloris(url: str, conns: int, stop: Any, opened: Any) -> None:
    """``conns`` connections trickling a request's headers one byte a second, reopened when closed."""
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + BENCH_KEY.encode()

    def open_one() -> tuple[socket.socket, int]:
        with opened.get_lock():
            opened.value += 1
        return socket.create_connection(_addr(url), timeout=5), 0

    socks = [open_one() for _ in range(conns)]
    while not stop.wait(1.0):
        for i, (sock, pos) in enumerate(socks):
            try:
                sock.send(request[pos % len(request) : pos % len(request) + 1])
                socks[i] = (sock, pos + 1)
            except OSError:
                sock.close()
                with contextlib.suppress(OSError):
                    socks[i] = open_one()
    for sock, _ in socks:
        sock.close()


def header_rss(url: str, pid: int, conns: int = 10, size: int = 20 * 1024 * 1024) -> int:
    """Peak RSS growth while ``conns`` connections each send ``size`` bytes of unfinished headers."""
    base = rss_bytes(pid)
    peak = base
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            peak = max(peak, rss_bytes(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=send_big_header, args=(url, size), daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    time.sleep(0.2)
    stop.set()
    watcher.join()
    return peak - base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {1})
    config = {"redaction": {"enabled": True}}
    with fake_upstream() as upstream, gateway(upstream, config) as gw:
        client = Client(gw.url)
        for _ in range(50):  # warm-up
            client.call()
        normal_cpu = cpu_per_call(gw.pid, client.call, 200)
        idle_p50 = client.run_for(args.seconds)
        print(f"normal 300-byte call     cpu {normal_cpu * 1e3:8.3f} ms/call   idle p50 {idle_p50:7.2f} ms")
        prime_distinct(gw.url)
        for name, n in (
            ("dense phones (key)", 20),
            ("10 distinct, cached (key)", 20),
            ("3.7 MB nesting (no key)", 20),
            ("3.7 MB nesting (key)", 20),
            ("16 MB header", 10),
        ):
            cpu = cpu_per_call(gw.pid, lambda name=name: SHAPES[name](gw.url), n)
            # The idle p50 right before each attack: the machine's own load drifts.
            idle = client.run_for(args.seconds / 2)
            with attacking(name, gw.url, 2) as count:
                cpu0, t0 = cpu_ns(gw.pid), time.monotonic()
                p50 = client.run_for(args.seconds)
                busy = (cpu_ns(gw.pid) - cpu0) / 1e9 / (time.monotonic() - t0)
            print(
                f"{name:25s} cpu {cpu * 1e3:8.3f} ms/call = {cpu / normal_cpu:6.1f}x normal   "
                f"p50 under attack {p50:7.2f} ms = {p50 / idle:4.2f}x idle {idle:5.2f} ms  "
                f"({count.value} sent by 2, gateway busy {busy:.0%})"
            )
            sys.stdout.flush()
        with attacking("slowloris", gw.url, 1) as opened:
            cpu0 = cpu_ns(gw.pid)
            p50 = client.run_for(max(args.seconds, 12))  # past the 10 s header timeout
            spent = (cpu_ns(gw.pid) - cpu0) / 1e9 - len(client.latencies) * normal_cpu
        per_conn = max(spent, 0.0) / max(opened.value, 1)
        print(
            f"{'slow-loris x200':24s} cpu {per_conn * 1e3:8.3f} ms/conn = {per_conn / normal_cpu:6.1f}x normal   "
            f"p50 under attack {p50:7.2f} ms = {p50 / idle_p50:4.2f}x idle  ({opened.value} connections opened)"
        )
        growth = header_rss(gw.url, gw.pid)
        print(f"RSS growth, 10 x 20 MB unfinished headers: {growth / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
