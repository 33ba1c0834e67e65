"""A small OPA-REST-compatible server over the real OPA engine (``opa-lib``), for tests.

There is no OPA binary on these machines; this serves the part of OPA's REST API the
gateway and ``opa-python-client`` use, evaluated by the real OPA Go engine:

    POST/GET /v1/data/<path>      {"input": …} → {"result": …} ({} when undefined)
    PUT      /v1/data/<path>      replace the document at <path> (204)
    PUT      /v1/policies/<id>    add/replace a module; 400 with OPA's errors if the set
                                  no longer compiles (the old set stays)
    GET      /v1/policies[/<id>]  list / get modules;  DELETE /v1/policies/<id>
    GET      /health              200 {}

In a test: ``with OpaServer() as server: server.url`` (runs in its own thread and loop).
From a shell: ``python tests/opa_server.py --port 8181 [--rego rego --policies policies]``.
``delay_s`` slows every decision down (to test timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from opa_bindings import OpaEngine, OpaError, OpaUndefinedError


class _Store:
    """Modules and data; every change builds and compiles a fresh engine, then swaps it in."""

    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.engine = self._build(self.policies, self.data)
        self.lock = threading.Lock()

    @staticmethod
    def _build(policies: dict[str, str], data: dict[str, Any]) -> OpaEngine:
        engine = OpaEngine()
        engine.add_data(data)
        for pid in sorted(policies):
            engine.add_policy(pid, policies[pid])
        engine.eval_query("true")  # OPA compiles lazily; force it so errors surface now
        return engine

    def put_policy(self, pid: str, text: str) -> None:
        with self.lock:
            policies = {**self.policies, pid: text}
            self.engine = self._build(policies, self.data)
            self.policies = policies

    def delete_policy(self, pid: str) -> bool:
        with self.lock:
            if pid not in self.policies:
                return False
            policies = {k: v for k, v in self.policies.items() if k != pid}
            self.engine = self._build(policies, self.data)
            self.policies = policies
            return True

    def put_data(self, path: list[str], value: Any) -> None:
        with self.lock:
            data = json.loads(json.dumps(self.data))
            if not path:
                if not isinstance(value, dict):
                    raise OpaError("invalid_parameter", "the root document must be an object")
                data = value
            else:
                node = data
                for part in path[:-1]:
                    child = node.get(part)
                    if not isinstance(child, dict):
                        child = node[part] = {}
                    node = child
                node[path[-1]] = value
            self.engine = self._build(self.policies, data)
            self.data = data


_SURROGATES = re.compile("[\ud800-\udfff]")


def _go_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_go_strings(k): _go_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_strings(v) for v in value]
    return value


def _error(status: int, code: str, message: str, errors: list[Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status)


class OpaServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.delay_s = 0.0
        self.requests = 0
        self.store = _Store()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_route("POST", "/v1/data{path:(/.*)?}", self._eval)
        app.router.add_route("GET", "/v1/data{path:(/.*)?}", self._eval)
        app.router.add_route("PUT", "/v1/data{path:(/.*)?}", self._put_data)
        app.router.add_get("/v1/policies", self._list_policies)
        app.router.add_get("/v1/policies/", self._list_policies)
        app.router.add_get("/v1/policies/{id:.+}", self._get_policy)
        app.router.add_put("/v1/policies/{id:.+}", self._put_policy)
        app.router.add_delete("/v1/policies/{id:.+}", self._delete_policy)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _eval(self, request: web.Request) -> web.Response:
        self.requests += 1
        path = request.match_info["path"].strip("/").replace("/", ".")
        doc: dict[str, Any] = {}
        if request.method == "POST" and request.can_read_body:
            try:
                doc = await request.json(loads=json.loads)
            except ValueError as exc:
                return _error(400, "invalid_parameter", f"body is not JSON: {exc}")
            if not isinstance(doc, dict):
                return _error(400, "invalid_parameter", "body must be an object")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        try:
            try:
                value = self.store.engine.eval_document(path, doc.get("input"))
            except OpaError as exc:
                if exc.code != "invalid_argument":
                    raise
                # Lone surrogate escapes: Go's JSON decoder (real OPA) turns them into U+FFFD.
                value = self.store.engine.eval_document(path, _go_strings(doc.get("input")))
        except OpaUndefinedError:
            return web.json_response({})
        except OpaError as exc:
            return _error(500, "internal_error", f"{exc.code}: {exc.message}")
        return web.json_response({"result": value})

    async def _put_data(self, request: web.Request) -> web.Response:
        path = [p for p in request.match_info["path"].split("/") if p]
        try:
            value = await request.json(loads=json.loads)
            self.store.put_data(path, value)
        except ValueError as exc:
            return _error(400, "invalid_parameter", f"body is not JSON: {exc}")
        except OpaError as exc:
            return _error(400, "invalid_parameter", exc.message)
        return web.Response(status=204)

    async def _list_policies(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"result": [{"id": k, "raw": v} for k, v in sorted(self.store.policies.items())]}
        )

    async def _get_policy(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        if pid not in self.store.policies:
            return _error(404, "resource_not_found", f"storage_not_found_error: policy id {pid!r}")
        return web.json_response({"result": {"id": pid, "raw": self.store.policies[pid]}})

    async def _put_policy(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        text = await request.text()
        try:
            self.store.put_policy(pid, text)
        except OpaError as exc:
            return _error(
                400,
                "invalid_parameter",
                "error(s) occurred while compiling module(s)",
                [{"code": exc.code, "message": exc.message}],
            )
        return web.json_response({})

    async def _delete_policy(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        if not self.store.delete_policy(pid):
            return _error(404, "resource_not_found", f"storage_not_found_error: policy id {pid!r}")
        return web.json_response({})

    # -- running in a thread ------------------------------------------------------------------

    def start(self) -> OpaServer:
        self._thread = threading.Thread(target=self._run, name="opa-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("OPA test server did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError(f"OPA test server failed to start: {self._startup_error}")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() through _startup_error
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> OpaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def load_dirs(self, rego: Path, policies: Path) -> str:
        """Load rego/ (modules, tests included) and policies/ as the gateway would push them."""
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from gateway.policy.source import load_policy_set

        policy_set = load_policy_set(rego, policies)
        self.store.put_data([], dict(policy_set.data))
        # As the gateway's push does: a module that calls one not loaded yet (mcp.rego uses
        # response.rego's functions) is refused until that one is there, so retry the refused
        # ones until a round loads none.
        pending = sorted(policy_set.modules)
        while pending:
            failed: list[str] = []
            for name in pending:
                try:
                    self.store.put_policy("wardgate/" + name, policy_set.modules[name])
                except Exception:
                    failed.append(name)
            if len(failed) == len(pending):
                self.store.put_policy("wardgate/" + failed[0], policy_set.modules[failed[0]])
            pending = failed
        return policy_set.revision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--rego", type=Path, help="preload the modules of this directory")
    parser.add_argument("--policies", type=Path, default=Path("policies"), help="data directory for --rego")
    args = parser.parse_args()
    server = OpaServer(args.host, args.port)
    if args.rego:
        revision = server.load_dirs(args.rego, args.policies)
        print(f"loaded revision {revision} from {args.rego} and {args.policies}", flush=True)
    server.start()
    print(f"OPA-compatible server on {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
