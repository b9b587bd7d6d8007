"""The Prometheus configuration and alert rules, checked and unit-tested by promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import REPO

from .processes import PrometheusTools

PROMETHEUS_DIR = REPO / "observability" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
SEVERITIES = {"critical", "warning", "info"}


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


def alert_rules() -> list[dict[str, Any]]:
    rules = [rule for group in load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]
    assert rules, "alerts.yml defines no alert"
    return rules


def rule_tests() -> list[dict[str, Any]]:
    return [case for test in load(RULE_TESTS)["tests"] for case in test.get("alert_rule_test") or []]


def run_promtool(promtool: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *arguments], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_prometheus_config_and_the_rules_it_loads_are_valid(
    prometheus_tools: PrometheusTools, tmp_path: Path
) -> None:
    promtool = prometheus_tools.require("promtool")
    # A copy: promtool resolves rule_files from the config's directory, and the check must not
    # depend on (or write into) the work tree.
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS_DIR, copy)
    result = run_promtool(promtool, "check", "config", str(copy / "prometheus.yml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests(prometheus_tools: PrometheusTools) -> None:
    promtool = prometheus_tools.require("promtool")
    result = run_promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_alert_rules_and_their_tests_test_the_same_file() -> None:
    assert load(CONFIG)["rule_files"] == [RULES.name]
    assert load(RULE_TESTS)["rule_files"] == [RULES.name]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_a_duration_a_severity_and_explanations(rule: dict[str, Any]) -> None:
    assert rule.get("for"), "no `for:`: one bad scrape would page"
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip(), "no summary annotation"
    assert annotations.get("description", "").strip(), "no description annotation"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_unit_tested_both_firing_and_quiet(rule: dict[str, Any]) -> None:
    cases = [case for case in rule_tests() if case["alertname"] == rule["alert"]]
    assert any(case.get("exp_alerts") for case in cases), "no test where it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no test where it stays quiet"


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
