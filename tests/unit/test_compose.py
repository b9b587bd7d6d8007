"""compose.yaml, docker/Dockerfile, scripts/make-env.sh and the observability files, checked
as files.

There may be no Docker engine where the tests run, so these read the files and check what
`docker compose up` relies on: pinned images, health before dependence, a scalable worker,
credentials that come from the git-ignored .env, only environment variables the code reads, and
observability files that fit together (scrape jobs name compose services, dashboards name
provisioned data sources, compose mounts what exists). promtool and a live Prometheus check the
same files further in tests/observability/.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.code_settings import NON_CODE_VARIABLE_PREFIXES, variables_the_code_reads

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
MAKE_ENV = ROOT / "scripts" / "make-env.sh"

OBSERVABILITY = ROOT / "observability"
PROMETHEUS_CONFIG = OBSERVABILITY / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = OBSERVABILITY / "grafana" / "provisioning"
DATASOURCES = GRAFANA_PROVISIONING / "datasources" / "datasources.yml"
DASHBOARD_PROVIDERS = GRAFANA_PROVISIONING / "dashboards" / "dashboards.yml"
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))

SERVICES_NEEDING_CERTS = ("service-b", "stub", "worker")
PINNED_VERSION = re.compile(r"\d+\.\d+")
INTERPOLATION = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "compose.yaml is not a mapping"
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict) and found, "compose.yaml defines no services"
    return found


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of the two compose forms it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return {name: value for name, value in pairs}
    return {name: "" if value is None else str(value) for name, value in raw.items()}


def dependencies_of(service: Mapping[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}; the short list form means service_started."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def python_services(services: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services built from our Dockerfile."""
    return {name: service for name, service in services.items() if "build" in service}


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        instruction, _, arguments = logical.partition(" ")
        yield instruction.upper(), arguments.strip()
        logical = ""


