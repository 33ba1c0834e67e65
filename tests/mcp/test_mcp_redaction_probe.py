"""An attacker's and a careless server's review of MCP redaction: every text the agent reads.

Driven with the official ``mcp`` SDK as client, against a real SDK server (its own, in this
file) that answers the way SDK servers really do:

* a tool returning a dict gets both a JSON text part and ``structuredContent`` (the SDK does
  this by itself): the structured copy must not carry what the text part had redacted, a
  number included, and the JSON text must still parse;
* a tool that logs while it runs (``ctx.info``) sends ``notifications/message`` on the
  request's SSE stream: the agent reads them, so they are redacted like the answer;
* a resource that fails answers a JSON-RPC *error* whose message quotes what it looked up;
* ``completion/complete`` suggests values from the server's data;
* tool arguments with a card or a secret written as a JSON number, or labelled only by its
  key (``{"password": "..."}``), reach the server redacted, as they would in a tool call the
  model writes on the chat path (where the arguments are one JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceTemplateReference

from gateway.http.launch import serve_app
from tests.harness import TEST_KEY
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway

pytestmark = pytest.mark.asyncio

EMAIL = "jane.roe@example.com"
PHONE = 4155552671
CARD = 4111111111111111
SECRET = "sk-proj-" + "Q9w8E7r6T5y4U3i2O1p0" * 2
PASSWORD = "Tr0ub4dor&3xyz"
#: More number-like candidates than the work budget judges (redaction.max_candidates), then a card.
_DENSE = " ".join(f"+{i % 90 + 1} {i % 900 + 100} {i % 9000 + 1000}" for i in range(8000)) + f" {CARD}"


class ProbeServer:
    """A CRM server whose answers carry PII the way SDK servers put it on the wire."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.mcp = self._build()

    def _build(self) -> MCPServer:
        mcp = MCPServer("wardgate-probe")

        @mcp.tool()
        def lookup_customer(customer_id: str) -> dict[str, Any]:
            """A customer record (structured output)."""
            self.seen.append(("lookup_customer", customer_id))
            return {"id": customer_id, "email": EMAIL, "phone": PHONE, "card": CARD}

        @mcp.tool()
        async def search_kb(query: str, ctx: Context) -> str:
            """Searches, logging what it found."""
            self.seen.append(("search_kb", query))
            await ctx.info(f"matched customer {EMAIL}, card {CARD}, key {SECRET}")
            return "1 article"

        @mcp.tool()
        def send_email(to: str, payload: dict[str, Any]) -> str:
            """Sends anything (records what it was sent)."""
            self.seen.append(("send_email", {"to": to, "payload": payload}))
            return "sent"

        @mcp.tool()
        def export_numbers() -> str:
            """More number-like candidates than the gateway's work budget judges, and a card."""
            self.seen.append(("export_numbers", None))
            return _DENSE

        @mcp.resource("kb://articles/{slug}")
        def article(slug: str) -> str:
            # An error the SDK relays as it is (a JSON-RPC error, not an error result).
            raise MCPError(-32002, f"no article {slug} for {EMAIL}", {"card": CARD, "owner": EMAIL})

        @mcp.completion()
        async def complete(ref: Any, argument: Any, context: Any) -> Any:
            from mcp.types import Completion

            self.seen.append(("complete", argument.value))
            return Completion(values=[EMAIL, f"{SECRET}"])

        return mcp


@pytest.fixture(scope="module")
def probe_server() -> Iterator[tuple[ProbeServer, str]]:
    server = ProbeServer()
    with serve_app(server.mcp.streamable_http_app()) as served:
        yield server, served.url + "/mcp"


