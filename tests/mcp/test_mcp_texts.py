"""The texts a model reads besides a tool's answer, planted with PII and secrets by a hostile
server (``planted_server.py``, the official SDK's server), read with the official SDK client
through ``/mcp/crm``: the handshake, every listing, resource blobs, prompt messages, a tool
announced later (list_changed), pagination cursors and ``_meta``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from gateway.http.launch import serve_app
from tests.harness import TEST_KEY
from tests.mcp.conftest import mcp_client, start_gateway
from tests.mcp.planted_server import CARD, EMAIL, MARKER, PNG, SECRET, PlantedServer

pytestmark = pytest.mark.asyncio

OVERRIDES = {"limits": {"enabled": False}, "policy": {"watch": False}}


def _policy(policies: Path) -> None:
    path = policies / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["mcp"] = {"servers": {"crm": {"tools": ["*"], "resources": ["kb://*"], "prompts": ["*"]}}}
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="module")
def planted() -> Iterator[str]:
    with PlantedServer().running() as served:
        yield served.url + "/mcp"


@pytest.fixture(scope="module")
def gateway(planted: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    doc = {"servers": {"crm": {"url": planted, "timeout_s": 5}}}
    with start_gateway(tmp_path_factory.mktemp("mcp-texts"), doc, _policy, **OVERRIDES) as gw:
        yield gw


def _crm(gateway: Any) -> str:
    return f"{gateway.url}/mcp/crm"


def _raw(value: Any) -> list[str]:
    """The planted values found anywhere in ``value`` (a model dumped as the wire has it)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(by_alias=True, exclude_none=True)
    text = json.dumps(value, default=str)
    return [v for v in (EMAIL, CARD, SECRET) if v in text]


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # initialize, and 2026-07-28 server/discover
async def test_the_handshake_instructions_and_server_info_are_redacted(gateway: Any, mode: str) -> None:
    async with mcp_client(_crm(gateway), mode=mode) as client:
        instructions, info = client.instructions, client.server_info
    assert instructions is not None and "<CREDIT_CARD_" in instructions, instructions
    assert _raw([instructions, info]) == [], (instructions, info)
    assert info is not None and info.name == "planted" and "<EMAIL_ADDRESS_" in (info.title or "")


@pytest.mark.parametrize(
    ("case", "mode"), [("marker", "legacy"), ("marker", "auto"), ("engine down", "legacy")]
)
async def test_handshake_texts_the_policy_refuses_or_cannot_judge_are_withheld(
    case: str, mode: str, tmp_path: Path
) -> None:
    def prepare(policies: Path) -> None:
        _policy(policies)
        if case == "engine down":  # wardgate.mcp missing: every decision fails closed
            (policies.parent / "rego" / "mcp.rego").unlink()
            (policies.parent / "rego" / "mcp_test.rego").unlink()

    instructions = MARKER if case == "marker" else "Be brief."
    with PlantedServer(instructions).running() as served:
        doc = {"servers": {"crm": {"url": served.url + "/mcp", "timeout_s": 5}}}
        with start_gateway(tmp_path, doc, prepare, **OVERRIDES) as gw:
            async with mcp_client(_crm(gw), mode=mode) as client:  # the session still opens
                instructions_seen, info = client.instructions, client.server_info
    assert instructions_seen is None
    assert info is not None and info.name == "crm" and info.title is None and info.description is None