def seconds(duration: str) -> float:
    """A compose duration such as 45s or 1m30s, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- compose.yaml ---------------------------------------------------------------------------


def test_compose_file_uses_the_specification_without_a_version_key(
    compose: dict[str, Any],
) -> None:
    assert "version" not in compose


def test_every_service_uses_a_pinned_image_or_is_built_here(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service.get("image", "")
        assert image, f"{name}: neither image nor build"
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        assert PINNED_VERSION.search(tag), f"{name}: tag of {image!r} names no version"


def test_every_dependency_names_a_defined_service(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target in dependencies_of(service):
            assert target in services, f"{name} depends on undefined service {target!r}"


def test_every_service_waited_on_for_health_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    waited_on = {
        target
        for service in services.values()
        for target, condition in dependencies_of(service).items()
        if condition == "service_healthy"
    }
    assert waited_on, "nothing waits for a healthy service; the test would prove nothing"
    for target in waited_on:
        check = services[target].get("healthcheck") or {}
        assert check.get("test"), f"{target} is waited on as healthy but has no healthcheck"
        assert not check.get("disable"), f"{target}: healthcheck disabled"
        assert check["test"] not in (["NONE"], "NONE"), f"{target}: healthcheck is NONE"


def test_certs_one_shot_completes_before_service_b_stub_and_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES_NEEDING_CERTS:
        condition = dependencies_of(services[name]).get("certs")
        assert condition == "service_completed_successfully", f"{name}: certs is {condition}"


def test_certs_one_shot_is_never_restarted(services: dict[str, dict[str, Any]]) -> None:
    # A restart policy would keep it from ever "completing", and its dependents from starting.
    assert services["certs"].get("restart", "no") == "no"


def test_only_the_certs_one_shot_may_write_the_certificates(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source, _, rest = str(volume).partition(":")
            if source != "certs":
                continue
            read_only = rest.endswith(":ro")
            assert read_only == (name != "certs"), f"{name}: certs mounted as {volume!r}"


def test_every_named_volume_is_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = str(volume).partition(":")[0]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount
            assert source in declared, f"{name}: volume {source!r} is not declared"


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name forbids --scale worker=N"
    assert not worker.get("ports"), "a published host port forbids --scale worker=N"


def test_worker_is_stopped_only_after_its_shutdown_grace(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    grace = float(environment_of(worker)["WORKER_SHUTDOWN_GRACE_SECONDS"])
    assert seconds(str(worker.get("stop_grace_period", "10s"))) > grace


def test_rabbitmq_credentials_come_from_the_env_file(services: dict[str, dict[str, Any]]) -> None:
    environment = environment_of(services["rabbitmq"])
    for name in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
        assert INTERPOLATION.match(environment.get(name, "")), (
            f"rabbitmq {name} must be a ${{NAME:?message}} interpolation, "
            f"got {environment.get(name)!r}"
        )


def test_amqp_url_takes_its_credentials_from_the_env_file(
    services: dict[str, dict[str, Any]],
) -> None:
    urls = {
        name: environment_of(service)["AMQP_URL"]
        for name, service in services.items()
        if "AMQP_URL" in environment_of(service)
    }
    assert set(urls) >= {"service-b", "worker"}
    for name, url in urls.items():
        credentials = re.match(r"^amqps?://(.*)@[^@]+$", url)
        assert credentials, f"{name}: AMQP_URL {url!r} carries no credentials"
        user, _, password = credentials.group(1).partition("}:")
        assert INTERPOLATION.match(user + "}"), f"{name}: user in AMQP_URL is a literal"
        assert INTERPOLATION.match(password), f"{name}: password in AMQP_URL is a literal"


def test_no_password_is_written_in_the_compose_file(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for variable, value in environment_of(service).items():
            if re.search(r"PASS|SECRET|TOKEN", variable):
                assert INTERPOLATION.match(value), f"{name}: {variable} is a literal"


def test_guest_appears_nowhere_in_the_compose_file() -> None:
    assert "guest" not in COMPOSE_FILE.read_text(encoding="utf-8").lower()


def test_python_services_get_only_variables_the_code_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    known = variables_the_code_reads()
    built = python_services(services)
    assert set(built) >= {"certs", *SERVICES_NEEDING_CERTS}
    for name, service in built.items():
        for variable in environment_of(service):
            if variable.startswith(tuple(NON_CODE_VARIABLE_PREFIXES)):
                continue
            assert variable in known, f"{name}: no code reads {variable}; a typo?"


def test_rabbitmq_enables_the_prometheus_plugin(services: dict[str, dict[str, Any]]) -> None:
    mounts = {
        str(volume).split(":")[1]: str(volume).split(":")[0]
        for volume in services["rabbitmq"].get("volumes") or []
    }
    source = mounts.get("/etc/rabbitmq/enabled_plugins")
    assert source, "enabled_plugins is not mounted"
    plugins = (ROOT / source).read_text(encoding="utf-8")
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins
    assert plugins.rstrip().endswith("]."), "an Erlang term must end with a full stop"


# --- observability: Prometheus, Grafana, Jaeger in compose.yaml ----------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


def bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """{container path: host path} of a service's bind mounts (short syntax)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def in_container(service: Mapping[str, Any], host_file: Path) -> str | None:
    """Where a service sees a file of this repository, or None when it is not mounted."""
    for target, source in bind_mounts(service).items():
        if host_file.resolve() == source:
            return target
        if source in host_file.resolve().parents:
            return f"{target}/{host_file.resolve().relative_to(source).as_posix()}"
    return None


