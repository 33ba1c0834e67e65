"""The web console under ``/console``: reviewers approve with the run's context, auditors trace
runs, owners watch spend (docs/console.md).

Server-rendered Jinja2 pages with htmx (vendored, integrity-checked), a session made from an
admin key, the admin API's own role check on every page and action, CSRF tokens on every
state change, a strict Content-Security-Policy (no inline script or style).

Adding a page (the recipe; docs/console.md walks through one):

1. a module in ``pages/`` named after the page, exposing ``PAGE = Page(...)`` with its
   ``PageRoute``s (path, handler, roles, methods); handlers take a ``PageRequest`` and
   return ``page.render(template, ...)``; roles are those the admin API requires for the same
   data;
2. its templates in ``templates/``, named after the page, extending ``base.html``;
3. one line in ``pages/__init__.py``'s ``PAGES``.

Modules:

    config.py          ConsoleSettings: the ``console:`` section
    component.py       Console: the component (sessions at start, routes)
    mount.py           the ASGI app under /console: sign-in, pages, static files, 404
    web.py             Page / PageRoute / PageRequest; the wrapper: session, roles, CSRF, error pages
    deps.py            Deps: what pages read (providers of other components' services); sign-in methods
    signin.py          sign-in with an admin key, sign-out
    throttle.py        failed sign-ins per address and key prefix (memory or Redis): brute force refused
    sessions.py        Session, SessionStore, the memory store, SessionManager (idle / absolute expiry)
    redis_sessions.py  sessions in Redis (several workers or replicas)
    security.py        CSP and security headers, the CSRF check
    pending.py         PendingView: the inbox's pending approvals, kept from the change feed
    templates.py       the Jinja2 environment (autoescape), filters, static files in memory
    pages/             one module per page (pages/__init__.py: the list)

Beside them: the Jinja2 templates (folder ``templates``), the static files (folder ``static``:
vendored htmx, the console's CSS and JS) and ``VENDORED`` (what was vendored, its version and
integrity; refreshed by ``scripts/vendor_console.sh``, ``make vendor``).
"""
