"""The import graph keeps the architecture: no cycles, areas meet only at declared seams, stores
never reach stages, and the product never imports the mock.

The graph is read from the source with ``ast`` (no import runs), counting every import: at
module level, inside functions (lazy) and under ``TYPE_CHECKING``. A lazy or type-only import
still couples two modules, so it may not close a cycle either, with one exception: a
type-only import of the two objects the composition root builds and hands to every component
(``gateway.context.AppContext`` and ``gateway.settings.Settings``, assembled from every
component's section) is a reference to the hub, not a dependency on what it wires.

To let an area use another one's module, name that module in ``SEAMS`` (and say why in the
comment beside it): a seam is a module written to be used from outside its area.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "orchestrator", "wardgate_mock")

#: The guard areas: each may import the shared core (``gateway.call``, ``gateway.errors``,
#: ``gateway.pipeline``, ...) freely, but another area only through that area's seams.
AREAS = (
    "limits",
    "redaction",
    "policy",
    "approvals",
    "audit",
    "observability",
    "keys",
    "providers",
    "mcp",
    "console",
    "cache",
)

#: Type-only imports of these do not count for cycles (see above).
HUBS = frozenset({"gateway.context", "gateway.settings"})

#: Modules of an area that other areas may import, besides its component
#: (``gateway.<area>.component``: components are handed the components they use).
SEAMS: dict[str, frozenset[str]] = {
    # Who is calling, and the bearer parsing every admin surface shares.
    # The console's keys page creates and revokes through the admin API's own functions.
    "keys": frozenset({"gateway.keys.store", "gateway.keys.bearer", "gateway.keys.api"}),
    # The limit ranges, also applied to a key's own limits in keys.yaml.
    # The console's spend page reads budgets and reservations through the limits admin.
    # The lean pipelined Redis client: also the response cache's GET/SET on its hot path.
    "limits": frozenset({"gateway.limits.bounds", "gateway.limits.admin", "gateway.limits.resp"}),
    # Scrubbing secrets out of text before it is logged (providers' error bodies); the store's
    # query interface (Filters) and the run timeline, which the console's pages read.
    # The console's run explorer, audit and spend pages: the API's query parsing, export and
    # verify, the read models (explore) and the event schema's constants.
    "audit": frozenset(
        {
            "gateway.audit.scrub",
            "gateway.audit.store.base",
            "gateway.audit.timeline",
            "gateway.audit.explore",
            "gateway.audit.query",
            "gateway.audit.schema",
            "gateway.audit.export",
            "gateway.audit.verify",
        }
    ),
    # Metrics (and their cached labelled children), tracing and the GC watch are shared facilities.
    "observability": frozenset(
        {
            "gateway.observability.config",
            "gateway.observability.gcwatch",
            "gateway.observability.labels",
            "gateway.observability.metrics",
            "gateway.observability.multiproc",
            "gateway.observability.traceparent",
            "gateway.observability.tracing",
        }
    ),
    # Redaction of values outside a model call's body: MCP tool arguments and answers.
    "redaction": frozenset({"gateway.redaction.values"}),
    # The console's policies page: the active revision, "try a decision". The normalised tool
    # identity (name keys, parsed arguments) the MCP policy input shares.
    "policy": frozenset({"gateway.policy.service", "gateway.policy.textkey", "gateway.policy.numbers"}),
    # The console decides and shows approvals through the same service, records, listing
    # query, four-eyes/group rules and real-value policy as the admin API; the cache replays
    # stored answers as streams (answers as SSE events and events as answers).
    "approvals": frozenset(
        {
            "gateway.approvals.service",
            "gateway.approvals.feed",
            "gateway.approvals.model",
            "gateway.approvals.store",
            "gateway.approvals.rules",
            "gateway.approvals.reveal",
            "gateway.approvals.stream_answers",
        }
    ),
    # The web UI: nothing of it is used by another area.
    "console": frozenset(),
    "cache": frozenset(),
    # Which GenAI system a deployment's provider kind speaks (the audit record and the trace).
    "providers": frozenset({"gateway.providers.registry"}),
    "mcp": frozenset(),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _ours(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a name in one) is, if any."""
    mods = modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, path: Path) -> Iterator[tuple[str, bool]]:
    """(imported name, whether only under ``TYPE_CHECKING``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        type_only = id(node) in typing_only
        if isinstance(node, ast.Import):
            yield from ((alias.name, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                # `from pkg import sub` imports the submodule; `from mod import name`, the module.
                sub = f"{base}.{alias.name}"
                yield (sub if sub in modules() else base), type_only


@cache
def _edges() -> dict[str, dict[str, bool]]:
    """Module -> {module of ours it imports: whether only for typing} (own package aside)."""
    out: dict[str, dict[str, bool]] = {}
    for module, path in modules().items():
        targets: dict[str, bool] = {}
        for name, type_only in _imported(module, path):
            target = _ours(name)
            if target and target != module and not module.startswith(target + "."):
                targets[target] = targets.get(target, True) and type_only
        out[module] = targets
    return out


def graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of ours it imports, however it imports them."""
    return {m: frozenset(targets) for m, targets in _edges().items()}


