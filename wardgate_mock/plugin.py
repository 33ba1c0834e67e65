"""The mock's side of the provider seam: the ``mock`` kind's factory.

Declared in ``pyproject.toml`` under ``[project.entry-points."wardgate.providers"]``, so
``pip install -e .`` (``make install``) makes every deployment with ``provider: mock`` in
``policies/models.yaml`` a ``MockProvider``; the gateway finds it through
``gateway.providers.registry`` and never imports this package.
"""

from __future__ import annotations

from gateway.models import Deployment
from gateway.providers.config import ProviderSettings
from wardgate_mock.provider import MockProvider


class MockKind:
    """The ``ProviderFactory`` of the ``mock`` kind."""

    #: The mock answers in OpenAI's wire format: audit records and traces say so.
    system = "openai"

    def __call__(self, deployment: Deployment, settings: ProviderSettings) -> MockProvider:
        """A ``MockProvider`` named after the deployment (the settings do not apply: no network)."""
        return MockProvider(name=deployment.name)


provider = MockKind()
