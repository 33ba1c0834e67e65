"""``opa``: a real OPA server over its REST Data API.

Hot path: ``POST {opa_url}/v1/data/<path>`` with ``{"input": …}`` on pooled keep-alive
connections for the app's lifespan, under a hard deadline (default 50 ms). Three clients can
send it (``policy.opa_client``):

- ``wire`` (default): the lean HTTP/1.1 client of ``opa_wire.py`` (plain ``http://``; an
  ``https://`` URL uses ``aiohttp``). Measured against a server that answers at once (load
  ~17 on 2 cores, so relative numbers only): ~95 µs of CPU per decision, against ~375 µs for
  ``aiohttp`` and ~640 µs for ``opa-python-client``; a call makes two decisions, and in the
  issue-19 cluster this was the largest single share of the CPU above the embedded engine;
- ``opa-python-client``: ``AsyncOpaClient.query_rule``, with its retries off (a retry cannot
  fit the deadline; failing closed is the caller's job);
- ``aiohttp``: a plain POST of the orjson-encoded input.

Measured earlier with ``bench/policy.py --opa-client`` on a quieter machine: the client
library ~315 µs of CPU per call, the plain POST ~240. ``AsyncOpaClient`` does the admin work
whichever client decides: pushing policies and data, health checks.

``load`` pushes the modules (policy ids ``wardgate/<path>``) and the data
(``PUT /v1/data/wardgate``) unless ``push`` is off (OPA fed by bundles). OPA evaluates each
query against one store transaction, so a call never sees half a push; the revision label
is the gateway's view of what it pushed last. An OPA that restarted empty answers
"undefined": that call fails closed, and the last pushed set is pushed again in the
background (at most every ``REPUSH_INTERVAL_S``).

OPA unreachable at start (the first push cannot connect) is an outage, not a refused policy
set: the revision, compiled and tested by the gateway, becomes active, ``health`` (``/readyz``)
fails naming OPA's address, every decision fails as ``unavailable`` (closed, unless
``fail_open`` applies), and the set is pushed again every 0.25-2 s until OPA takes it; then
the gateway is ready without a restart. A later reload OPA cannot take is refused as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from gateway.policy.engines.base import PolicyEngine, encode_input, sanitize, to_path
from gateway.policy.engines.opa_wire import WireClient
from gateway.policy.errors import PolicyCompileError, PolicyEvalError

log = logging.getLogger("wardgate.policy")

POLICY_ID_PREFIX = "wardgate/"
REPUSH_INTERVAL_S = 5.0
#: A push that failed for these reasons found no OPA (down, starting): retried, not refused.
_UNREACHABLE = (aiohttp.ClientConnectionError, OSError, TimeoutError)
_JSON = {"Content-Type": "application/json"}


def admin_client(url: str, timeout_s: float = 5.0, retries: int = 1) -> Any:
    """An ``AsyncOpaClient`` for ``url`` (used as an async context manager)."""
    from opa_client import AsyncOpaClient

    parts = urlsplit(url)
    return AsyncOpaClient(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (443 if parts.scheme == "https" else 8181),
        ssl=parts.scheme == "https",
        timeout=timeout_s,
        retries=retries,
    )


def _result(doc: Any, path: str) -> Any:
    """OPA answers ``{}`` (no ``result``) when the document is undefined."""
    if not isinstance(doc, dict) or "result" not in doc:
        raise PolicyEvalError(f"data.{to_path(path).replace('/', '.')} is undefined on OPA", kind="undefined")
    return doc["result"]


def _decoded(raw: bytes, status: int, path: str) -> Any:
    """The decision in a plain POST's answer (the ``aiohttp`` and ``wire`` clients)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PolicyEvalError(f"OPA answered {status} with a body that is not JSON") from exc
    if status != 200:
        message = doc.get("message") if isinstance(doc, dict) else None
        raise PolicyEvalError(f"OPA answered {status}: {message or raw[:200]!r}")
    return _result(doc, path)


