"""The console's pages: one module each, registered by one line in ``PAGES`` below.

Adding a page (the whole recipe; docs/console.md has a worked example):

1. A module here, named after the page, exposing ``PAGE = Page(name, title, roles, routes)``,
   each ``PageRoute(path, handler, roles, methods)``; a handler is
   ``async def h(page: PageRequest) -> Response`` and answers ``page.render("approvals.html", ...)``.
   Roles are the ones the admin API requires for the same data (``check_roles`` runs before
   the handler; hide actions with ``page.allowed(...)``, the action's route checks again).
2. Its templates in ``gateway/console/templates/``, named after the page (``approvals.html``,
   ``approvals_detail.html``), extending ``base.html``.
3. One line in ``PAGES``: the module's name. The navigation follows this order.

Modules:

    home.py            /console/ : what the signed-in principal can reach
    approvals.py       /console/approvals : the approvals inbox (live), detail, approve / deny
    approvals_view.py  what those pages show: filters, what a reviewer may do and why not, the run so far
    runs.py            /console/runs : the run explorer (find runs; a run's tree, timeline; why and capture panels)
    runs_view.py       what the run page shows of each step (its facts rendered escaped in Python)
    spend.py           /console/spend : spend charts, top spenders, budgets, reservations in flight
    audit.py           /console/audit : search, paging, export, chains and verification
    keys.py            /console/keys : virtual keys: list, create (shown once), revoke (admin)
    policies.py        /console/policies : active revision, tests, reload history, try a decision (admin)
"""

from __future__ import annotations

#: The page modules, in navigation order (one line per page).
PAGES: tuple[str, ...] = (
    "home",
    "approvals",
    "runs",
    "spend",
    "audit",
    "keys",
    "policies",
)
