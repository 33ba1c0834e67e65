"""The same topology on a Redis Cluster: limits, approvals and keys on three local masters.

Proves the hash-tag design: every limits key of one team shares one slot (the budget race's
scripts never meet ``CROSSSLOT``), every approvals key shares ``{<prefix>:apr}``, every keys
key ``{<prefix>:keys}``; the scenarios pass unchanged. One worker per replica here (the
two-worker behaviour is the other module's): two replicas are what sharing needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from tests.e2e import scenarios
from tests.e2e.redis_cluster import RedisCluster
from tests.e2e.topology import Topology

#: The module's cluster and topology start in the first test's setup.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    nodes = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture(scope="module")
def topology(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any, cluster: RedisCluster, postgres_dsn: str
) -> Iterator[Topology]:
    topo = Topology(
        tmp_path_factory.mktemp("e2e-cluster"),
        fake_upstream.base_url,
        redis_url=cluster.url,
        redis_mode="cluster",
        postgres_dsn=postgres_dsn,
        keys_backend="redis",
        workers=1,
    )
    topo.start()
    try:
        yield topo
    finally:
        topo.stop()


def test_budget_race_on_a_cluster_never_overspends(topology: Topology, upstream: Any) -> None:
    scenarios.budget_race(topology, upstream)


def test_an_approval_on_a_cluster_is_decided_on_the_other_replica(topology: Topology, upstream: Any) -> None:
    scenarios.approval_across_replicas(topology, upstream)


def test_a_key_revoked_on_a_cluster_is_refused_everywhere_within_1s(topology: Topology) -> None:
    scenarios.revocation_everywhere(topology)


def test_each_guards_keys_share_one_slot(topology: Topology, cluster: RedisCluster) -> None:
    """The layout the scenarios relied on: one slot per team (limits), one for approvals, one
    for keys; and the three masters really do hold different slots."""
    keys = cluster.keys(topology.prefix + "*") + cluster.keys("{" + topology.prefix + "*")
    race = [k for k in keys if k.startswith(f"{topology.prefix}:{{race}}:")]
    approvals = [k for k in keys if k.startswith("{" + topology.prefix + ":apr}:")]
    shared_keys = [k for k in keys if k.startswith("{" + topology.prefix + ":keys}:")]
    assert len(race) >= 3 and approvals and len(shared_keys) >= 2, keys
    for group in (race, approvals, shared_keys):
        assert len({key_slot(k.encode()) for k in group}) == 1, group
    teams = {k.split("{", 1)[1].split("}", 1)[0] for k in keys if k.startswith(topology.prefix + ":{")}
    assert {"race", "test"} <= teams, teams
