"""The model catalog: model name → deployments, from ``policies/models.yaml``.

A deployment whose API key env var is unset is disabled, and a model with no enabled
deployment is not offered at all: ``make run`` with no ``OPENAI_API_KEY`` lists only the
``mock`` models (the ``wardgate_mock`` plugin) instead of failing on the first real call.
That is never silent: each disabled deployment is logged as a warning naming the model, the
deployment and the env variable (clients would otherwise only see a 404 for the model), and
kept in ``ModelCatalog.disabled`` for ``/readyz`` (the ``models`` check names them).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gateway.call import Endpoint
from gateway.yamlfile import load_yaml, refuse_unknown

ALL_CHAT = (Endpoint.CHAT, Endpoint.RESPONSES)

log = logging.getLogger("wardgate.models")


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


@dataclass(slots=True, frozen=True)
class DisabledDeployment:
    """A deployment left out because its ``api_key_env`` names an unset variable."""

    model: str
    deployment: str
    api_key_env: str
    model_dropped: bool  # no deployment of the model is left: clients get 404 for it

    def describe(self) -> str:
        return f"{self.model}/{self.deployment} ({self.api_key_env} unset)"


class ModelsFileError(ValueError):
    """models.yaml is not YAML, or has a key no deployment reads (``api_key_evn``)."""


class _DeploymentSchema(BaseModel):
    name: str | None = None
    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    weight: float | None = None
    timeout_s: float | None = None
    headers: dict[str, str] | None = None


class _ModelSchema(BaseModel):
    endpoints: list[str] | None = None
    owned_by: str | None = None
    max_output_tokens: int | None = None
    deployments: list[_DeploymentSchema] | None = None


class ModelsFileSchema(BaseModel):
    """The keys models.yaml may hold (checked by ``gateway.strict``; parsing is below)."""

    models: dict[str, _ModelSchema] | None = None


class ModelCatalog:
    def __init__(self, models: dict[str, ModelEntry], disabled: tuple[DisabledDeployment, ...] = ()) -> None:
        self._models = models
        #: Deployments left out at load for an unset API key variable (logged there).
        self.disabled = disabled

    @classmethod
    def load(cls, path: Path) -> ModelCatalog:
        if not path.exists():
            return cls({})
        doc = load_yaml(path, ModelsFileError) or {}
        if not isinstance(doc, dict):
            raise ModelsFileError(f"{path}: expected a mapping with 'models' at the top level")
        refuse_unknown(doc, ModelsFileSchema, path, ModelsFileError)
        models: dict[str, ModelEntry] = {}
        disabled: list[DisabledDeployment] = []
        for name, spec in (doc.get("models") or {}).items():
            entry, off = _parse_model(str(name), spec or {})
            if entry.deployments:
                models[entry.name] = entry
            disabled += [
                DisabledDeployment(entry.name, dep.name, str(dep.api_key_env), not entry.deployments)
                for dep in off
            ]
        for item in disabled:
            log.warning(
                "%s: model %r deployment %r disabled: env variable %s is unset%s",
                path,
                item.model,
                item.deployment,
                item.api_key_env,
                " (the model has no other deployment: it is not served, clients get 404)"
                if item.model_dropped
                else "",
            )
        return cls(models, tuple(disabled))

    def status(self) -> str | None:
        """``/readyz``'s ``models`` check: ``None`` (ok) or the disabled deployments, named."""
        if not self.disabled:
            return None
        return "ok; disabled for an unset API key variable: " + ", ".join(d.describe() for d in self.disabled)

    def get(self, name: str) -> ModelEntry | None:
        return self._models.get(name)

    def names(self) -> list[str]:
        return sorted(self._models)

    def entries(self) -> list[ModelEntry]:
        return [self._models[n] for n in self.names()]


def _parse_model(name: str, spec: dict[str, Any]) -> tuple[ModelEntry, list[Deployment]]:
    """The model with its enabled deployments, and the deployments disabled (unset key variable)."""
    endpoints = tuple(Endpoint(e) for e in spec.get("endpoints") or ALL_CHAT)
    if Endpoint.MCP in endpoints:  # the MCP gateway's calls name no model
        raise ValueError(f"model {name}: 'mcp' is not a model endpoint (MCP servers go in mcp.yaml)")
    deployments: list[Deployment] = []
    disabled: list[Deployment] = []
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
        (deployments if dep.enabled else disabled).append(dep)
    entry = ModelEntry(
        name=name,
        endpoints=endpoints,
        deployments=tuple(deployments),
        owned_by=str(spec.get("owned_by", "wardgate")),
        max_output_tokens=spec.get("max_output_tokens"),
    )
    return entry, disabled


def model_allowed(patterns: tuple[str, ...], model: str) -> bool:
    """Whether a key's model allow-list (globs) admits ``model``."""
    if "*" in patterns:
        return True
    return any(p == model or fnmatch.fnmatchcase(model, p) for p in patterns)
