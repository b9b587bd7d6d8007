"""Every PromQL expression of every Grafana dashboard, run against live data.

The real platform (stub, Service B, worker pool) runs as processes, each serving /metrics on a
free port; a second RabbitMQ node with the rabbitmq_prometheus plugin carries its queues (the
machine's own node is left alone); the Redis exporter reads the machine's Redis; Prometheus
runs with the project's own prometheus.yml and alerts.yml, only the targets rewritten to those
local ports. After tasks that complete, fail and hit unknown devices, and poison messages that
get dead-lettered, each panel query must return data: a renamed metric or label, a wrong
scrape path or a PromQL typo fails here, not in front of a user staring at "No data".

The tasks are waited for the ways a client can: long-polls (one of them timing out), one
Server-Sent Events stream, and a webhook each, delivered to the devkit's HTTPS receiver, which
answers some of them 500 (retried), 410 (gone) or 500 until the short retry schedule is used
up (dead-lettered), so the completion-notice panels show real traffic, not only zeros.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cpe_devkit.client import STILL_RUNNING, Client, client_session, request_body, status_path
from cpe_devkit.environment import MACHINE_REDIS_URL, platform_environment
from cpe_devkit.probes import publish_raw
from cpe_devkit.rabbit_node import PROMETHEUS_PLUGIN, RabbitNode, rabbitmq_scripts
from cpe_devkit.run_data import delete_run_data
from cpe_devkit.stack import Stack
from cpe_devkit.webhook_receiver import ReceivedWebhook, WebhookReceiver, new_secret
from provisioning.webhooks.notice import webhook_id
from tests.support.services import REPO

from .processes import OtlpSink, PrometheusServer, PrometheusTools, RedisExporter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DASHBOARDS = sorted((REPO / "observability" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_CONFIG = REPO / "observability" / "prometheus" / "prometheus.yml"
ALERT_RULES = REPO / "observability" / "prometheus" / "alerts.yml"

# What Grafana puts in place of its variables; the test scrapes every second.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "5m"}
SCRAPE_INTERVAL_SECONDS = 1
WORKER_PROCESSES = 2

GOOD_IDS = [f"OBSGOOD{i:03d}" for i in range(6)]
FAILING_ID = "OBSFAIL001"
UNKNOWN_ID = "OBSUNKNOWN1"
BODY = request_body(password="obs-secret", interfaces=(1, 2))
WEBHOOK_SECRET = new_secret()
WEBHOOK_RETRY_SCHEDULE = "0.2,0.2"  # two quick retries: a third failed attempt dead-letters
LONG_POLL_SECONDS = 10

# Compose service -> (the base metrics port prometheus.yml uses, the variable that sets it).
METRICS_BASES = {
    "service-b": (9110, "API_METRICS_PORT"),
    "stub": (9100, "STUB_METRICS_PORT"),
    "worker": (9120, "WORKER_METRICS_PORT"),
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    exemplar: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}: {self.panel} [{self.ref_id}]"

    def promql(self) -> str:
        expression = self.expr
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        return expression


def panel_queries() -> list[PanelQuery]:
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                queries.append(PanelQuery(path.stem, panel["title"], target["refId"], target["expr"],
                                          bool(target.get("exemplar"))))
    return queries


def exemplar_metrics() -> list[str]:
    """The histograms whose exemplars the dashboards show."""
    names = {
        match
        for query in panel_queries() if query.exemplar
        for match in re.findall(r"([a-z_]+)_bucket\b", query.expr)
    }
    return sorted(names)


# --- the project's prometheus.yml, pointed at this machine ---------------------------------


@dataclass(frozen=True)
class LocalPorts:
    prometheus: int
    rabbitmq_metrics: int
    redis_exporter: int
    metrics_bases: dict[str, int]  # compose service -> local base port

    def address(self, host: str, port: int) -> str:
        """The local address standing in for ``host:port`` of the compose network."""
        if host in self.metrics_bases:
            compose_base = METRICS_BASES[host][0]
            return f"127.0.0.1:{self.metrics_bases[host] + port - compose_base}"
        single = {("localhost", 9090): self.prometheus, ("prometheus", 9090): self.prometheus,
                  ("rabbitmq", 15692): self.rabbitmq_metrics,
                  ("redis-exporter", 9121): self.redis_exporter}
        if (host, port) not in single:
            raise AssertionError(f"prometheus.yml scrapes {host}:{port}, which this test cannot run")
        return f"127.0.0.1:{single[(host, port)]}"


def localised(config: dict[str, Any], ports: LocalPorts) -> dict[str, Any]:
    """prometheus.yml with every target moved to 127.0.0.1; paths, params, labels and
    relabelling untouched. DNS service discovery becomes the static addresses it would find."""
    config = copy.deepcopy(config)
    config["global"].update(
        scrape_interval=f"{SCRAPE_INTERVAL_SECONDS}s", scrape_timeout=f"{SCRAPE_INTERVAL_SECONDS}s",
        evaluation_interval=f"{SCRAPE_INTERVAL_SECONDS}s",
    )
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        static = []
        for group in job.pop("static_configs", []):
            targets = [ports.address(*split(target)) for target in group["targets"]]
            static.append({**group, "targets": targets})
        for sd in job.pop("dns_sd_configs", []):
            assert sd.get("type", "SRV") == "A", f"job {job['job_name']}: only A lookups are mapped"
            static.append({"targets": [ports.address(name, sd["port"]) for name in sd["names"]]})
        unknown = {key for key in job if key.endswith("_sd_configs")}
        assert not unknown, f"job {job['job_name']}: {unknown} not mapped by this test"
        job["static_configs"] = static
    return config


def split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


# --- traffic --------------------------------------------------------------------------------


# Equipment id -> how the receiver answers its task's webhook (200 past these) and the attempts
# it then gets. The schedule allows three attempts: the third 500 dead-letters.
WEBHOOK_SCRIPT: dict[str, tuple[tuple[int, ...], int]] = {
    GOOD_IDS[0]: ((500,), 2),  # retried, then delivered
    UNKNOWN_ID: ((410,), 1),  # gone: never retried
    FAILING_ID: ((500, 500, 500), 3),  # past the schedule: dead-lettered
}


async def run_tasks(stack: Stack, hooks: WebhookReceiver, timeout: float = 30.0) -> None:
    """Tasks that complete, fail at Service A and hit an unknown device, each with a webhook,
    long-polled to the end (one also followed by an event stream, one long-poll left to time
    out); plus a bad id (404 at once) and a bad body (400). Returns once every webhook has had
    its last attempt."""
    async with client_session(stack.ca_file) as session:
        client = Client(session, stack.api_url)
        tasks = []
        for equipment_id in [*GOOD_IDS, FAILING_ID, UNKNOWN_ID]:
            status, answer = await client.create(equipment_id, {**BODY, "callbackUrl": hooks.url})
            assert status == 200, f"creating a task for {equipment_id}: {status} {answer}"
            task_id = answer["taskId"]
            # The stub takes 0.5 s: the answers are scripted long before the webhook is sent.
            hooks.answer(*WEBHOOK_SCRIPT.get(equipment_id, ((), 1))[0], webhook_id=webhook_id(task_id))
            tasks.append((equipment_id, task_id))
            if len(tasks) == 1:
                # Just created, so still with the stub (0.5 s): a 50 ms wait runs out.
                _, answer = await long_poll(client, equipment_id, task_id, wait=0.05)
                assert answer.get("code") == STILL_RUNNING, f"a 50 ms long-poll outlived its task: {answer}"
        assert (await client.create("x", BODY))[0] == 404
        assert (await client.create(GOOD_IDS[0], raw=b"{not json"))[0] == 400
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                event_stream(client, tasks[len(GOOD_IDS) - 1][1]),
                *(long_poll_to_the_end(client, equipment_id, task_id) for equipment_id, task_id in tasks),
            )
        await asyncio.gather(*(last_attempt(hooks, equipment_id, task_id, timeout)
                               for equipment_id, task_id in tasks))


async def long_poll(client: Client, equipment_id: str, task_id: str, wait: float
                    ) -> tuple[int, dict[str, Any]]:
    url = f"{client.base}{status_path(equipment_id, task_id)}"
    async with client.session.get(url, params={"wait": str(wait)}) as response:
        return response.status, await response.json()


async def long_poll_to_the_end(client: Client, equipment_id: str, task_id: str) -> None:
    """Long-poll until the task is final (a wait may end early: then ask again)."""
    while True:
        _, answer = await long_poll(client, equipment_id, task_id, LONG_POLL_SECONDS)
        if answer.get("code") != STILL_RUNNING:
            return


async def event_stream(client: Client, task_id: str) -> None:
    """Read a completing task's event stream to its end (it closes after the final event)."""
    url = f"{client.base}/api/v2/tasks/{task_id}/events"
    async with client.session.get(url, headers={"Accept": "text/event-stream"}) as response:
        assert response.status == 200, await response.text()
        body = await response.text()
    assert "event: completed" in body, f"the stream ended before the final event: {body!r}"