def _packages_run(importer: str, target: str) -> set[str]:
    """The packages whose ``__init__`` importing ``target`` runs first (the importer's own
    packages aside: they are already being imported)."""
    parts = target.split(".")
    ancestors = {".".join(parts[:n]) for n in range(1, len(parts))}
    return {a for a in ancestors if a in modules() and not importer.startswith(a + ".")}


def coupling() -> dict[str, frozenset[str]]:
    """The graph cycles are checked on: every import, plus the package ``__init__`` modules it
    runs on the way (``from a.b.c import x`` runs ``a/b/__init__.py``, and whatever that
    imports); type-only imports of the hubs left out."""
    out: dict[str, frozenset[str]] = {}
    for m, targets in _edges().items():
        kept = {t for t, type_only in targets.items() if not (type_only and t in HUBS)}
        out[m] = frozenset(kept.union(*(_packages_run(m, t) for t in kept)))
    return out


def _area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "gateway" and parts[1] in AREAS else None


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    edges = coupling()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph()[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _is_store(module: str) -> bool:
    last = module.rpartition(".")[2]
    return _area(module) is not None and ("store" in last or last.startswith("memory") or ".store." in module)


def _is_stage(module: str) -> bool:
    return module == "gateway.pipeline" or module.rpartition(".")[2] in ("stage", "stream_trust")


def test_the_graph_sees_the_whole_code() -> None:
    # A broken reader would pass every rule below on an empty graph.
    assert len(graph()) > 150
    assert "gateway.limits.store" in graph()["gateway.limits.service"]
    assert "gateway.policy.regorus_build" in graph()["gateway.policy.derived"]  # a lazy import
    # Importing a module runs its packages' __init__ first: an edge to each of them.
    assert "gateway.policy.engines" in coupling()["gateway.policy.reload"]
    assert _edges()["gateway.context"]["gateway.settings"] is True  # under TYPE_CHECKING
    assert _edges()["gateway.context"]["gateway.http.drain"] is False


def test_there_are_no_import_cycles() -> None:
    assert _cycles() == []


def test_an_area_imports_another_area_only_through_its_seams() -> None:
    unknown = {area for area in SEAMS if area not in AREAS}
    assert not unknown
    for seams in SEAMS.values():
        missing = {m for m in seams if m not in modules()}
        assert not missing, f"seams that no longer exist: {missing}"
    crossings = sorted(
        f"{src} -> {dst}"
        for src, targets in graph().items()
        for dst in targets
        if (a := _area(src))
        and (b := _area(dst))
        and a != b
        and dst not in SEAMS[b]
        and dst != f"gateway.{b}.component"
    )
    assert crossings == [], "import another area's seam (SEAMS), or declare a new one there"


def test_stores_never_reach_a_stage() -> None:
    stores = sorted(m for m in modules() if _is_store(m))
    assert "gateway.limits.redis_store" in stores and "gateway.audit.store.postgres" in stores
    reaching = {s: sorted(m for m in _reachable(s) if _is_stage(m)) for s in stores}
    assert {s: r for s, r in reaching.items() if r} == {}


def test_the_product_never_imports_the_mock() -> None:
    product = [m for m in modules() if m.startswith("gateway")]
    assert [m for m in product if any(t.startswith("wardgate_mock") for t in graph()[m])] == []