def scrape_targets(job: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(host, port) of a scrape job, from its static and DNS A-record configurations."""
    targets = []
    for group in job.get("static_configs") or []:
        for target in group["targets"]:
            host, _, port = target.rpartition(":")
            targets.append((host, int(port)))
    for sd in job.get("dns_sd_configs") or []:
        targets += [(name, int(sd["port"])) for name in sd["names"]]
    return targets


def dashboard_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed panels included."""
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def datasource_uids(document: Any) -> Iterator[str]:
    """Every data source uid a dashboard refers to, wherever it sits."""
    if isinstance(document, dict):
        source = document.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield source["uid"]
        for value in document.values():
            yield from datasource_uids(value)
    elif isinstance(document, list):
        for item in document:
            yield from datasource_uids(item)


def default_of(interpolation: str) -> str:
    """``${NAME:-default}`` -> default; a literal stays as it is."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", interpolation)
    return match.group(1) if match else interpolation


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_CONFIG)


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    assert {path.name for path in DASHBOARDS} >= {"overview.json", "workers.json", "stub.json"}
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARDS}


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    return {source["uid"]: source for source in load_yaml(DATASOURCES)["datasources"]}


def test_every_scrape_job_targets_a_compose_service(
    prometheus_config: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for job in prometheus_config["scrape_configs"]:
        targets = scrape_targets(job)
        assert targets, f"job {job['job_name']} has no target"
        for host, _port in targets:
            if job["job_name"] == "prometheus" and host == "localhost":
                continue  # Prometheus scraping itself
            assert host in services, f"job {job['job_name']} scrapes {host!r}, not a compose service"


def test_the_platform_components_each_have_a_scrape_job(prometheus_config: dict[str, Any]) -> None:
    jobs = {job["job_name"]: scrape_targets(job) for job in prometheus_config["scrape_configs"]}
    assert jobs.get("service-b") == [("service-b", 9110)]
    assert jobs.get("stub") == [("stub", 9100)]
    assert jobs.get("rabbitmq") == [("rabbitmq", 15692)]
    assert jobs.get("redis") == [("redis-exporter", 9121)]
    assert "prometheus" in jobs


def test_worker_scraping_finds_every_scaled_container_and_every_pool_process(
    prometheus_config: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    (job,) = [job for job in prometheus_config["scrape_configs"] if job["job_name"] == "worker"]
    assert not job.get("static_configs"), "a static target would miss `--scale worker=N`"
    lookups = job["dns_sd_configs"]
    assert all(sd["names"] == ["worker"] and sd.get("type") == "A" for sd in lookups)
    processes = int(default_of(environment_of(services["worker"])["WORKER_PROCESSES"]))
    assert sorted(sd["port"] for sd in lookups) == [9120 + i for i in range(processes)]


def test_rabbitmq_is_scraped_for_per_queue_depth_and_consumers(
    prometheus_config: dict[str, Any],
) -> None:
    (job,) = [job for job in prometheus_config["scrape_configs"] if job["job_name"] == "rabbitmq"]
    assert job["metrics_path"] == "/metrics/detailed"
    assert set(job["params"]["family"]) >= {"queue_coarse_metrics", "queue_consumer_count"}


def test_compose_mounts_the_prometheus_config_and_its_rules(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    prometheus = services["prometheus"]
    config_file = in_container(prometheus, PROMETHEUS_CONFIG)
    assert config_file, "prometheus.yml is not mounted"
    assert f"--config.file={config_file}" in prometheus["command"]
    for rules in prometheus_config["rule_files"]:
        rules_file = PROMETHEUS_CONFIG.parent / rules
        assert rules_file.exists(), f"rule file {rules} does not exist"
        assert in_container(prometheus, rules_file), f"{rules} is not mounted next to the config"
    assert all(str(v).endswith(":ro") for v in prometheus["volumes"] if str(v).startswith("."))


def test_prometheus_stores_exemplars(services: dict[str, dict[str, Any]]) -> None:
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]


def test_compose_mounts_the_grafana_provisioning_and_the_dashboards_where_the_provider_looks(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    assert in_container(grafana, DATASOURCES) == "/etc/grafana/provisioning/datasources/datasources.yml"
    assert in_container(grafana, DASHBOARD_PROVIDERS) == "/etc/grafana/provisioning/dashboards/dashboards.yml"
    provider_paths = {p["options"]["path"] for p in load_yaml(DASHBOARD_PROVIDERS)["providers"]}
    for dashboard in DASHBOARDS:
        seen_at = in_container(grafana, dashboard)
        assert seen_at, f"{dashboard.name} is not mounted"
        assert str(Path(seen_at).parent) in provider_paths, f"no provider loads {seen_at}"
    home = environment_of(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home in {in_container(grafana, d) for d in DASHBOARDS}


def test_grafana_lets_anonymous_users_view_and_takes_its_admin_password_from_the_env_file(
    services: dict[str, dict[str, Any]],
) -> None:
    environment = environment_of(services["grafana"])
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert INTERPOLATION.match(environment["GF_SECURITY_ADMIN_PASSWORD"])
    assert "GRAFANA_ADMIN_PASSWORD" in environment["GF_SECURITY_ADMIN_PASSWORD"]


def test_grafana_waits_for_a_healthy_prometheus_and_a_started_jaeger(
    services: dict[str, dict[str, Any]],
) -> None:
    dependencies = dependencies_of(services["grafana"])
    assert dependencies.get("prometheus") == "service_healthy"
    assert dependencies.get("jaeger") == "service_started"


def test_jaeger_accepts_otlp_and_the_python_services_send_their_traces_there(
    services: dict[str, dict[str, Any]],
) -> None:
    assert environment_of(services["jaeger"]).get("COLLECTOR_OTLP_ENABLED") == "true"
    for name in SERVICES_NEEDING_CERTS:
        environment = environment_of(services[name])
        assert environment.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://jaeger:4318", name
        # They run without a collector: never held back by Jaeger's health.
        assert dependencies_of(services[name]).get("jaeger", "service_started") == "service_started"


def test_python_services_serve_their_metrics_to_the_container_network(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVICES_NEEDING_CERTS:
        assert environment_of(services[name]).get("METRICS_HOST") == "0.0.0.0", name


def test_observability_uis_are_published_on_the_loopback_interface_only(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("prometheus", "grafana", "jaeger"):
        ports = [str(port) for port in services[name].get("ports") or []]
        assert ports, f"{name} publishes nothing"
        assert all(port.startswith("127.0.0.1:") for port in ports), f"{name}: {ports}"


def test_redis_exporter_reads_the_compose_redis(services: dict[str, dict[str, Any]]) -> None:
    exporter = services["redis-exporter"]
    assert environment_of(exporter).get("REDIS_ADDR") == "redis://redis:6379"
    assert dependencies_of(exporter).get("redis") == "service_healthy"


# --- observability: Grafana data sources and dashboards -------------------------------------


def test_prometheus_exemplars_link_to_the_jaeger_data_source(
    datasources: dict[str, dict[str, Any]],
) -> None:
    assert datasources["prometheus"]["type"] == "prometheus"
    assert datasources["prometheus"]["url"] == "http://prometheus:9090"
    links = datasources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "jaeger"} in links


def test_jaeger_data_source_links_traces_to_prometheus(datasources: dict[str, dict[str, Any]]) -> None:
    jaeger = datasources["jaeger"]
    assert jaeger["type"] == "jaeger" and jaeger["url"] == "http://jaeger:16686"
    assert jaeger["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"


def test_data_source_urls_name_compose_services(
    datasources: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    for uid, source in datasources.items():
        host = re.match(r"https?://([^:/]+)", source["url"])
        assert host and host.group(1) in services, f"data source {uid}: {source['url']}"


def test_every_dashboard_has_a_unique_uid_and_title(dashboards: dict[str, dict[str, Any]]) -> None:
    uids = [dashboard.get("uid") for dashboard in dashboards.values()]
    titles = [dashboard.get("title") for dashboard in dashboards.values()]
    assert all(uids) and all(titles)
    assert len(set(uids)) == len(uids), f"duplicate uid among {uids}"
    assert len(set(titles)) == len(titles), f"duplicate title among {titles}"
    # A provisioned dashboard keeps its URL only while its uid is fixed and valid.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(uid)) for uid in uids)


def test_every_dashboard_refers_to_provisioned_data_sources_by_uid(
    dashboards: dict[str, dict[str, Any]], datasources: dict[str, dict[str, Any]]
) -> None:
    for name, dashboard in dashboards.items():
        used = set(datasource_uids(dashboard))
        assert used, f"{name} names no data source"
        assert used <= set(datasources), f"{name}: unknown data source uids {used - set(datasources)}"
        for panel in dashboard_panels(dashboard):
            if panel["type"] != "row":
                assert isinstance(panel.get("datasource"), dict), f"{name}: {panel['title']}"


def test_every_dashboard_panel_has_a_query(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        panels = [panel for panel in dashboard_panels(dashboard) if panel["type"] != "row"]
        assert panels, f"{name} has no panel"
        for panel in panels:
            targets = panel.get("targets") or []
            assert targets, f"{name}: panel {panel.get('title')!r} has no target"
            for target in targets:
                assert str(target.get("expr", "")).strip(), f"{name}: {panel['title']!r} empty expr"
            ref_ids = [target["refId"] for target in targets]
            assert len(set(ref_ids)) == len(ref_ids), f"{name}: {panel['title']!r} refIds repeat"


def test_every_dashboard_panel_has_a_unique_id(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        ids = [panel["id"] for panel in dashboard_panels(dashboard)]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"


def test_dashboard_rates_use_the_rate_interval(dashboards: dict[str, dict[str, Any]]) -> None:
    # A fixed window is either too short for the scrape interval (no data) or blurs zooming.
    for name, dashboard in dashboards.items():
        for panel in dashboard_panels(dashboard):
            for target in panel.get("targets") or []:
                windows = re.findall(r"\b(?:rate|increase|irate)\([^\[]*\[([^\]]+)\]", target["expr"])
                assert all(w == "$__rate_interval" for w in windows), f"{name}: {target['expr']}"


def test_the_end_to_end_task_duration_panel_shows_exemplars(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    targets = [
        target
        for panel in dashboard_panels(dashboards["overview.json"])
        for target in panel.get("targets") or []
        if "provisioning_task_duration_seconds_bucket" in target.get("expr", "")
    ]
    assert targets and all(target.get("exemplar") for target in targets)


# --- docker/Dockerfile and .dockerignore ----------------------------------------------------


def test_dockerfile_base_images_are_pinned_to_a_patch_release() -> None:
    bases = [
        re.sub(r"^--platform=\S+\s+", "", arguments).split()[0]
        for instruction, arguments in dockerfile_instructions()
        if instruction == "FROM"
    ]
    assert bases, "no FROM in docker/Dockerfile"
    for base in bases:
        tag = base.rpartition(":")[2]
        assert "@sha256:" in base or re.match(r"\d+\.\d+\.\d+", tag), f"{base!r} is not pinned"


def test_image_runs_as_a_non_root_user() -> None:
    users = [args for instruction, args in dockerfile_instructions() if instruction == "USER"]
    assert users, "docker/Dockerfile never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_installs_exactly_what_uv_lock_pins() -> None:
    runs = [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]
    copied = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    assert any("uv.lock" in args.split() for args in copied), "uv.lock is not copied into the build"
    # A stale lock fails the build instead of being re-resolved or installed as it is.
    assert any(re.search(r"\buv export\b.*--locked", args) for args in runs), "no `uv export --locked`"
    pip_installs = [
        command
        for args in runs
        for command in re.split(r"&&|;", args)
        if re.search(r"\bpip install\b", command) and "uv==" not in command
    ]
    assert pip_installs, "docker/Dockerfile installs nothing with pip"
    for command in pip_installs:
        # Either the exported requirements, every hash checked, or the project without its deps.
        assert "--require-hashes" in command or "--no-deps" in command, command


def test_image_builds_with_the_uv_that_pyproject_pins() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pinned = pyproject["tool"]["uv"]["required-version"]
    arguments = dict(
        args.split("=", 1) for instruction, args in dockerfile_instructions() if instruction == "ARG"
    )
    assert f"=={arguments.get('UV_VERSION')}" == pinned, f"ARG UV_VERSION is not {pinned}"


def test_dockerignore_admits_everything_the_dockerfile_copies() -> None:
    admitted = {
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for instruction, arguments in dockerfile_instructions():
        if instruction != "COPY" or "--from=" in arguments:
            continue
        *sources, _destination = [word for word in arguments.split() if not word.startswith("--")]
        for source in sources:
            assert source.rstrip("/") in admitted, f".dockerignore keeps out {source}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore must start by excluding everything"
    for line in lines:
        if line.startswith("!"):
            admitted = line[1:].strip()
            assert not admitted.startswith((".env", "certs", ".venv", ".git", "reports"))
            assert not admitted.endswith((".pem", ".key")), f"{line!r} lets a key in"


# --- scripts/make-env.sh --------------------------------------------------------------------


def run_make_env(env_file: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "ENV_FILE": str(env_file), "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(MAKE_ENV)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )


def test_make_env_writes_private_url_safe_credentials(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_make_env(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert values["RABBITMQ_USER"] == "provisioning"
    assert re.fullmatch(r"[A-Za-z0-9_-]{24,}", values["RABBITMQ_PASS"]), "not URL-safe"


def test_make_env_never_replaces_an_existing_password(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_make_env(env_file)
    first = env_file.read_text()
    result = run_make_env(env_file)
    assert env_file.read_text() == first
    assert "unchanged" in result.stderr


def test_make_env_fills_in_an_empty_password(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=DEBUG\nRABBITMQ_PASS=\n")
    run_make_env(env_file)
    lines = env_file.read_text().splitlines()
    assert "LOG_LEVEL=DEBUG" in lines
    passwords = [line for line in lines if line.startswith("RABBITMQ_PASS=")]
    assert len(passwords) == 1 and len(passwords[0]) > len("RABBITMQ_PASS=") + 20


def test_make_env_writes_a_grafana_admin_password(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_make_env(env_file)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert re.fullmatch(r"[A-Za-z0-9_-]{24,}", values["GRAFANA_ADMIN_PASSWORD"])
    assert values["GRAFANA_ADMIN_PASSWORD"] != values["RABBITMQ_PASS"]


def test_compose_turns_on_bearer_authentication_with_a_generated_token(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_make_env(env_file)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert re.fullmatch(r"[A-Za-z0-9_-]{24,}", values["API_TOKEN"])
    assert values["API_TOKEN"] not in {values["RABBITMQ_PASS"], values["GRAFANA_ADMIN_PASSWORD"]}
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["service-b"]["environment"]["API_TOKENS"].startswith("${API_TOKEN:?")


def test_the_locust_services_only_set_options_the_locustfile_reads() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    sources = [ROOT / "loadtest" / "locustfile.py", *(ROOT / "loadtest" / "loadkit").glob("*.py")]
    read = {name for source in sources
            for name in re.findall(r'env_var="(LOAD_[A-Z_]+)"', source.read_text())}
    for name in ("locust", "locust-worker"):
        service = compose["services"][name]
        assert service["profiles"] == ["load"], "load generators never start with the platform"
        given = {key for key in service["environment"] if key.startswith("LOAD_")}
        assert given and given <= read, given - read


# --- the "ha" profile: a RabbitMQ cluster and Redis with Sentinel ----------------------------

HA_OVERRIDE = ROOT / "compose.ha.yaml"
HA_CONFIG = ROOT / "docker" / "ha"
RABBITMQ_NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
HA_SERVICES = {*RABBITMQ_NODES, "redis-primary", "redis-replica", *SENTINELS}


@pytest.fixture(scope="module")
def ha_override() -> dict[str, Any]:
    return load_yaml(HA_OVERRIDE)


def test_the_ha_services_start_only_with_the_ha_profile(services: dict[str, dict[str, Any]]) -> None:
    in_profile = {name for name, service in services.items() if "ha" in (service.get("profiles") or [])}
    assert in_profile == HA_SERVICES
    assert all(services[name]["profiles"] == ["ha"] for name in HA_SERVICES)
    # The default profile is what it was: the platform and its single RabbitMQ and Redis.
    for name in ("rabbitmq", "redis", *SERVICES_NEEDING_CERTS):
        assert not services[name].get("profiles"), name


def test_the_rabbitmq_nodes_share_one_cookie_from_the_env_file(
    services: dict[str, dict[str, Any]],
) -> None:
    cookies = {environment_of(services[name]).get("RABBITMQ_ERLANG_COOKIE") for name in RABBITMQ_NODES}
    (cookie,) = cookies
    assert cookie and INTERPOLATION.match(cookie) and "RABBITMQ_ERLANG_COOKIE" in cookie
    for name in RABBITMQ_NODES:
        environment = environment_of(services[name])
        for variable in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
            assert INTERPOLATION.match(environment[variable]), f"{name}: {variable}"


def test_the_rabbitmq_nodes_form_a_cluster_by_classic_config_peer_discovery(
    services: dict[str, dict[str, Any]],
) -> None:
    config = (HA_CONFIG / "rabbitmq-cluster.conf").read_text(encoding="utf-8")
    assert re.search(r"^cluster_formation\.peer_discovery_backend = classic_config$", config, re.M)
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$", config, re.M)
    assert sorted(listed) == sorted(services[name]["hostname"] for name in RABBITMQ_NODES)
    for name in RABBITMQ_NODES:
        service = services[name]
        assert in_container(service, HA_CONFIG / "rabbitmq-cluster.conf") == "/etc/rabbitmq/conf.d/20-cluster.conf"
        assert all(str(v).endswith(":ro") for v in service["volumes"] if str(v).startswith("."))
        assert service["healthcheck"]["test"], name
    # Each node keeps its own data.
    data = [next(str(v) for v in services[n]["volumes"] if str(v).endswith(":/var/lib/rabbitmq"))
            for n in RABBITMQ_NODES]
    assert len(set(data)) == len(RABBITMQ_NODES)


def test_redis_runs_a_master_a_replica_and_three_sentinels(services: dict[str, dict[str, Any]]) -> None:
    replica = services["redis-replica"]["command"]
    assert replica[replica.index("--replicaof") + 1:][:2] == ["redis-primary", "6379"]
    config = (HA_CONFIG / "sentinel.conf").read_text(encoding="utf-8")
    monitor = re.search(r"^sentinel monitor (\S+) (\S+) (\d+) (\d+)$", config, re.M)
    assert monitor and monitor.group(2) == "redis-primary" and monitor.group(3) == "6379"
    assert int(monitor.group(4)) == len(SENTINELS) // 2 + 1, "a majority of the sentinels"
    assert re.search(r"^sentinel resolve-hostnames yes$", config, re.M)
    for name in SENTINELS:
        assert "--sentinel" in " ".join(services[name]["command"]), name
        assert in_container(services[name], HA_CONFIG / "sentinel.conf"), name


def test_the_ha_override_points_service_b_and_the_workers_at_the_cluster(
    ha_override: dict[str, Any], services: dict[str, dict[str, Any]],
) -> None:
    assert set(ha_override["services"]) == {"service-b", "worker"}
    known = variables_the_code_reads()
    config = (HA_CONFIG / "sentinel.conf").read_text(encoding="utf-8")
    master = re.search(r"^sentinel monitor (\S+)", config, re.M)
    for name, override in ha_override["services"].items():
        environment = environment_of(override)
        assert set(environment) <= known, f"{name}: {set(environment) - known}"
        urls = environment["AMQP_URL"].split(",")
        hosts = [re.match(r"^amqp://([^@]+)@([^:/]+):5672/$", url) for url in urls]
        assert all(hosts) and [h.group(2) for h in hosts if h] == list(RABBITMQ_NODES), urls
        for match in hosts:
            assert match is not None
            user, _, password = match.group(1).partition("}:")
            assert INTERPOLATION.match(user + "}") and INTERPOLATION.match(password), name
        assert environment["QUORUM_INITIAL_GROUP_SIZE"] == str(len(RABBITMQ_NODES))
        sentinels = environment["REDIS_SENTINELS"].split(",")
        assert sentinels == [f"{sentinel}:26379" for sentinel in SENTINELS]
        assert master and environment["REDIS_SENTINEL_MASTER"] == master.group(1)
        for target, condition in dependencies_of(override).items():
            assert target in HA_SERVICES and condition == "service_healthy", target
            assert services[target]["healthcheck"]["test"], target


def test_make_env_writes_an_erlang_cookie(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    run_make_env(env_file)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert re.fullmatch(r"[0-9a-f]{48}", values["RABBITMQ_ERLANG_COOKIE"])
    assert values["RABBITMQ_ERLANG_COOKIE"] not in {values["RABBITMQ_PASS"], values["API_TOKEN"]}
