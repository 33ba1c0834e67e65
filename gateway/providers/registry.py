"""Provider kinds: a deployment's ``provider:`` (``policies/models.yaml``) → a factory.

The product ships one kind, ``openai`` (any OpenAI-compatible base URL). Every other kind
is a plugin: an installed distribution declares an entry point in the group
``wardgate.providers`` whose name is the kind and whose value is a ``ProviderFactory``::

    [project.entry-points."wardgate.providers"]
    mock = "wardgate_mock.plugin:provider"

That is how the scripted ``mock`` used by ``make run``, the demo and the tests reaches the
router (``wardgate_mock/``, packaged in the same repository) without the product importing
it: ``gateway/`` names no plugin, and ``tests/providers/test_providers_mock_seam.py`` keeps
it so. An entry point is looked up only for a kind a deployment actually uses, once per
``Router.build`` (app start), so a catalog of ``openai`` deployments never loads a plugin.

Why entry points rather than a registration call: a registration function would need the
plugin imported before the app is built, i.e. someone in the product importing it, or a
module-level registry mutated at import time; an entry point is data in the plugin's own
package metadata, read when the app is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from types import MappingProxyType

from gateway.models import Deployment
from gateway.providers.base import Provider
from gateway.providers.config import ProviderSettings

#: The entry-point group a provider plugin declares its kinds in.
ENTRY_POINT_GROUP = "wardgate.providers"

#: Builds the provider of one deployment (called once per deployment, at app start).
ProviderFactory = Callable[[Deployment, ProviderSettings], Provider]


def _openai(deployment: Deployment, settings: ProviderSettings) -> Provider:
    from gateway.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(deployment, settings)


#: The kinds the product itself implements (read-only: no module-level state to mutate).
BUILTIN: Mapping[str, ProviderFactory] = MappingProxyType({"openai": _openai})


def wire_system(kind: str) -> str:
    """The GenAI system a kind's providers speak, for the audit record and the trace
    (``gen_ai.system``): ``openai`` for the built-in kind; a plugin's factory may declare it as
    its ``system`` attribute (the scripted mock speaks OpenAI's API); otherwise the kind itself.
    """
    if kind in BUILTIN:
        return kind
    try:
        factory = resolve(kind)
    except UnknownProviderKind:
        return kind
    system = getattr(factory, "system", None)
    return system if isinstance(system, str) and system else kind


class UnknownProviderKind(ValueError):
    """No built-in kind and no installed plugin answers to a deployment's ``provider``."""


def resolve(kind: str, extra: Mapping[str, ProviderFactory] | None = None) -> ProviderFactory:
    """The factory for ``kind``: ``extra`` first (tests, embedders), then built in, then plugins.

    Raises ``UnknownProviderKind`` naming what is available, so a typo or a missing plugin
    stops the app at start rather than at the first call.
    """
    if extra and kind in extra:
        return extra[kind]
    if kind in BUILTIN:
        return BUILTIN[kind]
    found = entry_points(group=ENTRY_POINT_GROUP, name=kind)
    for point in found:
        factory = point.load()
        if not callable(factory):
            raise UnknownProviderKind(f"provider plugin {kind!r} ({point.value}) is not callable")
        return factory
    known = sorted({*BUILTIN, *(extra or {}), *entry_points(group=ENTRY_POINT_GROUP).names})
    raise UnknownProviderKind(
        f"unknown provider {kind!r} (available: {', '.join(known)}; a plugin declares an "
        f"entry point in the group {ENTRY_POINT_GROUP!r}: is its package installed? In this "
        f"repository `make install` registers the scripted `mock`)"
    )
