"""A gateway with ``/mcp/{payments,crm}`` in front of a real MCP server (``mcp_server.py``), and
helpers to talk to it with the official ``mcp`` SDK client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.harness import TEST_KEY, gateway_settings, running_gateway
from tests.mcp.mcp_server import ToolServer


def mcp_yaml(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "servers": {
            "payments": {"url": url, "timeout_s": 5, **extra},
            "crm": {"url": url, "timeout_s": 5, "teams": ["test"]},
        }
    }


@pytest.fixture(scope="module")
def tool_server() -> Iterator[tuple[ToolServer, str]]:
    server = ToolServer()
    with server.running() as served:
        yield server, served.url + "/mcp"


def start_gateway(
    root: Path, mcp_doc: dict[str, Any], prepare: Callable[[Path], None] | None = None, **overrides: Any
) -> Any:
    """A gateway on a private copy of policies/ with ``mcp_doc`` as mcp.yaml (``prepare``: edit
    the copy before the gateway starts)."""
    settings = gateway_settings(root, "http://127.0.0.1:9", **overrides)
    (settings.policies_dir / "mcp.yaml").write_text(yaml.safe_dump(mcp_doc))
    if prepare is not None:
        prepare(settings.policies_dir)
    return running_gateway(settings)


@asynccontextmanager
async def mcp_client(
    url: str, key: str = TEST_KEY, mode: str = "legacy", headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    http = create_mcp_http_client(headers={"authorization": f"Bearer {key}", **(headers or {})})
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:  # type: ignore[arg-type]
            yield client
