"""docker/k8s/: every manifest validated against the Kubernetes schema, offline, plus the
properties a production rollout needs (probes, drain, disruption budget, non-root read-only
pods whose writable paths are emptyDirs, secrets by reference, placeholders only).

No cluster is available here, so the schema check is ``kubernetes-validate`` (PyPI, a dev
dependency): it bundles the OpenAPI-derived JSON schemas of every Kubernetes release and
needs no network; ``strict`` also refuses fields the schema does not know (a misspelled
``readinesProbe`` would otherwise be silently dropped by the API server).

``policies-configmap.yaml`` is the repo's ``policies/*.yaml`` (keys.yaml excepted) as a
ConfigMap; after changing a policy file, regenerate it with
``.venv/bin/python -m tests.deploy.test_k8s_manifests``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet

from gateway.keys.store import KeyFileError, parse_key_file
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "docker" / "k8s"
#: The Kubernetes release the manifests are checked against (GA APIs only: they hold on later ones).
KUBERNETES_VERSION = "1.33.0"
LABELS = {"app.kubernetes.io/name": "wardgate", "app.kubernetes.io/component": "gateway"}


def _manifests() -> dict[str, dict[str, Any]]:
    """``kind/name`` → document, for every manifest the kustomization lists."""
    docs: dict[str, dict[str, Any]] = {}
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


def _deployment() -> dict[str, Any]:
    return _manifests()["Deployment/wardgate"]


def _container() -> dict[str, Any]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return container


def _env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container()["env"]}


def _config() -> dict[str, Any]:
    return yaml.safe_load(_manifests()["ConfigMap/wardgate-config"]["data"]["wardgate.yaml"])


def render_policies_configmap() -> str:
    """policies-configmap.yaml from the repo's policies/ (never keys.yaml: keys are secrets)."""
    lines = [
        "# Generated from policies/*.yaml (keys.yaml excepted: keys come from the Secret) by",
        "# `.venv/bin/python -m tests.deploy.test_k8s_manifests`; tests/deploy checks it is current.",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: wardgate-policies",
        "  labels:",
        *[f"    {k}: {v}" for k, v in LABELS.items()],
        "data:",
    ]
    for path in sorted((REPO / "policies").glob("*.yaml")):
        if path.name == "keys.yaml":
            continue
        text = path.read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), f"{path.name}: one final newline"
        lines.append(f"  {path.name}: |")
        lines.extend(f"    {line}" if line else "" for line in text.splitlines())
    return "\n".join(lines) + "\n"


def test_every_manifest_is_valid_for_the_pinned_kubernetes_release() -> None:
    docs = _manifests()
    assert set(docs) == {
        "ConfigMap/wardgate-config",
        "ConfigMap/wardgate-policies",
        "Secret/wardgate-secrets",
        "Deployment/wardgate",
        "Service/wardgate",
        "PodDisruptionBudget/wardgate",
    }
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c: c.update(readinesProbe=c.pop("readinessProbe")),  # unknown field (strict)
        lambda c: c["resources"]["limits"].update(memory=["1Gi"]),  # wrong type
        lambda c: c["readinessProbe"]["httpGet"].pop("port"),  # required field
    ],
)
def test_the_schema_check_refuses_a_spoiled_deployment(spoil: Any) -> None:
    doc = _deployment()
    spoil(doc["spec"]["template"]["spec"]["containers"][0])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_policies_configmap_is_the_repos_policies() -> None:
    assert (K8S / "policies-configmap.yaml").read_text() == render_policies_configmap(), (
        "policies/ changed: run .venv/bin/python -m tests.deploy.test_k8s_manifests"
    )
    data = _manifests()["ConfigMap/wardgate-policies"]["data"]
    assert "keys.yaml" not in data
    for name, text in data.items():
        assert text == (REPO / "policies" / name).read_text()


