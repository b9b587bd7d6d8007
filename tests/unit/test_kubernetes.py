"""The Kubernetes manifests of kubernetes/, rendered and checked against the code.

Each overlay is rendered with ``kubectl kustomize`` (never applied: there is no cluster here);
every object is validated against the Kubernetes JSON schemas that kubernetes-validate ships
(strict: unknown fields fail), the KEDA objects against KEDA's own CRD schemas (read from
``../shared/schemas/keda`` or ``KEDA_CRD_DIR``; skipped when absent), and the structure against
the settings: every variable set is one the code reads, probes, ports, scrape annotations and
grace periods agree with the settings and the ConfigMap, no Secret is committed, every
container runs as non-root without capabilities.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from provisioning.api.app import DRAIN_SECONDS, GRACEFUL_SHUTDOWN_SECONDS
from tests.support.code_settings import read_by_the_code_or_its_libraries, variables_the_code_reads
from tests.support.kubernetes import (
    KEDA_CRD_DIR,
    KEDA_CRD_FILES,
    KUBERNETES,
    OVERLAYS,
    ROOT,
    Manifest,
    config_maps_of,
    containers,
    environment_of,
    keda_schema,
    of_kind,
    pod_spec,
    render,
    secret_references,
)

KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate ships
POOL_SOURCE = ROOT / "platform" / "provisioning" / "worker" / "pool.py"
# component Deployment -> (its console script, its server port variable, metrics port variable)
COMPONENTS = {
    "service-b": ("provisioning-api", "API_PORT", "API_METRICS_PORT"),
    "worker": ("provisioning-worker", None, "WORKER_METRICS_PORT"),
    "stub": ("equipment-stub", "STUB_PORT", "STUB_METRICS_PORT"),
}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    manifests = render(request.param)
    assert manifests, f"overlay {request.param} renders nothing"
    return manifests


def deployment(manifests: list[Manifest], name: str) -> Manifest:
    found = of_kind(manifests, "Deployment")
    assert name in found, f"no Deployment {name}"
    return found[name]


def settings_of(manifests: list[Manifest], name: str) -> dict[str, str]:
    """The ConfigMap values the component's container reads."""
    return config_maps_of(containers(deployment(manifests, name))[0], manifests)


def port_of(container: dict[str, Any], name: str) -> int:
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
    assert name in ports, f"{container['name']} has no port named {name}"
    return int(ports[name])


# --- rendering and schemas -------------------------------------------------------------------


def test_both_overlays_exist() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


def test_every_overlay_renders_the_three_components(rendered: list[Manifest]) -> None:
    assert set(of_kind(rendered, "Deployment")) == set(COMPONENTS)
    assert set(of_kind(rendered, "Service")) == {"service-b", "stub"}
    assert of_kind(rendered, "ConfigMap")


def test_every_object_is_valid_against_the_kubernetes_schemas(rendered: list[Manifest]) -> None:
    for manifest in rendered:
        if manifest["kind"] in KEDA_CRD_FILES:
            continue  # custom resources: the KEDA test below
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message} "
                        f"at {'/'.join(str(part) for part in error.path)}")


@pytest.mark.skipif(not KEDA_CRD_DIR.is_dir(),
                    reason=f"KEDA's CRDs are not at {KEDA_CRD_DIR} (set KEDA_CRD_DIR to validate "
                           "the ScaledObject and TriggerAuthentication against them)")
def test_keda_objects_are_valid_against_keda_crd_schemas(rendered: list[Manifest]) -> None:
    keda = [manifest for manifest in rendered if manifest["kind"] in KEDA_CRD_FILES]
    assert {manifest["kind"] for manifest in keda} == set(KEDA_CRD_FILES)
    for manifest in keda:
        assert manifest["apiVersion"] == "keda.sh/v1alpha1"
        errors = sorted(jsonschema.Draft7Validator(keda_schema(manifest["kind"])).iter_errors(manifest),
                        key=lambda e: list(e.path))
        assert not errors, f"{manifest['kind']}/{manifest['metadata']['name']}: " + "; ".join(
            f"{'/'.join(str(p) for p in e.path)}: {e.message}" for e in errors)


def test_the_strict_keda_schema_refuses_a_misspelt_field() -> None:
    if not KEDA_CRD_DIR.is_dir():
        pytest.skip(f"KEDA's CRDs are not at {KEDA_CRD_DIR}")
    wrong = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
             "spec": {"scaleTargetRef": {"name": "worker"}, "minReplicas": 1, "triggers": []}}
    assert not jsonschema.Draft7Validator(keda_schema("ScaledObject")).is_valid(wrong)


