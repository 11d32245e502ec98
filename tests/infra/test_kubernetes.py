"""infra/k8s: valid against the Kubernetes schemas, and the deployment an operator was promised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "infra" / "k8s").glob("*.yaml"))
# The oldest minor version still supported by EKS when this was written, and the newest schema.
VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


def documents() -> list[dict[str, Any]]:
    found = []
    for path in MANIFESTS:
        found += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return found


def one(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in documents() if doc["kind"] == kind]
    return found


def pod_specs() -> list[dict[str, Any]]:
    return [
        doc["spec"]["template"]["spec"] for doc in documents() if "template" in doc.get("spec", {})
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_schemas(version: str) -> None:
    docs = documents()
    assert len(docs) == len(MANIFESTS)  # one resource per file, none empty
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_malformed_deployment() -> None:
    broken = one("Deployment")
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)
    misspelt = one("Deployment")
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, VERSIONS[0], strict=True)


def test_three_replicas_probe_healthz_for_liveness_and_readyz_for_readiness() -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_every_container_has_requests_limits_and_a_locked_down_context() -> None:
    specs = pod_specs()
    assert len(specs) == 2  # the Deployment and the migration Job
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "@sha256:" in container["image"]  # pinned, never a moving tag


def test_secrets_are_referenced_never_written_into_a_manifest() -> None:
    assert not [doc for doc in documents() if doc["kind"] == "Secret"]
    for spec in pod_specs():
        for container in spec["containers"]:
            for variable in container.get("env", []):
                name = variable["name"]
                if name == "WEIGHTGATE_DATABASE_URL":  # carries the database password
                    assert "value" not in variable
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == "weightgate-database"
    keys = [v for v in pod_specs()[0]["volumes"] if v["name"] == "keys"]
    assert keys[0]["secret"]["secretName"] == "weightgate-keys"
    config = one("ConfigMap")["data"]
    for name in config:
        assert not any(word in name.upper() for word in ("PASSWORD", "SECRET", "TOKEN"))
    assert "WEIGHTGATE_DATABASE_URL" not in config


def test_the_disruption_budget_and_network_policy_select_the_gateway_pods() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    budget = one("PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 2
    network = one("NetworkPolicy")["spec"]
    assert set(network["policyTypes"]) == {"Ingress", "Egress"}
    for selector in (budget["selector"]["matchLabels"], network["podSelector"]["matchLabels"]):
        assert selector.items() <= labels.items()


def test_the_migration_job_runs_the_migrations_once() -> None:
    job = one("Job")["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert container["command"] == ["weightgate", "migrate"]
    deployment = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == deployment["image"]