async def push_policies(client: Any, modules: dict[str, str], data: dict[str, Any]) -> None:
    """Upload ``modules`` and ``data.wardgate`` to OPA; remove our modules it no longer has.

    Stale modules of ours go first, where OPA lets them: one may define rules at a path the
    new data now fills (a ``wardgate.derived`` package loaded from files and now served as
    data), and OPA refuses data that conflicts with a rule. A stale module that something
    still depends on is removed at the end instead. Then data (rules may read it), then
    modules; a module that fails only because a module it calls is not there yet is retried
    after the others, so upload order does not matter.
    """
    wardgate = data.get("wardgate", {})
    if not isinstance(wardgate, dict):
        raise PolicyCompileError("data.wardgate must be an object", engine="opa")
    stale = [
        pid
        for pid in await client.get_policies_list()
        if str(pid).startswith(POLICY_ID_PREFIX) and str(pid)[len(POLICY_ID_PREFIX) :] not in modules
    ]
    deferred: list[Any] = []
    for policy_id in stale:
        try:
            await client.delete_policy(policy_id)
        except Exception:  # still referenced by a module the new set replaces: after the push
            deferred.append(policy_id)
    await client.update_or_create_data(wardgate, "wardgate")
    pending = sorted(modules)
    last_error: Exception | None = None
    while pending:
        failed: list[str] = []
        for name in pending:
            try:
                await client.update_policy_from_string(
                    modules[name], POLICY_ID_PREFIX + name, rego_compat=False
                )
            except Exception as exc:  # the client raises its own error types per status
                failed.append(name)
                last_error = exc
        if len(failed) == len(pending):
            raise PolicyCompileError(
                f"OPA refused {failed[0]}: {last_error}", location=f"{failed[0]}:1", engine="opa"
            ) from last_error
        pending = failed
    for policy_id in deferred:
        await client.delete_policy(policy_id)


class OpaHttpSnapshot:
    __slots__ = ("_engine", "revision")

    def __init__(self, engine: OpaHttpEngine, revision: str) -> None:
        self.revision = revision
        self._engine = engine

    async def evaluate(self, path: str, input: Any) -> Any:
        return await self._engine.query(path, input)