# --- the settings against the code ----------------------------------------------------------


def test_manifests_set_only_variables_the_code_reads(rendered: list[Manifest]) -> None:
    known = variables_the_code_reads()
    for name, workload in of_kind(rendered, "Deployment").items():
        for container in containers(workload):
            for variable in environment_of(container, rendered):
                assert read_by_the_code_or_its_libraries(variable, known), (
                    f"{name}: no code reads {variable}; a typo?")


def test_every_container_runs_its_components_console_script(rendered: list[Manifest]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    for name, (script, _, _) in COMPONENTS.items():
        (container,) = pod_spec(deployment(rendered, name))["containers"]
        assert container["command"] == [script] and script in scripts, name


def test_every_envfrom_names_a_rendered_config_map(rendered: list[Manifest]) -> None:
    maps = of_kind(rendered, "ConfigMap")
    for workload in of_kind(rendered, "Deployment").values():
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps, source


def test_servers_listen_on_every_interface_and_so_do_the_metrics(rendered: list[Manifest]) -> None:
    assert settings_of(rendered, "service-b")["API_HOST"] == "0.0.0.0"
    assert settings_of(rendered, "stub")["STUB_HOST"] == "0.0.0.0"
    for name in COMPONENTS:
        assert settings_of(rendered, name)["METRICS_HOST"] == "0.0.0.0", name


def test_each_pod_runs_one_process_so_its_ports_are_fixed(rendered: list[Manifest]) -> None:
    for name, variable in (("service-b", "API_WORKERS"), ("worker", "WORKER_PROCESSES"),
                           ("stub", "STUB_WORKERS")):
        assert settings_of(rendered, name)[variable] == "1", f"{name}: {variable} must be 1"


def test_container_ports_and_services_match_the_settings(rendered: list[Manifest]) -> None:
    services = of_kind(rendered, "Service")
    for name, (_, port_variable, metrics_variable) in COMPONENTS.items():
        settings = settings_of(rendered, name)
        (container,) = pod_spec(deployment(rendered, name))["containers"]
        assert port_of(container, "metrics") == int(settings[metrics_variable]), name
        if port_variable is None:
            assert name not in services, f"{name} serves nothing but its metrics"
            continue
        assert port_of(container, "https") == int(settings[port_variable]), name
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["port"] == int(settings[port_variable])
        assert service_port["targetPort"] == "https"
        template_labels = deployment(rendered, name)["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= template_labels.items(), name


def test_the_worker_reaches_the_stub_through_its_service(rendered: list[Manifest]) -> None:
    url = settings_of(rendered, "worker")["SERVICE_A_URL"]
    stub_port = settings_of(rendered, "stub")["STUB_PORT"]
    assert url == f"https://stub:{stub_port}", "the stub's certificate names `stub` (certs.py)"


def test_probes_ask_health_on_the_ports_the_settings_give(rendered: list[Manifest]) -> None:
    for name, port_variable in (("service-b", "API_PORT"), ("stub", "STUB_PORT")):
        (container,) = pod_spec(deployment(rendered, name))["containers"]
        ready = container["readinessProbe"]["httpGet"]
        port = int(settings_of(rendered, name)[port_variable])
        assert (ready["scheme"], ready["path"], ready["port"]) == ("HTTPS", "/health", port), name
        alive = container["livenessProbe"]["httpGet"]
        assert (alive["scheme"], alive["port"]) == ("HTTPS", port), name
    (worker,) = pod_spec(deployment(rendered, "worker"))["containers"]
    metrics_port = int(settings_of(rendered, "worker")["WORKER_METRICS_PORT"])
    ready = worker["readinessProbe"]["httpGet"]
    assert (ready["scheme"], ready["path"], ready["port"]) == ("HTTP", "/health", metrics_port)


def test_liveness_never_depends_on_redis_rabbitmq_or_a_drain(rendered: list[Manifest]) -> None:
    # /health answers 503 while a dependency is away (Service B) or while draining (the worker):
    # a liveness probe on it would restart every pod in an outage, or kill a draining pod.
    (worker,) = pod_spec(deployment(rendered, "worker"))["containers"]
    assert worker["livenessProbe"] == {**worker["livenessProbe"], "tcpSocket": {
        "port": int(settings_of(rendered, "worker")["WORKER_METRICS_PORT"])}}
    (api,) = pod_spec(deployment(rendered, "service-b"))["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] != "/health"


def test_prometheus_scrapes_every_pod_on_its_metrics_port(rendered: list[Manifest]) -> None:
    for name, (_, _, metrics_variable) in COMPONENTS.items():
        workload = deployment(rendered, name)
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/path"] == "/metrics", name
        assert annotations["prometheus.io/port"] == settings_of(rendered, name)[metrics_variable], name


def test_worker_pods_outlast_the_pools_drain(rendered: list[Manifest]) -> None:
    settings = settings_of(rendered, "worker")
    grace = float(settings["WORKER_SHUTDOWN_GRACE_SECONDS"])
    margin = re.search(r"shutdown_grace_seconds \+ (\d+)", POOL_SOURCE.read_text(encoding="utf-8"))
    assert margin, "the pool's kill deadline moved; update this test"
    period = pod_spec(deployment(rendered, "worker"))["terminationGracePeriodSeconds"]
    assert period > grace + int(margin.group(1))
    # A pod scaled down mid-task finishes its calls instead of handing them back to be repeated.
    assert grace > float(settings["SERVICE_A_TIMEOUT_SECONDS"])


def test_service_b_pods_outlast_their_graceful_shutdown(rendered: list[Manifest]) -> None:
    spec = pod_spec(deployment(rendered, "service-b"))
    (container,) = spec["containers"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > pause + DRAIN_SECONDS + GRACEFUL_SHUTDOWN_SECONDS


# --- secrets and security -------------------------------------------------------------------


def test_no_secret_is_committed(rendered: list[Manifest]) -> None:
    for manifest in rendered:
        if manifest["kind"] == "Secret":
            assert not manifest.get("data") and not manifest.get("stringData"), manifest["metadata"]
    assert not list((KUBERNETES).rglob("*secret*.env")), "no secret values in the repository"


def test_credentials_come_only_from_secrets(rendered: list[Manifest]) -> None:
    for name, workload in of_kind(rendered, "Deployment").items():
        for container in containers(workload):
            values = config_maps_of(container, rendered)
            for variable in ("AMQP_URL", "AMQP_URLS", "REDIS_URL", "API_TOKENS", "WEBHOOK_SECRET",
                             "IDEMPOTENCY_FINGERPRINT_SECRET"):
                assert variable not in values, f"{name}: {variable} in a ConfigMap"
            for variable in container.get("env", []):
                if re.search(r"URL$|TOKEN|SECRET|PASS", variable["name"]) and variable["name"] != "SERVICE_A_URL":
                    assert "secretKeyRef" in variable.get("valueFrom", {}), f"{name}: {variable['name']}"


def test_every_secret_referenced_is_documented_with_its_keys(rendered: list[Manifest]) -> None:
    readme = (KUBERNETES / "README.md").read_text(encoding="utf-8")
    for workload, secret, key in secret_references(rendered):
        assert re.search(rf"create secret generic {secret}\b", readme), f"{workload}: {secret}"
        assert key == "*" or key in readme, f"{workload}: key {key} of {secret}"
    for authentication in of_kind(rendered, "TriggerAuthentication").values():
        for ref in authentication["spec"]["secretTargetRef"]:
            assert re.search(rf"create secret generic {ref['name']}\b", readme), ref


def test_every_container_is_non_root_without_capabilities(rendered: list[Manifest]) -> None:
    for name, workload in of_kind(rendered, "Deployment").items():
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert not context["capabilities"].get("add"), name
            assert context.get("privileged", False) is False, name
            assert context["readOnlyRootFilesystem"] is True, name


def test_the_namespaces_enforce_the_restricted_pod_security_standard(rendered: list[Manifest]) -> None:
    (namespace,) = of_kind(rendered, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for manifest in rendered:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == namespace["metadata"]["name"]


def test_what_the_code_writes_is_on_a_writable_volume(rendered: list[Manifest]) -> None:
    # Read-only root: the TLS files come from a Secret, the stub's behaviour file and Python's
    # temporary files go to /tmp, an emptyDir.
    for name, workload in of_kind(rendered, "Deployment").items():
        spec = pod_spec(workload)
        empty_dirs = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
        (container,) = spec["containers"]
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts.get("/tmp") in empty_dirs, name
        assert mounts.get(settings_of(rendered, name)["CERT_DIR"]) == "tls", name
    behaviour = Path(settings_of(rendered, "stub")["STUB_BEHAVIOUR_FILE"])
    assert behaviour.parent == Path("/tmp")


def test_tls_files_are_where_the_settings_look(rendered: list[Manifest]) -> None:
    # TlsSettings: CERT_DIR/ca.pem, server.pem, server-key.pem unless TLS_* say otherwise.
    needed = {"service-b": {"ca.pem", "server.pem", "server-key.pem"},
              "stub": {"ca.pem", "server.pem", "server-key.pem"},
              "worker": {"ca.pem"}}  # a TLS client only: no private key in its pods
    for name, files in needed.items():
        settings = settings_of(rendered, name)
        assert not {"TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"} & set(settings), name
        (tls,) = [v for v in pod_spec(deployment(rendered, name))["volumes"] if v["name"] == "tls"]
        assert {item["path"] for item in tls["secret"]["items"]} == files, name


# --- scaling, disruptions, resources ----------------------------------------------------------


def test_keda_scales_workers_on_ready_and_unacknowledged_messages(rendered: list[Manifest]) -> None:
    (scaled,) = of_kind(rendered, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker"
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"]
    settings = settings_of(rendered, "worker")
    queues = {}
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "rabbitmq"
        metadata = trigger["metadata"]
        # AMQP mode counts ready messages only and would scale down pods that are mid-task.
        assert metadata["protocol"] == "http" and metadata["mode"] == "QueueLength", metadata
        assert metadata.get("excludeUnacknowledged", "false") == "false"
        assert "host" not in metadata, "credentials belong in the TriggerAuthentication's Secret"
        queues[metadata["queueName"]] = metadata["value"]
    # One replica per pod's worth of held messages.
    assert queues[settings["TASKS_QUEUE"]] == settings["WORKER_PREFETCH"]
    assert queues[settings["WEBHOOKS_QUEUE"]] == settings["WEBHOOK_PREFETCH"]
    authentications = of_kind(rendered, "TriggerAuthentication")
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["authenticationRef"]["name"] in authentications


def test_service_b_scales_on_cpu(rendered: list[Manifest]) -> None:
    (hpa,) = of_kind(rendered, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "service-b"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_autoscaled_deployments_leave_the_replica_count_to_the_autoscaler(
    rendered: list[Manifest],
) -> None:
    for name in ("service-b", "worker"):
        assert "replicas" not in deployment(rendered, name)["spec"], name


def test_every_deployment_has_a_disruption_budget_that_lets_nodes_drain(
    rendered: list[Manifest],
) -> None:
    budgets = of_kind(rendered, "PodDisruptionBudget")
    for name, workload in of_kind(rendered, "Deployment").items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets.values()
                    if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, f"{name}: {len(matching)} budgets"
        assert matching[0]["spec"].get("maxUnavailable", 0) >= 1, f"{name}: a drain would block"


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (250m, 1, 256Mi) as a number (cores, bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?", str(value))
    assert match, f"unexpected quantity {value!r}"
    return float(match.group(1)) * units.get(match.group(2) or "", 1)


def test_every_container_requests_no_more_than_its_limits(rendered: list[Manifest]) -> None:
    for name, workload in of_kind(rendered, "Deployment").items():
        for container in containers(workload):
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = quantity(resources["requests"][resource])
                limit = quantity(resources["limits"][resource])
                assert 0 < request <= limit, f"{name}: {resource} {request} > {limit}"


def test_images_are_the_projects_image_with_a_tag(rendered: list[Manifest]) -> None:
    for name, workload in of_kind(rendered, "Deployment").items():
        for container in containers(workload):
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository.endswith("cpe-provisioning") and tag and tag != "latest", (name, image)


# --- the documented examples ------------------------------------------------------------------


def test_the_examples_are_the_external_services_the_production_overlay_names() -> None:
    production = render("production")
    settings = settings_of(production, "service-b")
    values = yaml.safe_load((KUBERNETES / "examples" / "redis-sentinel-values.yaml").read_text())
    assert values["sentinel"]["enabled"] is True
    assert settings["REDIS_SENTINEL_MASTER"] == values["sentinel"]["masterSet"]
    sentinels = settings["REDIS_SENTINELS"].split(",")
    assert len(sentinels) == values["replica"]["replicaCount"]
    assert all(s.endswith(f":{values['sentinel']['containerPorts']['sentinel']}") for s in sentinels)
    (cluster,) = yaml.safe_load_all((KUBERNETES / "examples" / "rabbitmq-cluster.yaml").read_text())
    assert cluster["kind"] == "RabbitmqCluster"
    assert cluster["spec"]["replicas"] >= int(settings["QUORUM_INITIAL_GROUP_SIZE"])
