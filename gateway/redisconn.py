"""redis-py clients for the shared stores (limits, approvals, keys): one Redis, or a Cluster.

Each store's section says ``redis_mode: standalone | cluster`` beside its ``redis_url``. The
stores' key layouts are cluster-shaped either way: every key one script or transaction
touches shares a hash tag (limits ``<p>:{<team>}:…``, approvals ``{<p>:apr}:…``, keys
``{<p>:keys}:…``), so a command never spans two slots (no ``CROSSSLOT``).

- ``client``: the command client. Standalone: one pool (blocking or not); cluster: redis-py's
  ``RedisCluster`` from the URL as its seed node (it learns the others from ``CLUSTER SLOTS``).
- ``Subscriber``: a plain client to one node, for pub/sub. Classic ``PUBLISH`` (also from a Lua
  script) reaches the subscribers of every node of a cluster, so one connection to any node
  hears every message, whichever node the writer's slot lives on. It starts on the URL's node;
  on a cluster it learns every node (``CLUSTER SLOTS``) once subscribed, and after a failure
  the store's next attempt goes to the next node, so a dead seed node does not silence the
  change feed (the stores re-read their state after re-subscribing: nothing is missed).

The settings' side of an address (``RedisMode``, ``check_url``, ``where``) is
``gateway.redisurl``, which imports no redis-py: every process builds the settings.

redis-py's own retries stay off (``Retry(NoBackoff(), 0)``): a store fails fast and its
caller decides (fail closed, ``on_store_error``, a follower that retries on its own).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry  # the asyncio one: the sync Retry warns on every start
from redis.backoff import NoBackoff

from gateway.redisurl import where

#: What a store's client is: one server's client, or a cluster's (same command API).
AnyRedis = aioredis.Redis | RedisCluster


def client(
    url: str,
    mode: str,
    *,
    timeout_s: float | None = None,
    decode_responses: bool = False,
    max_connections: int = 64,
    blocking_timeout_s: float | None = None,
) -> AnyRedis:
    """The command client of a store (see the module docstring).

    ``blocking_timeout_s``: standalone only, callers wait up to this long for a free pooled
    connection instead of failing with ``MaxConnectionsError`` (a burst of held approvals).
    """
    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": decode_responses,
        "retry": Retry(NoBackoff(), 0),
    }
    if mode == "cluster":
        return RedisCluster.from_url(url, max_connections=max_connections, **common)
    if blocking_timeout_s is not None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=blocking_timeout_s, **common
        )
        return aioredis.Redis(connection_pool=pool)
    return aioredis.Redis.from_url(url, max_connections=max_connections, **common)


class Subscriber:
    """The pub/sub client of a store: one node, the next one after a failure (see above)."""

    def __init__(
        self,
        url: str,
        mode: str = "standalone",
        *,
        timeout_s: float | None = None,
        decode_responses: bool = False,
    ) -> None:
        self._mode = mode
        self._options: dict[str, Any] = {
            "socket_connect_timeout": timeout_s,
            "decode_responses": decode_responses,
            "retry": Retry(NoBackoff(), 0),
        }
        self._nodes = [url]
        self._at = 0
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, **self._options)

    @property
    def where(self) -> str:
        """``host:port`` of the node subscribed to (or tried next)."""
        return where(self._nodes[self._at])

    def pubsub(self, **options: Any) -> Any:
        return self.client.pubsub(**options)

    async def subscribed(self) -> None:
        """On a cluster, learn every node from the one that answered (for ``failed``)."""
        if self._mode != "cluster":
            return
        try:
            slots = await self.client.execute_command("CLUSTER", "SLOTS")
        except (OSError, ValueError, aioredis.RedisError):
            return  # the list learned before stays; the subscription itself is fine
        current = self._nodes[self._at]
        nodes = [current]
        for entry in slots:
            for node in entry[2:]:
                host, port = node[0], node[1]
                host = host.decode() if isinstance(host, bytes) else str(host)
                url = _node_url(current, host or LOCAL_HOST, int(port))
                if url not in nodes:
                    nodes.append(url)
        self._nodes, self._at = nodes, 0

    async def failed(self) -> None:
        """The subscription failed: the next attempt goes to the next known node."""
        if len(self._nodes) < 2:
            return
        await self.client.aclose()
        self._at = (self._at + 1) % len(self._nodes)
        self.client = aioredis.Redis.from_url(self._nodes[self._at], **self._options)

    async def aclose(self) -> None:
        await self.client.aclose()


LOCAL_HOST = "127.0.0.1"


def _node_url(url: str, host: str, port: int) -> str:
    """``url`` (scheme, credentials, query kept) pointed at another node."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def subscriber(
    url: str, mode: str = "standalone", *, timeout_s: float | None = None, decode_responses: bool = False
) -> Subscriber:
    """The pub/sub client of a store (``Subscriber``)."""
    return Subscriber(url, mode, timeout_s=timeout_s, decode_responses=decode_responses)