async def last_attempt(hooks: WebhookReceiver, equipment_id: str, task_id: str, timeout: float
                       ) -> ReceivedWebhook:
    """The last call the task's webhook gets: its delivery, or the failure that ends it."""
    attempts = WEBHOOK_SCRIPT.get(equipment_id, ((), 1))[1]
    expected = webhook_id(task_id)

    def is_last(call: ReceivedWebhook) -> bool:
        return call.webhook_id == expected and call.attempt == attempts

    return await asyncio.to_thread(hooks.wait_for, is_last, timeout)


async def publish_poison(amqp_url: str, queues: list[str]) -> None:
    """A message that is not JSON on each queue: its consumer must dead-letter it."""
    for queue in queues:
        await publish_raw(amqp_url, queue, b"not json")


# --- the whole set-up -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(
    prometheus_tools: PrometheusTools, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Prometheus that has scraped the platform at least twice after its traffic."""
    prometheus_binary = prometheus_tools.require("prometheus")
    exporter_binary = prometheus_tools.require("prometheus-redis-exporter")
    scripts = rabbitmq_scripts()
    if scripts is None:
        pytest.skip("rabbitmq-server is not installed: no RabbitMQ node for the queue metrics")
    work = tmp_path_factory.mktemp("observability")

    with ExitStack() as cleanup:
        rabbit = RabbitNode(work / "rabbitmq", plugins=(PROMETHEUS_PLUGIN,), scripts=scripts)
        rabbit.launch()  # it takes ~10 s: the others start meanwhile
        cleanup.callback(rabbit.close)
        exporter = RedisExporter(exporter_binary, MACHINE_REDIS_URL.rsplit("/", 1)[0], work)
        exporter.start()
        cleanup.callback(exporter.stop)

        sink = OtlpSink()
        hooks = WebhookReceiver(cert_dir, WEBHOOK_SECRET)
        hooks.start()
        cleanup.callback(hooks.stop)
        environment = platform_environment(
            cert_dir, tag="obs", work_dir=work, worker_processes=WORKER_PROCESSES,
            inherit={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            AMQP_URL=rabbit.amqp_url, STUB_DELAY_SECONDS="0.5", STUB_FAIL_IDS=FAILING_ID,
            STUB_UNKNOWN_IDS=UNKNOWN_ID, SERVICE_A_ATTEMPTS="2", SERVICE_A_BACKOFF_SECONDS="0.05",
            METRICS_HOST="127.0.0.1", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink.port}",
            OTEL_BSP_SCHEDULE_DELAY="500", WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
            WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_SECRET=WEBHOOK_SECRET,
            WEBHOOK_CA_FILE=str(cert_dir / "ca.pem"), WEBHOOK_RETRY_SCHEDULE=WEBHOOK_RETRY_SCHEDULE,
        )
        bases = {service: int(environment[variable]) for service, (_, variable) in METRICS_BASES.items()}
        server = PrometheusServer(prometheus_binary, work)
        ports = LocalPorts(server.port, rabbit.prometheus_port, exporter.port, bases)
        server.start(localised(yaml.safe_load(PROMETHEUS_CONFIG.read_text()), ports))
        cleanup.callback(server.stop)

        rabbit.wait_ready()
        exporter.wait_ready()
        server.wait_ready()

        sink.start()
        cleanup.callback(sink.stop)

        stack = Stack(environment, log_dir=work / "platform")
        cleanup.callback(lambda: asyncio.run(delete_run_data(environment)))
        stack.start()
        cleanup.callback(stack.stop)
        stack.wait_ready(timeout=60)

        asyncio.run(run_tasks(stack, hooks))
        asyncio.run(publish_poison(rabbit.amqp_url,
                                   [environment["TASKS_QUEUE"], environment["RESULTS_QUEUE"]]))
        wait_for_scrapes_after(server, time.time() + 0.5, scrapes=3)
        yield server


def wait_for_scrapes_after(server: PrometheusServer, moment: float, scrapes: int,
                           timeout: float = 30.0) -> None:
    """Until every target has been scraped ``scrapes`` times after ``moment``."""
    needed = moment + scrapes * SCRAPE_INTERVAL_SECONDS
    deadline = time.monotonic() + timeout
    while True:
        latest = server.query("min(timestamp(up))")
        if latest and float(latest[0]["value"][1]) >= needed:
            return
        assert time.monotonic() < deadline, f"Prometheus did not scrape every target within {timeout} s"
        time.sleep(0.5)


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("job", [job["job_name"] for job in
                                 yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]])
def test_every_target_of_the_scrape_job_is_up(prometheus: PrometheusServer, job: str) -> None:
    series = prometheus.query(f'up{{job="{job}"}}')
    assert series, f"job {job} has no target"
    down = [s["metric"]["instance"] for s in series if s["value"][1] != "1"]
    assert not down, f"job {job}: {down} down (see http://<prometheus>/targets for the error)"


@pytest.mark.parametrize("query", panel_queries(), ids=lambda query: query.id)
def test_dashboard_panel_query_returns_data(prometheus: PrometheusServer, query: PanelQuery) -> None:
    promql = query.promql()
    assert "$" not in promql, f"a Grafana variable this test does not know: {promql}"
    result = prometheus.query(promql)
    assert result, f"no data for {promql}"


# What the traffic left in the completion-notice series: each expression has data only when
# it holds, so the new panels are shown drawing real events, not only the series at zero.
TASKS = len(GOOD_IDS) + 2
DELIVERED = len(GOOD_IDS)
RETRIED = sum(attempts - 1 for _, attempts in WEBHOOK_SCRIPT.values())
COMPLETION_TRAFFIC = {
    "long-polls answered final": f'sum(provisioning_api_long_poll_answers_total{{outcome="final"}}) >= {TASKS}',
    "a long-poll timed out": 'sum(provisioning_api_long_poll_answers_total{outcome="timeout"}) >= 1',
    "every Service B process subscribed": "min(provisioning_api_event_subscription_up) == 1",
    "task event notices received": f"min(provisioning_api_event_notices_total) >= {TASKS}",
    "an event stream answered": 'sum(http_server_requests_total{route=~".+/events", status="200"}) >= 1',
    "webhooks queued": f"sum(provisioning_api_webhooks_queued_total) >= {TASKS}",
    "webhooks delivered": f'sum(provisioning_webhook_deliveries_total{{outcome="delivered"}}) >= {DELIVERED}',
    "webhooks retried": f'sum(provisioning_webhook_deliveries_total{{outcome="retried"}}) >= {RETRIED}',
    "a webhook gone": 'sum(provisioning_webhook_deliveries_total{outcome="gone"}) >= 1',
    "a webhook dead-lettered":
        'sum(provisioning_webhooks_dead_lettered_total{reason="schedule_exhausted"}) >= 1',
    "attempts answered 5xx": 'sum(provisioning_webhook_attempts_total{result="5xx"}) >= 3',
    "delivery latencies observed":
        f"sum(provisioning_webhook_delivery_latency_seconds_count) >= {DELIVERED}",
}


@pytest.mark.parametrize("expression", COMPLETION_TRAFFIC.values(), ids=COMPLETION_TRAFFIC.keys())
def test_completion_notice_traffic_shows_in_its_series(prometheus: PrometheusServer,
                                                       expression: str) -> None:
    assert prometheus.query(expression), f"not true on the scraped series: {expression}"


@pytest.mark.parametrize("metric", exemplar_metrics())
def test_histogram_carries_trace_id_exemplars(prometheus: PrometheusServer, metric: str) -> None:
    now = time.time()
    found = prometheus.api("query_exemplars", query=f"{metric}_bucket",
                           start=str(now - 600), end=str(now))
    exemplars = [e for series in found for e in series["exemplars"]]
    assert exemplars, f"no exemplar on {metric}"
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["labels"].get("trace_id", "")) for e in exemplars)


def test_alert_rules_evaluate_without_errors_on_live_metrics(prometheus: PrometheusServer) -> None:
    deadline = time.monotonic() + 10
    while True:
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("2") for rule in rules):
            break
        assert time.monotonic() < deadline, "rules were not evaluated within 10 s"
        time.sleep(0.5)
    expected = {rule["alert"] for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
                for rule in group["rules"]}
    assert {rule["name"] for rule in rules} == expected
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken
