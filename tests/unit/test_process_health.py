"""A process's metrics server also answers /health from the process's own checks (the worker
pool's probes), and /metrics as before."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cpe_devkit.ports import free_port
from cpe_devkit.processes import http_get
from provisioning.instrumentation.prometheus import ProcessMetrics


@pytest.fixture
def served() -> Iterator[tuple[ProcessMetrics, str]]:
    metrics, port = ProcessMetrics(), free_port()
    metrics.serve("127.0.0.1", port)
    yield metrics, f"http://127.0.0.1:{port}"
    metrics.close()


def test_health_is_200_naming_its_checks_while_every_check_holds(served: tuple[ProcessMetrics, str]) -> None:
    metrics, url = served
    metrics.health = lambda: {"rabbitmq": True, "consuming": True}
    status, body = http_get(f"{url}/health")
    assert (status, json.loads(body)) == (200, {"status": "ok", "rabbitmq": True, "consuming": True})


def test_health_is_503_naming_the_check_that_fails(served: tuple[ProcessMetrics, str]) -> None:
    metrics, url = served
    metrics.health = lambda: {"rabbitmq": False, "consuming": True}
    status, body = http_get(f"{url}/health")
    assert (status, json.loads(body)) == (503, {"status": "unavailable", "rabbitmq": False,
                                                "consuming": True})


def test_metrics_are_served_beside_health(served: tuple[ProcessMetrics, str]) -> None:
    _, url = served
    status, body = http_get(f"{url}/metrics")
    assert status == 200 and b"process_resident_memory_bytes" in body


def test_a_named_state_is_shown_but_fails_no_check(served: tuple[ProcessMetrics, str]) -> None:
    # The worker's rabbitmqBlocked: a broker alarm, which a restart or a drain cannot cure.
    metrics, url = served
    metrics.health = lambda: {"rabbitmq": True, "consuming": True, "rabbitmqBlocked": "low on disk"}
    status, body = http_get(f"{url}/health")
    assert (status, json.loads(body)) == (200, {"status": "ok", "rabbitmq": True, "consuming": True,
                                                "rabbitmqBlocked": "low on disk"})