def _policy(policies: Path) -> None:
    path = policies / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["mcp"] = {
        "servers": {
            "crm": {
                "tools": ["lookup_customer", "search_kb", "send_email", "export_numbers"],
                "resources": ["kb://*"],
            }
        }
    }
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="module")
def gateway(probe_server: tuple[ProbeServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = probe_server
    root = tmp_path_factory.mktemp("mcp-probe")
    overrides = {"limits": {"enabled": False}, "policy": {"watch": False}}
    with start_gateway(root, mcp_yaml(url), _policy, **overrides) as gw:
        yield gw


def _crm(gateway: Any) -> str:
    return f"{gateway.url}/mcp/crm"


def _raw(values: Any) -> list[str]:
    """The raw values found anywhere in ``values`` (as text: a number counts as its digits)."""
    text = json.dumps(values, default=str)
    return [v for v in (EMAIL, str(PHONE), str(CARD), SECRET, PASSWORD) if v in text]


async def test_structured_content_is_redacted_like_the_text_and_the_text_stays_json(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        result = await client.call_tool("lookup_customer", {"customer_id": "c-1"})
    assert not result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert _raw(text) == [], text
    parsed = json.loads(text)  # a number redacted inside JSON became a string placeholder
    assert parsed["id"] == "c-1" and parsed["card"].startswith("<CREDIT_CARD_")
    assert result.structured_content is not None
    assert _raw(result.structured_content) == [], result.structured_content
    assert result.structured_content["card"].startswith("<CREDIT_CARD_")


async def test_log_notifications_during_a_call_are_redacted(gateway: Any) -> None:
    logged: list[Any] = []

    async def on_log(params: Any) -> None:
        logged.append(params.data)

    http = create_mcp_http_client(headers={"authorization": f"Bearer {TEST_KEY}"})
    async with (
        http,
        Client(
            streamable_http_client(_crm(gateway), http_client=http),  # type: ignore[arg-type]
            mode="legacy",
            cache=None,
            logging_callback=on_log,
        ) as client,
    ):
        result = await client.call_tool("search_kb", {"query": "refunds"})
    assert not result.is_error
    assert logged, "the server's log message reaches the agent"
    assert _raw(logged) == [], logged


async def test_an_error_answer_is_redacted(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource("kb://articles/missing")
    error = failed.value.error
    assert "no article missing for <EMAIL_ADDRESS_" in error.message, error.message
    assert _raw([error.message, error.data]) == [], error


async def test_completion_suggestions_are_redacted(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        done = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri="kb://articles/{slug}"),
            {"name": "slug", "value": f"card {CARD}"},
        )
    assert _raw(done.completion.values) == [], done.completion.values


async def test_arguments_labelled_by_their_key_or_written_as_numbers_are_redacted(
    gateway: Any, probe_server: tuple[ProbeServer, str]
) -> None:
    server, _ = probe_server
    payload = {
        "card": CARD,
        "password": PASSWORD,
        "note": {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
    }
    async with mcp_client(_crm(gateway)) as client:
        result = await client.call_tool("send_email", {"to": "ops@example.org", "payload": payload})
    assert not result.is_error, result
    sent = [args for name, args in server.seen if name == "send_email"][-1]
    assert sent["to"] == "ops@example.org"  # the agent's own address reaches the tool
    assert _raw(sent) == [], sent
    assert "wJalrXUtnFEMI" not in json.dumps(sent)


def _raw_server() -> Any:
    """A server whose GET stream (its own messages, outside any request) logs a customer."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def listen(request: Request) -> StreamingResponse:
        async def events() -> Any:
            note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}}
            note["params"]["data"] = {"customer": EMAIL, "card": CARD}  # type: ignore[index]
            yield b"id: 1\ndata: " + json.dumps(note).encode() + b"\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/mcp", listen, methods=["GET"])])


async def test_notifications_on_the_get_stream_are_redacted(tmp_path: Path) -> None:
    import httpx

    with serve_app(_raw_server(), lifespan="off") as raw:
        doc = {"servers": {"crm": {"url": raw.url + "/mcp", "timeout_s": 5}}}
        overrides = {"limits": {"enabled": False}, "policy": {"watch": False}}
        with start_gateway(tmp_path, doc, _policy, **overrides) as gw:
            headers = {"authorization": f"Bearer {TEST_KEY}", "accept": "text/event-stream"}
            async with httpx.AsyncClient(timeout=10) as http:
                resp = await http.get(_crm(gw), headers=headers)
    assert resp.status_code == 200
    assert resp.text.startswith("id: 1\n"), resp.text  # the event's id line (resumability) is kept
    data = json.loads(resp.text.split("data: ", 1)[1])
    assert data["method"] == "notifications/message"
    assert _raw(data) == [], data
    assert data["params"]["data"]["customer"].startswith("<EMAIL_ADDRESS_")


async def test_arguments_past_the_value_budget_are_refused_not_sent_half_scanned(
    probe_server: tuple[ProbeServer, str], tmp_path: Path
) -> None:
    # Padding the arguments with values must not push a card past what is scanned: the call is
    # refused before it reaches the server (as a chat request past the budget is: 400).
    server, url = probe_server
    overrides = {
        "limits": {"enabled": False},
        "policy": {"watch": False},
        "redaction": {"max_request_values": 5},
    }
    payload = {"pad": [f"word {i}" for i in range(20)], "deep": {"card": str(CARD)}}
    before = len(server.seen)
    with start_gateway(tmp_path, mcp_yaml(url), _policy, **overrides) as gw:
        async with mcp_client(_crm(gw)) as client:
            refused = await client.call_tool("send_email", {"to": "ops@example.org", "payload": payload})
            small = await client.call_tool("send_email", {"to": "ops@example.org", "payload": {"n": "x"}})
    assert refused.is_error, refused
    text = " ".join(getattr(part, "text", "") for part in refused.content)
    assert "max_request_values" in text and str(CARD) not in text, text
    assert not small.is_error, small  # under the budget: sent as usual
    sent = [args for name, args in server.seen[before:] if name == "send_email"]
    assert sent == [{"to": "ops@example.org", "payload": {"n": "x"}}], sent


async def test_an_argument_too_large_to_scan_is_refused_cleanly(
    probe_server: tuple[ProbeServer, str], tmp_path: Path
) -> None:
    server, url = probe_server
    overrides = {"limits": {"enabled": False}, "policy": {"watch": False}}
    huge = _DENSE
    before = len(server.seen)
    with start_gateway(tmp_path, mcp_yaml(url), _policy, **overrides) as gw:
        async with mcp_client(_crm(gw)) as client:
            refused = await client.call_tool("search_kb", {"query": huge})
    assert refused.is_error, refused
    text = " ".join(getattr(part, "text", "") for part in refused.content)
    assert "Internal error" not in text and str(CARD) not in text, text
    assert [name for name, _ in server.seen[before:]] == [], server.seen[before:]


async def test_an_answer_past_the_work_budget_is_scanned_in_full(gateway: Any) -> None:
    # As on the chat path: the tool has acted, the answer's size is bounded by
    # mcp.max_response_bytes, so it is scanned whole and delivered (the card redacted), not refused.
    async with mcp_client(_crm(gateway)) as client:
        result = await client.call_tool("export_numbers", {})
    assert not result.is_error, result
    text = json.dumps(result.model_dump(mode="json"))
    assert str(CARD) not in text and "<CREDIT_CARD_" in text, text[-500:]


async def test_an_answer_text_longer_than_redaction_reads_is_withheld_cleanly(
    probe_server: tuple[ProbeServer, str], tmp_path: Path
) -> None:
    _, url = probe_server
    overrides = {
        "limits": {"enabled": False},
        "policy": {"watch": False},
        "redaction": {"max_text_chars": 1000},
    }
    with start_gateway(tmp_path, mcp_yaml(url), _policy, **overrides) as gw:
        async with mcp_client(_crm(gw)) as client:
            result = await client.call_tool("export_numbers", {})
    assert result.is_error, result
    text = json.dumps(result.model_dump(mode="json"))
    assert "withheld" in text and "max_text_chars" in text and str(CARD) not in text, text[:500]
