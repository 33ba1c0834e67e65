"""The demo's throwaway gateway (``orchestrator/local_gateway.py``) on the shared launcher.

It must come up on its own port with fresh keys that work, serve the scripted mock through
the provider seam, never write a key in plain text into its directory, and be gone once
stopped.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from orchestrator.local_gateway import LocalGateway


def _closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def _written(root: Path) -> str:
    """Every config and log the demo gateway wrote under ``root``."""
    return "".join(
        p.read_text(errors="replace")
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".log")
    )


async def test_the_demo_gateway_serves_its_fresh_keys_and_stops(tmp_path: Path) -> None:
    gw = LocalGateway(tmp_path, approval_mode="defer")
    await gw.start(timeout_s=90)
    try:
        agent = {"authorization": f"Bearer {gw.keys.agents['billing']}"}
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as http:
            models = await http.get("/models", headers=agent)
            assert models.status_code == 200
            assert "mock-chat" in {m["id"] for m in models.json()["data"]}
            chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
            answer = await http.post("/chat/completions", headers=agent, json=chat)
            assert answer.status_code == 200
            assert answer.json()["choices"][0]["message"]["content"] == "Echo: hi"
            wrong = await http.get("/models", headers={"authorization": "Bearer wg-nope"})
            assert wrong.status_code == 401
        assert gw.proc is not None and gw.proc.poll() is None
    finally:
        gw.stop()
    assert _closed(gw.port)
    written = _written(tmp_path)
    for key in [gw.keys.admin, *gw.keys.agents.values()]:
        assert key not in written
