"""Settings for the policy engine (see gateway/policy/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PolicySettings(BaseModel):
    enabled: bool = True
    engine: Literal["regorus", "opa", "opa-lib"] = "regorus"
    opa_url: str = "http://127.0.0.1:8181"
    #: Hard limit on one decision from the ``opa`` server; past it the call fails closed.
    timeout_ms: float = 50.0
    #: Upload rego/ and the data to the ``opa`` server on start and reload (off when OPA
    #: gets bundles from elsewhere).
    opa_push: bool = True
    opa_pool_size: int = 64
    #: What sends the hot-path query: the lean keep-alive client (``wire``, plain http:// only;
    #: https:// falls back to aiohttp), opa-python-client's AsyncOpaClient, or a plain aiohttp
    #: POST of the orjson-encoded input (measured in bench/policy.py; see engines/opa_http.py).
    opa_client: Literal["wire", "opa-python-client", "aiohttp"] = "wire"
    #: Allow the call when the engine cannot decide (default: deny with 503).
    fail_open: bool = False
    #: Endpoints ("chat.completions", "responses", "embeddings", "mcp") that fail open even when
    #: ``fail_open`` is false (e.g. embeddings for a search index).
    fail_open_endpoints: list[str] = Field(default_factory=list)
    #: Watch rego/ and policies/ and reload on change.
    watch: bool = True
    #: Debounce of the file watcher: one reload per burst of edits.
    watch_debounce_ms: int = 300
    #: A new set must pass its own *_test.rego (under regorus and opa-lib) to become active.
    test_on_reload: bool = True
    #: regorus: run the decisions on its compiled VM (Program/Rvm, ~3x faster than its
    #: interpreter). OFF: in gordon-to-regorus 0.13 the VM does not fail a rule body when an
    #: assignment's value is undefined (``r := data.map[missing]`` goes on with "<undefined>"),
    #: so it gives wrong decisions for common Rego; tests/policy pins that bug.
    regorus_vm: bool = False
    #: Embedded engines evaluate inputs up to this size inline on the event loop, larger ones
    #: in a worker thread under ``embedded_timeout_ms``.
    inline_max_bytes: int = 64 * 1024
    embedded_timeout_ms: float = 5000.0
    #: Hold a stream's text too until the response decision (tool calls are always held).
    #: A request-phase decision can ask for it per call with ``tags: {"hold_stream": true}``.
    stream_hold_text: bool = False
    request_path: str = "wardgate/request/decision"
    response_path: str = "wardgate/response/decision"
    #: The MCP gateway's phase (gateway/mcp): every tools/list, tools/call, its result,
    #: resources/read and prompts/get relayed to an MCP server.
    mcp_path: str = "wardgate/mcp/decision"
