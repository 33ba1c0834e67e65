"""The production topology end to end: two ``wardgate serve --workers 2`` replicas behind a real
HAProxy, limits/approvals on Redis, keys and audit on PostgreSQL, policies on an OPA server.

Started once for the module (``tests/e2e/topology.py``); the scenarios run in file order
(the rolling restart before the audit check, so a closed chain and its successor are
verified too).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.policy.source import load_policy_set
from tests.e2e import scenarios
from tests.e2e.topology import Topology, cli_env
from tests.harness import REPO, TEST_KEY
from tests.waiting import wait_until

#: The module's topology starts in the first test's setup (~15 s on a quiet 2-core machine,
#: minutes on one shared by a dozen test runs); the rolling restart starts a replica again.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any, redis_url: str, postgres_dsn: str
) -> Iterator[Topology]:
    topo = Topology(
        tmp_path_factory.mktemp("e2e"),
        fake_upstream.base_url,
        redis_url=redis_url,
        postgres_dsn=postgres_dsn,
        keys_backend="postgres",
    )
    topo.start()
    try:
        yield topo
    finally:
        topo.stop()


def test_budget_race_through_the_load_balancer_never_overspends(topology: Topology, upstream: Any) -> None:
    scenarios.budget_race(topology, upstream)


def test_an_approval_held_on_one_replica_is_decided_on_the_other_and_resumes(
    topology: Topology, upstream: Any
) -> None:
    scenarios.approval_across_replicas(topology, upstream)


def test_an_answer_stored_on_one_replica_is_redeemed_on_the_other(topology: Topology, upstream: Any) -> None:
    scenarios.approval_answer_across_replicas(topology, upstream)


def test_a_key_revoked_on_one_replica_is_refused_everywhere_within_1s(topology: Topology) -> None:
    scenarios.revocation_everywhere(topology)


def _revision(url: str) -> str | None:
    resp = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "mock-chat", "messages": [{"role": "user", "content": "hello"}]},
        headers={"authorization": f"Bearer {TEST_KEY}", "connection": "close"},
        timeout=60,
    )
    assert resp.status_code == 200, f"{resp.status_code} {resp.headers.get('x-e2e-server')}: {resp.text}"
    return resp.headers.get("x-wardgate-policy-revision")


def test_a_policy_change_reaches_every_worker_of_every_replica(topology: Topology) -> None:
    targets = [topology.url, *(p.url for p in topology.replicas.values())] * 3
    before = load_policy_set(topology.rego, topology.policies).revision
    assert {_revision(u) for u in targets} == {before}
    lib = topology.rego / "lib.rego"
    lib.write_text(lib.read_text() + f"\n# e2e push {time.time_ns()}\n")
    after = load_policy_set(topology.rego, topology.policies).revision
    assert after != before
    wait_until(
        lambda: {_revision(u) for u in targets} == {after},
        within=30,
        interval=0.1,
        message="a worker never took the new revision",
    )
    pushed = topology.opa.policy("wardgate/rego/lib.rego")
    assert "# e2e push" in pushed  # the OPA server evaluates what the header names


def test_a_rolling_restart_under_load_fails_no_request(topology: Topology) -> None:
    failures: list[str] = []
    served: Counter[str] = Counter()
    after_restart: Counter[str] = Counter()
    stop = threading.Event()
    restarted = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:  # keep-alive to HAProxy, as real clients do
            while not stop.is_set():
                try:
                    resp = client.post(
                        topology.base_url + "/chat/completions",
                        json={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {TEST_KEY}"},
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code} {resp.text[:200]}")
                    if len(failures) <= 2:  # why: what each replica's readiness said then
                        for name, proc in list(topology.replicas.items()):
                            with contextlib.suppress(httpx.HTTPError):
                                ready = httpx.get(proc.url + "/readyz", timeout=5).text[:400]
                                failures.append(f"  readyz {name}: {ready}")
                server = resp.headers.get("x-e2e-server", "?")
                (after_restart if restarted.is_set() else served)[server] += 1

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sum(served.values()) >= 20, within=30, message="no load went through")
        victim = topology.names[0]
        topology.restart(victim)
        assert topology.lb is not None
        topology.lb.wait_state(victim, up=True, within=240)
        restarted.set()
        wait_until(
            lambda: after_restart[victim] >= 10, within=30, message="the restarted replica got no load"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    readiness = [f for f in failures if "readyz" in f][:4]
    total = sum(served.values()) + sum(after_restart.values())
    assert not failures, f"{len(failures)} failed of {total}: {readiness + failures[:3]}"
    assert set(served) == set(topology.names), served


def _samples(text: str, name: str) -> list[float]:
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if re.match(rf"{name}(\{{| )", line)]


def test_metrics_of_a_replica_sum_its_workers(topology: Topology) -> None:
    replica = topology.replicas[topology.names[1]]
    prom = topology.root / f"prom-{topology.names[1]}"

    def total() -> float:
        return sum(_samples(httpx.get(replica.url + "/metrics", timeout=10).text, "wardgate_requests_total"))

    def settled() -> list[float]:
        # A worker writes its metric changes in one batch shortly after the first one
        # (gateway/observability/buffered.py), and a scrape flushes only the worker that
        # serves it: wait until the earlier tests' changes have all reached the files.
        first = total()
        time.sleep(0.5)
        return [first] if total() == first else []

    [before] = wait_until(settled, within=10, message="the replica's request count never settled")
    for _ in range(12):  # fresh connections: both workers take some
        assert _revision(replica.url) is not None
    wait_until(lambda: total() - before == 12, within=10, message=f"{total() - before} counted, not 12")
    counters = {p.stem.rsplit("_", 1)[1] for p in prom.glob("counter_*.db")}
    assert len(counters) >= topology.workers, counters  # one file per worker: the scrape summed them


def test_every_replicas_audit_chain_verifies(topology: Topology) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", "--json"],
        env=cli_env(topology.audit_config()),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout)
    text = json.dumps(report)
    for name in topology.names:
        assert f"replica-{name}" in text, f"no chain of replica {name}: {text[:2000]}"


def test_readyz_names_every_shared_dependency(topology: Topology) -> None:
    body = httpx.get(topology.url + "/readyz", timeout=10).json()
    assert body["status"] == "ready", body
    assert {"limits", "approvals", "keys"} <= set(body["checks"]), body


def test_no_replica_prints_a_python_warning(topology: Topology) -> None:
    """Every start used to print redis-py's ``Retry`` UserWarning: noise an operator learns to
    ignore, so a real warning would be missed. Each replica's output (both workers, Redis, PostgreSQL
    and OPA clients, the rolling restart's new process too) carries none."""
    for name, replica in topology.replicas.items():
        found = re.findall(r"^.*\b[A-Z]\w*Warning: .*$", replica.logs(), re.M)
        assert not found, f"replica {name}: {found[:5]}"
