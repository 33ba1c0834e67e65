"""The model catalog: model name → deployments, from ``policies/models.yaml``.

A deployment whose API key env var is unset is disabled, and a model with no enabled
deployment is not offered at all: ``make run`` with no ``OPENAI_API_KEY`` lists only the
``mock`` models (the ``wardgate_mock`` plugin) instead of failing on the first real call.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.call import Endpoint

ALL_CHAT = (Endpoint.CHAT, Endpoint.RESPONSES)


@dataclass(slots=True, frozen=True)
class Deployment:
    name: str
    provider: str  # a kind: "openai" (built in) or a plugin's (gateway/providers/registry.py)
    model: str  # the model name sent upstream
    base_url: str | None = None
    api_key_env: str | None = None
    weight: float = 1.0
    timeout_s: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def enabled(self) -> bool:
        return not self.api_key_env or bool(self.api_key)


@dataclass(slots=True, frozen=True)
class ModelEntry:
    name: str
    endpoints: tuple[Endpoint, ...]
    deployments: tuple[Deployment, ...]
    owned_by: str = "wardgate"
    max_output_tokens: int | None = None


class ModelCatalog:
    def __init__(self, models: dict[str, ModelEntry]) -> None:
        self._models = models

    @classmethod
    def load(cls, path: Path) -> ModelCatalog:
        if not path.exists():
            return cls({})
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        models: dict[str, ModelEntry] = {}
        for name, spec in (doc.get("models") or {}).items():
            entry = _parse_model(str(name), spec or {})
            if entry.deployments:
                models[entry.name] = entry
        return cls(models)

    def get(self, name: str) -> ModelEntry | None:
        return self._models.get(name)

    def names(self) -> list[str]:
        return sorted(self._models)

    def entries(self) -> list[ModelEntry]:
        return [self._models[n] for n in self.names()]


def _parse_model(name: str, spec: dict[str, Any]) -> ModelEntry:
    endpoints = tuple(Endpoint(e) for e in spec.get("endpoints") or ALL_CHAT)
    deployments = []
    for i, d in enumerate(spec.get("deployments") or []):
        dep = Deployment(
            name=str(d.get("name") or f"{name}#{i}"),
            provider=str(d.get("provider", "openai")),
            model=str(d.get("model") or name),
            base_url=(str(d["base_url"]).rstrip("/") if d.get("base_url") else None),
            api_key_env=d.get("api_key_env"),
            weight=float(d.get("weight", 1.0)),
            timeout_s=d.get("timeout_s"),
            headers={str(k): str(v) for k, v in (d.get("headers") or {}).items()},
        )
        if dep.enabled:
            deployments.append(dep)
    return ModelEntry(
        name=name,
        endpoints=endpoints,
        deployments=tuple(deployments),
        owned_by=str(spec.get("owned_by", "wardgate")),
        max_output_tokens=spec.get("max_output_tokens"),
    )


def model_allowed(patterns: tuple[str, ...], model: str) -> bool:
    """Whether a key's model allow-list (globs) admits ``model``."""
    if "*" in patterns:
        return True
    return any(p == model or fnmatch.fnmatchcase(model, p) for p in patterns)