class OpaHttpEngine(PolicyEngine):
    name = "opa"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.05,
        push: bool = True,
        pool_size: int = 64,
        client: str = "wire",
    ) -> None:
        super().__init__()
        if client not in ("opa-python-client", "aiohttp", "wire"):
            raise ValueError(f"unknown OPA client {client!r}")
        self.url = url.rstrip("/")
        self.client = client
        self._timeout_s = timeout_s
        self._push = push
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        if client == "wire" and not self.url.startswith("http://"):
            self.client = "aiohttp"  # the wire client speaks plain HTTP only; TLS goes through aiohttp
        self._wire = WireClient(self.url, pool_size) if self.client == "wire" else None
        self._opa_client: Any = None
        self._pushed: tuple[dict[str, str], dict[str, Any]] | None = None
        self._repush: asyncio.Task[None] | None = None
        self._last_repush = 0.0
        #: Why the start's push has not reached OPA yet (``None``: pushed, or nothing to push).
        self.unpushed: str | None = None
        self._pushing: asyncio.Task[None] | None = None

    async def _hot_client(self) -> Any:
        """The ``AsyncOpaClient`` of the hot path: one session, no retries, the deadline's timeout."""
        client = self._opa_client
        if client is None:
            client = admin_client(self.url, timeout_s=self._timeout_s, retries=0)
            await client.__aenter__()
            self._opa_client = client
        return client

    def _client_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, keepalive_timeout=30, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
            self._session = session
        return session

    async def query(self, path: str, input: Any) -> Any:
        try:
            if self._wire is not None:
                return await self._query_wire(path, input)
            if self.client == "aiohttp":
                return await self._query_plain(path, input)
            return await self._query_client(path, input)
        except PolicyEvalError as exc:
            if exc.kind == "undefined":
                self._schedule_repush()
            raise

    def _schedule_repush(self) -> None:
        if self._pushed is None or (self._repush is not None and not self._repush.done()):
            return
        now = time.monotonic()
        if now - self._last_repush < REPUSH_INTERVAL_S:
            return
        self._last_repush = now
        self._repush = asyncio.create_task(self._push_again(*self._pushed), name="wardgate-opa-repush")

    async def _push_again(self, modules: dict[str, str], data: dict[str, Any]) -> None:
        try:
            async with admin_client(self.url) as client:
                await push_policies(client, modules, data)
        except Exception:  # logged; the next undefined decision tries again
            log.exception("OPA at %s lost the policies; pushing them again failed", self.url)
            return
        log.warning(
            "OPA at %s had lost the policies (restarted?); revision %s pushed again", self.url, self.revision
        )

    async def _query_client(self, path: str, input: Any) -> Any:
        package, _, rule = to_path(path).rpartition("/")
        try:
            async with asyncio.timeout(self._timeout_s):
                client = await self._hot_client()
                try:
                    doc = await client.query_rule(input, package, rule)
                except TypeError:  # not JSON-encodable by the stdlib: odd strings or types
                    doc = await client.query_rule(sanitize(input), package, rule)
        except TimeoutError as exc:
            raise PolicyEvalError(
                f"OPA gave no decision within {self._timeout_s * 1000:.0f} ms", "timeout"
            ) from exc
        except aiohttp.ClientResponseError as exc:
            raise PolicyEvalError(f"OPA answered {exc.status}: {exc.message}") from exc
        except aiohttp.ClientError as exc:
            raise PolicyEvalError(f"OPA unreachable at {self.url}: {exc}", "unavailable") from exc
        except ValueError as exc:  # a body that is not JSON
            raise PolicyEvalError(f"OPA answered with a body that is not JSON: {exc}") from exc
        return _result(doc, path)

    async def _query_plain(self, path: str, input: Any) -> Any:
        url = f"{self.url}/v1/data/{to_path(path)}"
        body = b'{"input":' + encode_input(input) + b"}"
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client_session().post(url, data=body, headers=_JSON) as resp:
                    raw = await resp.read()
                    status = resp.status
        except TimeoutError as exc:
            raise PolicyEvalError(
                f"OPA gave no decision within {self._timeout_s * 1000:.0f} ms", "timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise PolicyEvalError(f"OPA unreachable at {self.url}: {exc}", "unavailable") from exc
        return _decoded(raw, status, path)

    async def _query_wire(self, path: str, input: Any) -> Any:
        assert self._wire is not None
        body = b'{"input":' + encode_input(input) + b"}"
        try:
            async with asyncio.timeout(self._timeout_s):
                status, raw = await self._wire.post(f"/v1/data/{to_path(path)}", body)
        except TimeoutError as exc:
            raise PolicyEvalError(
                f"OPA gave no decision within {self._timeout_s * 1000:.0f} ms", "timeout"
            ) from exc
        except OSError as exc:  # refused, reset, or an answer that is not HTTP (WireError)
            raise PolicyEvalError(f"OPA unreachable at {self.url}: {exc}", "unavailable") from exc
        return _decoded(raw, status, path)

    async def _prepare(self, modules: dict[str, str], data: dict[str, Any], revision: str) -> OpaHttpSnapshot:
        if self._push:
            try:
                async with admin_client(self.url) as client:
                    await push_policies(client, modules, data)
            except PolicyCompileError:
                raise
            except _UNREACHABLE as exc:
                if self._active is not None:  # a reload: refuse it, the last revision stays
                    raise PolicyCompileError(
                        f"could not push policies to OPA at {self.url}: {exc}", engine="opa"
                    ) from exc
                self._push_later(modules, data, exc)  # the start: an outage, pushed when OPA is back
                return OpaHttpSnapshot(self, revision)
            except Exception as exc:  # auth, a refusal, ...: refuse the revision, keep the last
                raise PolicyCompileError(
                    f"could not push policies to OPA at {self.url}: {exc}", engine="opa"
                ) from exc
            self._pushed = (modules, data)
            self._stop_pushing()
        return OpaHttpSnapshot(self, revision)

    def _push_later(self, modules: dict[str, str], data: dict[str, Any], exc: BaseException) -> None:
        self._pushed = (modules, data)
        self.unpushed = f"OPA unreachable at {self.url}: {type(exc).__name__}: {exc}"
        log.warning("%s; the policies are pushed when it answers", self.unpushed)
        self._pushing = asyncio.create_task(self._push_until_taken(), name="wardgate-opa-push")

    async def _push_until_taken(self) -> None:
        delay = 0.25
        while self._pushed is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                async with admin_client(self.url) as client:
                    await push_policies(client, *self._pushed)
            except Exception as exc:  # still down (or refusing): keep trying, /readyz says why
                self.unpushed = f"OPA unreachable at {self.url}: {type(exc).__name__}: {exc}"
                continue
            self.unpushed = None
            log.warning("OPA at %s answers; revision %s pushed", self.url, self.revision)
            return

    def _stop_pushing(self) -> None:
        self.unpushed = None
        if self._pushing is not None:
            self._pushing.cancel()
            self._pushing = None

    async def health(self) -> None:
        self.snapshot()
        if self.unpushed is not None:
            raise PolicyEvalError(self.unpushed, "unavailable")
        # 2 s, /readyz's bound per check: at 1 s a replica busy with a burst (the other one
        # drained) failed its probe while its decisions still succeeded, and the load
        # balancer took out every replica at once (seen in tests/e2e's rolling restart).
        if self._wire is not None:  # a pooled connection, not a new session per probe
            try:
                async with asyncio.timeout(2.0):
                    status, _ = await self._wire.get("/health")
            except (OSError, TimeoutError) as exc:
                raise PolicyEvalError(f"OPA at {self.url} is not healthy: {exc}", "unavailable") from exc
            if status != 200:
                raise PolicyEvalError(f"OPA at {self.url} is not healthy ({status})", "unavailable")
            return
        async with admin_client(self.url, timeout_s=2.0) as client:
            if not await client.check_health():
                raise PolicyEvalError(f"OPA at {self.url} is not healthy", "unavailable")

    async def close(self) -> None:
        await super().close()
        if self._pushing is not None:
            self._pushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pushing
            self._pushing = None
        if self._repush is not None:
            self._repush.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repush
        if self._wire is not None:
            self._wire.close()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        if self._opa_client is not None:
            await self._opa_client.__aexit__(None, None, None)
            self._opa_client = None
