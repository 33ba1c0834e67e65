"""``/console/``: the landing page, listing what the signed-in principal's roles reach."""

from __future__ import annotations

from starlette.responses import Response

from gateway.console.web import Page, PageRequest, PageRoute


async def home(page: PageRequest) -> Response:
    """The landing page."""
    return page.render("home.html")


PAGE = Page(
    name="home",
    title="Home",
    roles=("approver", "auditor"),
    href="/console/",
    routes=(PageRoute("/", home, roles=()),),
)