def test_two_replicas_rolled_one_at_a_time_with_a_disruption_budget() -> None:
    docs = _manifests()
    deployment = docs["Deployment/wardgate"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert deployment["spec"]["selector"]["matchLabels"] == LABELS
    assert deployment["spec"]["template"]["metadata"]["labels"] == LABELS
    pdb = docs["PodDisruptionBudget/wardgate"]
    assert pdb["spec"]["selector"]["matchLabels"] == LABELS
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    service = docs["Service/wardgate"]
    assert service["spec"]["selector"] == LABELS and service["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    assert ports == {"http": _config()["server"]["port"]}
    resources = _container()["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]


def test_probes_use_the_endpoints_the_gateway_serves() -> None:
    from gateway.app import _routes

    served = {getattr(r, "path", None) for r in _routes({}, [])}
    container = _container()
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz" and liveness["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {readiness["path"], liveness["path"]} <= served
    assert readiness["port"] == liveness["port"] == "http"


def test_termination_covers_the_prestop_sleep_the_drain_and_the_settling() -> None:
    """SIGKILL must not come before the gateway has finished its drain (README "Shutdown")."""
    container = _container()
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    server = _config()["server"]
    grace = _deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert pre_stop >= 5
    assert grace > pre_stop + server["shutdown_delay_s"] + server["shutdown_grace_s"] + 5 - 1
    # The readiness probe notices the drain ("draining" 503) within the preStop sleep.
    assert container["readinessProbe"]["periodSeconds"] <= pre_stop


def test_pods_run_non_root_on_a_read_only_root_and_write_only_to_emptydirs() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 1000
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    # Service links would put WARDGATE_PORT, WARDGATE_SERVICE_HOST, ... (from the Service
    # named wardgate) into the environment: names the gateway does not know.
    assert pod["enableServiceLinks"] is False
    sc = _container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {
        m["mountPath"]: volumes[m["name"]] for m in _container()["volumeMounts"] if not m.get("readOnly")
    }
    assert all("emptyDir" in v for v in writable.values()), "a writable mount that is not an emptyDir"
    config = _config()
    env = _env()
    for path in (
        config["policies_dir"],
        config["data_dir"],
        env["PROMETHEUS_MULTIPROC_DIR"]["value"],
        "/tmp/x",
    ):
        mount = [m for m in writable if path == m or path.startswith(m + "/")]
        assert mount, f"{path} is not on a writable emptyDir"
    multiproc = next(m for m in writable if env["PROMETHEUS_MULTIPROC_DIR"]["value"].startswith(m + "/"))
    assert writable[multiproc]["emptyDir"]["medium"] == "Memory"
    assert all(v["emptyDir"].get("sizeLimit") for v in writable.values())


def test_workers_share_metrics_and_state_is_never_per_process() -> None:
    settings = Settings.model_validate(_config())
    assert settings.server.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" in _env()
    assert settings.limits.backend == "redis" and settings.approvals.backend == "redis"
    assert settings.audit.backend == "postgres" and settings.audit.fail_closed is True
    assert settings.policy.fail_open is False and settings.limits.on_store_error == "deny"
    assert ":" not in settings.audit.postgres_dsn.removeprefix("postgresql://").split("@")[0]


def test_mounts_and_env_reference_what_the_configmaps_and_the_secret_hold() -> None:
    docs = _manifests()
    secret = docs["Secret/wardgate-secrets"]["stringData"]
    env = _env()
    for name in ("WARDGATE_APPROVALS_KEY", "PGPASSWORD", "OPENAI_API_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "wardgate-secrets" and ref["key"] in secret, name
        assert "value" not in env[name]
    assert env["WARDGATE_APPROVALS_KEY"]["valueFrom"]["secretKeyRef"].get("optional") is not True
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _deployment()["spec"]["template"]["spec"]["volumes"]}
    assert env["WARDGATE_CONFIG"]["value"] == mounts["config"] + "/wardgate.yaml"
    assert "wardgate.yaml" in docs[f"ConfigMap/{volumes['config']['configMap']['name']}"]["data"]
    assert env["POLICIES_SRC"]["value"] == mounts["policies"]
    assert f"ConfigMap/{volumes['policies']['configMap']['name']}" in docs
    items = volumes["keys"]["secret"]["items"]
    assert env["KEYS_SEED_FILE"]["value"] == f"{mounts['keys']}/{items[0]['path']}"
    assert items[0]["key"] == "keys.yaml" and volumes["keys"]["secret"]["secretName"] == "wardgate-secrets"
    assert volumes["keys"]["secret"]["defaultMode"] & 0o007 == 0  # not world-readable
    # entrypoint.sh reads these names; the image's CMD and the pod's args agree.
    entrypoint = (REPO / "docker" / "entrypoint.sh").read_text()
    assert (
        'POLICIES_SRC="${POLICIES_SRC:-' in entrypoint and 'KEYS_SEED_FILE="${KEYS_SEED_FILE:-' in entrypoint
    )
    assert _container()["args"] == ["--host", "0.0.0.0", "--port", "8080"]


def test_the_secret_is_a_template_the_gateway_refuses_until_filled_in() -> None:
    secret = _manifests()["Secret/wardgate-secrets"]
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "REPLACE_WITH_" in value, f"{key} holds a value, not a placeholder"
    with pytest.raises(KeyFileError, match="64 hex"):
        parse_key_file(secret["stringData"]["keys.yaml"])
    with pytest.raises(ValueError):
        Fernet(secret["stringData"]["approvals-key"])
    for path in K8S.glob("*.yaml"):
        text = path.read_text()
        assert "wg-demo-" not in text and "wg-admin-" not in text and "9645dec40f98" not in text


def test_the_image_is_pinned() -> None:
    image = _container()["image"]
    name, _, tag = image.rpartition(":")
    assert name and tag and tag != "latest" and tag[0].isdigit() and "/" not in tag
    assert _container()["imagePullPolicy"] == "IfNotPresent"


def test_a_filled_in_keys_secret_is_accepted() -> None:
    """The template's shape is right: only the placeholder makes it fail."""
    text = _manifests()["Secret/wardgate-secrets"]["stringData"]["keys.yaml"]
    key_set = parse_key_file(text.replace("REPLACE_WITH_THE_SHA256_HEX_OF_YOUR_ADMIN_KEY", "ab" * 32))
    assert len(key_set.admin) == 1 and not key_set.keys


if __name__ == "__main__":
    (K8S / "policies-configmap.yaml").write_text(render_policies_configmap())
    print(f"wrote {K8S / 'policies-configmap.yaml'}")
