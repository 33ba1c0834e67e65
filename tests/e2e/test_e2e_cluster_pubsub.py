"""Redis Cluster: the change feeds survive the death of the seed node (issue 19).

Approvals and keys subscribe on the node of ``redis_url`` (the seed). When it dies, the
subscriber moves to another node the cluster named (``redisconn.Subscriber``): the approvals
feed is subscribed again (ready, a ``resync`` for its listeners) and a key revoked afterwards
reaches the follower. Three local nodes with ``cluster-require-full-coverage no`` (the two
left serve their slots), and a prefix whose hash tags live off the seed node, so only the
subscription is at stake.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.crc import key_slot

from gateway.approvals.redis_store import RedisApprovalStore
from gateway.keys.redis_backend import RedisKeys
from gateway.keys.store import KeyStore
from tests.e2e.redis_cluster import RedisCluster
from tests.harness import default_keys

SEED_SLOTS = range(0, 5461)  # redis-cli --cluster create gives the first node 0-5460 of 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    nodes = RedisCluster(tmp_path / "cluster", full_coverage=False).start()
    try:
        yield nodes
    finally:
        nodes.stop()


def _prefix_off_the_seed() -> str:
    while True:
        prefix = f"wgtest:sub{uuid.uuid4().hex[:8]}"
        tags = ("{" + prefix + ":apr}", "{" + prefix + ":keys}")
        if all(key_slot(tag.encode()) not in SEED_SLOTS for tag in tags):
            return prefix


async def _until(check: Any, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def test_feeds_move_to_another_node_when_the_seed_dies(cluster: RedisCluster, tmp_path: Path) -> None:
    prefix = _prefix_off_the_seed()
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump(default_keys()))

    heard: list[str] = []
    approvals = RedisApprovalStore.from_url(cluster.url, prefix, 60, mode="cluster")
    approvals.add_listener(lambda kind, _: heard.append(kind))
    follower = RedisKeys(KeyStore.load(keys_file), cluster.url, keys_file, prefix=prefix, mode="cluster")
    writer = RedisKeys(KeyStore.load(keys_file), cluster.url, keys_file, prefix=prefix, mode="cluster")
    try:
        await approvals.start()
        follower.start()
        await _until(lambda: approvals.not_ready() is None and follower.loaded, 20)
        assert "test" in {p.key_id for p in follower.store.principals()}
        assert await writer.reload()  # its cluster client learns the nodes while the seed is up

        cluster.procs[0].kill()  # the seed node both subscribed on
        cluster.procs[0].wait(timeout=10)
        await _until(lambda: approvals.not_ready() is not None or "resync" in heard, 20)
        await _until(lambda: approvals.not_ready() is None and "resync" in heard, 20)

        def revoke(doc: dict[str, Any]) -> None:
            for entry in doc["keys"]:
                if entry["id"] == "test":
                    entry["disabled"] = True

        await writer.edit(revoke)
        await _until(lambda: "test" not in {p.key_id for p in follower.store.principals()}, 10)
        assert await follower.ready() is None  # following again, from another node
    finally:
        await approvals.close()
        await follower.close()
        await writer.close()
