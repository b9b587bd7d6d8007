"""Every metric of ours that a dashboard panel or an alert rule names is one the code defines,
and every panel says what it shows. No process, no Prometheus: a renamed instrument fails here
in a second, before the live test (``test_dashboards_query_live``) would find "No data".

Metrics of ours are those under the prefixes the platform, the stub and prometheus_client's
process collector use; RabbitMQ's and Redis's series are checked by the live test only.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from equipment_stub.metrics import StubMetrics
from provisioning.telemetry.metrics import ApiMetrics, WorkerMetrics
from tests.support.services import REPO

OBSERVABILITY = REPO / "observability"
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
ALERT_RULES = OBSERVABILITY / "prometheus" / "alerts.yml"
OUR_PREFIXES = ("provisioning_", "http_server_", "equipment_stub_", "process_")
# The series each instrument type exposes, after the family's name.
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum",
                                                                           "_created"),
            "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def exposed_names(registry: CollectorRegistry) -> set[str]:
    return {family.name + suffix for family in registry.collect()
            for suffix in SUFFIXES.get(family.type, ("",))}


@cache
def defined_metrics() -> frozenset[str]:
    """Every series name Service B, a worker process and the stub can expose."""
    registries = (ApiMetrics().registry, WorkerMetrics().registry, StubMetrics().registry)
    return frozenset(name for registry in registries for name in exposed_names(registry))


def our_metrics_in(expression: str) -> set[str]:
    without_strings = STRING.sub('""', expression)
    return {name for name in IDENTIFIER.findall(without_strings) if name.startswith(OUR_PREFIXES)}


def panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            found += [(path.stem, panel), *((path.stem, inner) for inner in panel.get("panels") or [])]
    return found


def queries() -> list[tuple[str, str]]:
    """(where, expression) of every panel target and every alert rule."""
    found = [(f"{dashboard}: {panel['title']} [{target['refId']}]", target["expr"])
             for dashboard, panel in panels() for target in panel.get("targets") or []]
    rules = yaml.safe_load(Path(ALERT_RULES).read_text(encoding="utf-8"))
    found += [(f"alert {rule['alert']}", rule["expr"])
              for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    return found


def test_the_code_defines_the_metrics_it_is_checked_against() -> None:
    # A guard for the test itself: an empty set would make every query below pass.
    assert {"provisioning_tasks_created_total", "provisioning_webhook_delivery_latency_seconds_bucket",
            "equipment_stub_answers_total", "process_cpu_seconds_total"} <= defined_metrics()


@pytest.mark.parametrize(("where", "expression"), queries(), ids=[where for where, _ in queries()])
def test_query_names_only_metrics_the_code_defines(where: str, expression: str) -> None:
    unknown = sorted(our_metrics_in(expression) - defined_metrics())
    assert not unknown, f"{where}: no instrument defines {unknown}"


@pytest.mark.parametrize(("dashboard", "panel"),
                         [(dashboard, panel) for dashboard, panel in panels() if panel["type"] != "row"],
                         ids=lambda value: value["title"] if isinstance(value, dict) else value)
def test_every_panel_explains_what_it_shows(dashboard: str, panel: dict[str, Any]) -> None:
    description = str(panel.get("description", "")).strip()
    assert len(description.split()) >= 4, f"{dashboard}: {panel['title']!r} has no description"