async def test_every_text_of_a_listed_tool_is_redacted(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    order = tools["lookup_order"]
    assert _raw(order) == [], order.model_dump(by_alias=True, exclude_none=True)
    assert "<EMAIL_ADDRESS_" in (order.description or "") and "<CREDIT_CARD_" in (order.title or "")
    props = order.input_schema["properties"]
    assert "<" in props["order_id"]["description"]  # the secret in a parameter's description
    assert props["notify"]["default"].startswith("<EMAIL_ADDRESS_")
    assert props["notify"]["examples"][0].startswith("<EMAIL_ADDRESS_")
    assert props["channel"]["enum"][0] == "sms" and props["channel"]["enum"][1].startswith("<EMAIL_ADDRESS_")
    assert order.output_schema is not None and "<CREDIT_CARD_" in json.dumps(order.output_schema)
    assert order.annotations is not None and "<EMAIL_ADDRESS_" in (order.annotations.title or "")
    assert order.meta is not None and order.meta["owner"].startswith("<EMAIL_ADDRESS_")
    # A tool whose name is a card cannot be shown as a placeholder (it could not be called).
    assert not any(CARD in name for name in tools) and not any(name.startswith("refund") for name in tools)
    assert "poisoned_title" not in tools  # an injection marker in the title: tool poisoning
    assert tools["plain_tool"].description == "Echoes a text."


async def test_a_listing_past_the_request_value_budget_is_still_scanned_in_full(
    planted: str, tmp_path: Path
) -> None:
    # An answer is bounded by mcp.max_response_bytes, not by redaction.max_request_values: a
    # server that pads its listing must not push a planted value past what is scanned.
    doc = {"servers": {"crm": {"url": planted, "timeout_s": 5}}}
    overrides = {**OVERRIDES, "redaction": {"max_request_values": 3}}
    with start_gateway(tmp_path, doc, _policy, **overrides) as gw:
        async with mcp_client(_crm(gw)) as client:
            listed = [(await client.list_tools()).tools, (await client.list_prompts()).prompts]
    assert _raw(listed) == [], listed


async def test_a_listing_is_the_same_when_it_comes_from_the_clean_cache(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        first = (await client.list_tools()).model_dump(by_alias=True, exclude_none=True)
        second = (await client.list_tools()).model_dump(by_alias=True, exclude_none=True)
    assert first == second and _raw(second) == []


async def test_prompts_and_resources_listings_are_redacted_and_poisoned_ones_hidden(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        resources = {r.uri: r for r in (await client.list_resources()).resources}
        templates = (await client.list_resource_templates()).resource_templates
    assert (
        _raw(list(prompts.values())) == [] and _raw(list(resources.values())) == [] and _raw(templates) == []
    )
    dunning = prompts["dunning"]
    assert "<EMAIL_ADDRESS_" in (dunning.description or "") and "<CREDIT_CARD_" in (dunning.title or "")
    assert dunning.arguments is not None and "<" in (dunning.arguments[0].description or "")
    assert "poisoned_prompt" not in prompts
    billing = resources["kb://articles/billing"]
    assert "<CREDIT_CARD_" in (billing.description or "") and "<EMAIL_ADDRESS_" in (billing.title or "")
    assert "kb://articles/poisoned" not in resources
    # A URI read as the chat path reads a URL (percent-decoded, a token per segment): one that
    # holds an e-mail address is hidden, since a placeholder in it could not be read.
    assert [str(uri) for uri in resources if "customers" in str(uri)] == []
    assert "<EMAIL_ADDRESS_" in (templates[0].description or "")


def _blob(result: Any) -> tuple[str, bytes]:
    contents = result.contents[0]
    return contents.mime_type, base64.b64decode(contents.blob)


async def test_text_blobs_are_decoded_redacted_and_re_encoded(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        billing = _blob(await client.read_resource("kb://articles/billing"))
        octets = _blob(await client.read_resource("kb://articles/octets"))
        utf16 = _blob(await client.read_resource("kb://articles/utf16"))
        logo = _blob(await client.read_resource("kb://articles/logo"))
    text = billing[1].decode()
    assert CARD not in text and EMAIL not in text and "<CREDIT_CARD_" in text, text
    assert SECRET not in octets[1].decode() and "api key <" in octets[1].decode()  # text sent as octets
    assert utf16[1][:2] == b"\xff\xfe" and "<CREDIT_CARD_" in utf16[1].decode("utf-16")  # its own encoding
    assert logo == ("image/png", PNG)  # binary: passed as it is (mcp.binary_blobs: pass)


async def test_prompt_messages_and_their_embedded_blobs_are_redacted(gateway: Any) -> None:
    async with mcp_client(_crm(gateway)) as client:
        prompt = await client.get_prompt("dunning", {"customer": "Bob"})
    dumped = prompt.model_dump(by_alias=True, exclude_none=True)
    assert _raw(dumped) == [], dumped
    embedded = prompt.messages[1].content.resource  # type: ignore[union-attr]
    assert "<CREDIT_CARD_" in base64.b64decode(embedded.blob).decode()  # type: ignore[union-attr]


async def test_a_tool_announced_later_is_redacted_when_listed_again(gateway: Any) -> None:
    changed: list[Any] = []

    async with mcp_client(_crm(gateway)) as client:
        client.message_handler = None
        done = await client.call_tool("add_tool", {})
        assert not done.is_error, done
        changed.append(await client.list_tools())
    late = {t.name: t for t in changed[0].tools}["late_tool"]
    assert "<EMAIL_ADDRESS_" in (late.description or "") and _raw(late) == []


async def test_binary_blobs_are_refused_when_configured(planted: str, tmp_path: Path) -> None:
    doc = {"servers": {"crm": {"url": planted, "timeout_s": 5}}}
    overrides = {**OVERRIDES, "mcp": {"binary_blobs": "refuse"}}
    with start_gateway(tmp_path, doc, _policy, **overrides) as gw:
        async with mcp_client(_crm(gw)) as client:
            text = _blob(await client.read_resource("kb://articles/billing"))  # text still passes
            with pytest.raises(MCPError) as refused:
                await client.read_resource("kb://articles/binary")
    assert "<CREDIT_CARD_" in text[1].decode()
    assert refused.value.error.code == -32003 and "binary" in refused.value.error.message


def _paged_server(cursor: str) -> Any:
    """A server answering tools/list in two pages (wire level: the SDK server does not page),
    planting in the result's ``_meta``, and a tool's description on the second page."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def rpc(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("method") != "tools/list":
            return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "result": {}})
        tool = {"name": "one", "inputSchema": {"type": "object"}}
        if body.get("params", {}).get("cursor") == cursor:
            tool = {"name": "two", "description": f"owner {EMAIL}", "inputSchema": {"type": "object"}}
            return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": {"tools": [tool]}})
        result = {"tools": [tool], "nextCursor": cursor, "_meta": {"owner": EMAIL, "note": f"card {CARD}"}}
        return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": result})

    return Starlette(routes=[Route("/mcp", rpc, methods=["POST"])])


async def test_cursors_pass_unchanged_and_result_meta_is_redacted(tmp_path: Path) -> None:
    # A cursor is the server's own opaque token: random base64 that redaction must not break.
    cursor = base64.urlsafe_b64encode(b'{"offset": 1, "sig": "' + bytes(range(200, 232)) + b'"}').decode()
    with serve_app(_paged_server(cursor), lifespan="off") as raw:
        doc = {"servers": {"crm": {"url": raw.url + "/mcp", "timeout_s": 5}}}
        with start_gateway(tmp_path, doc, _policy, **OVERRIDES) as gw:
            headers = {"authorization": f"Bearer {TEST_KEY}", "accept": "application/json, text/event-stream"}
            async with httpx.AsyncClient(timeout=10) as http:
                pages = []
                for params in ({}, {"cursor": cursor}):
                    body = {"jsonrpc": "2.0", "id": len(pages) + 1, "method": "tools/list", "params": params}
                    resp = await http.post(_crm(gw), json=body, headers=headers)
                    pages.append(resp.json()["result"])
    assert pages[0]["nextCursor"] == cursor
    assert _raw(pages) == [], pages
    assert pages[0]["_meta"]["owner"].startswith("<EMAIL_ADDRESS_")
    assert pages[1]["tools"][0]["description"].startswith("owner <EMAIL_ADDRESS_")
