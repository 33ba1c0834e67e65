"""Browser fixtures for the console: Debian's Chromium driven by Playwright, axe-core, screenshots.

- ``browser`` (module scope): one Chromium per test module, ``/usr/bin/chromium`` (Debian's
  package, ``apt-get install -y chromium``); never a downloaded browser (no ``playwright
  install``). Missing: the fixture fails saying how to install it (``make test`` does).
- ``signed_in(role_or_key)``: a fresh browser context (own cookies) signed in to the module's
  ``console_gateway`` through the real sign-in form; returns the page.
- ``axe_check(page)``: runs axe-core (from the npm registry, installed by ``make browser-deps``
  into ``.venv/axe``) in the page and fails on any serious or critical violation.
- ``shot(page, name)``: a full-page screenshot under ``.artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.console_app import ROLE_KEYS

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("WARDGATE_CHROMIUM", "/usr/bin/chromium")
AXE_DIR = REPO / ".venv" / "axe"
AXE = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("WARDGATE_ARTIFACTS", REPO / ".artifacts")) / "console"


def _need_chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests drive Debian's Chromium. "
            "Install it (as root: apt-get install -y chromium; `make browser-deps` does) "
            "or point WARDGATE_CHROMIUM at a Chromium binary."
        )
    return CHROMIUM


def axe_source() -> str:
    """axe-core's script; installed from the npm registry on first use when missing."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("axe-core is missing and npm is not installed (apt-get install -y npm)")
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), "axe-core@4"],
            check=True,
            timeout=300,
        )
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _need_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def signed_in(browser: Any, console_gateway: Any) -> Iterator[Callable[[str], Any]]:
    """``signed_in("approver")`` (a role of ``ROLE_KEYS``) or ``signed_in(key)``: a page in a
    fresh context, signed in through the form and on the console's home page."""
    contexts: list[Any] = []

    def sign_in(role_or_key: str) -> Any:
        key = ROLE_KEYS.get(role_or_key, role_or_key)
        context = browser.new_context(base_url=console_gateway.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/console/login")
        page.get_by_label("Admin key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/")
        return page

    yield sign_in
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def axe_check() -> Callable[[Any], list[dict[str, Any]]]:
    source = axe_source()

    def check(page: Any) -> list[dict[str, Any]]:
        # Evaluated through the DevTools protocol, which the page's CSP does not govern (an
        # injected <script> would be refused, as it should be).
        page.evaluate(source)
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        assert bad == [], f"axe: serious/critical violations on {page.url}: {bad}"
        return list(result["violations"])

    return check


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Path]:
    def take(page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
