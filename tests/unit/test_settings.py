"""Settings come from the environment, with defaults, and a bad value names its variable."""

from __future__ import annotations

import pytest

from equipment_stub.settings import StubSettings
from provisioning.errors import SettingsError
from provisioning.settings import ApiSettings, EquipmentConcurrency, WorkerSettings


def test_defaults_match_the_documented_addresses_and_names() -> None:
    api = ApiSettings.from_env({})
    worker = WorkerSettings.from_env({})
    stub = StubSettings.from_env({})
    assert (api.host, api.port) == ("127.0.0.1", 8081)
    assert (stub.host, stub.port) == ("127.0.0.1", 8080)
    assert worker.service_a_url == "https://127.0.0.1:8080"
    assert api.broker.tasks_queue == "tasks_queue"
    assert api.broker.results_queue == "results_queue"
    assert api.redis.task_ttl_seconds == 86_400
    assert stub.behaviour.delay_seconds == 60.0


def test_stub_id_lists_are_comma_separated() -> None:
    stub = StubSettings.from_env({"STUB_FAIL_IDS": "AAA111, BBB222,,", "STUB_UNKNOWN_IDS": "CCC333"})
    assert stub.behaviour.fail_ids == {"AAA111", "BBB222"}
    assert stub.behaviour.unknown_ids == {"CCC333"}


@pytest.mark.parametrize(
    ("component", "variable", "value", "problem"),
    [
        (ApiSettings, "API_PORT", "eighty", "must be an integer"),
        (ApiSettings, "API_WORKERS", "0", "must be at least 1"),
        (ApiSettings, "TASK_TTL_SECONDS", "0", "must be at least 1"),
        (ApiSettings, "RESULTS_QUEUE", "tasks_queue", "must differ from TASKS_QUEUE"),
        (ApiSettings, "REDIS_URL", "  ", "must not be empty"),
        (ApiSettings, "EQUIPMENT_MAX_WAITING", "0", "must be at least 1"),
        (ApiSettings, "EQUIPMENT_CONCURRENCY", "queue", "must be one of parallel, reject, serialize"),
        (ApiSettings, "PUBLISH_TIMEOUT_SECONDS", "nan", "must be a finite number, got 'nan'"),
        (ApiSettings, "RECONNECT_MAX_SECONDS", "inf", "must be a finite number, got 'inf'"),
        (ApiSettings, "AMQP_HEARTBEAT_SECONDS", "0", "must be at least 1"),
        (ApiSettings, "AMQP_HEARTBEAT_SECONDS", "3601", "must be at most 3600"),
        (ApiSettings, "AMQP_HEARTBEAT_SECONDS", "two", "must be an integer"),
        (WorkerSettings, "WORKER_CONFIRM_TIMEOUT_SECONDS", "0.05", "must be at least 0.1"),
        (WorkerSettings, "WORKER_CONFIRM_TIMEOUT_SECONDS", "3601", "must be at most 3600"),
        (WorkerSettings, "WORKER_CONFIRM_TIMEOUT_SECONDS", "nan", "must be a finite number"),
    ],
)
def test_a_bad_setting_names_the_variable(component: type[ApiSettings] | type[WorkerSettings],
                                          variable: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        component.from_env({variable: value})
    assert caught.value.variable == variable
    assert problem in str(caught.value)


def test_the_worker_only_calls_service_a_over_https() -> None:
    with pytest.raises(SettingsError, match="SERVICE_A_URL must be an https:// URL"):
        WorkerSettings.from_env({"SERVICE_A_URL": "http://127.0.0.1:8080"})


def test_the_stub_failure_ratio_is_a_ratio() -> None:
    with pytest.raises(SettingsError, match="STUB_FAILURE_RATIO must be between 0 and 1"):
        StubSettings.from_env({"STUB_FAILURE_RATIO": "1.5"})


def test_serialize_mode_waits_at_most_a_hundred_tasks_per_device_unless_told() -> None:
    settings = ApiSettings.from_env({"EQUIPMENT_CONCURRENCY": "serialize"})
    assert settings.equipment_concurrency is EquipmentConcurrency.SERIALIZE
    assert settings.max_waiting == 100
    assert ApiSettings.from_env({"EQUIPMENT_MAX_WAITING": "7"}).max_waiting == 7
    assert [mode.exclusive for mode in EquipmentConcurrency] == [False, True, True]


def test_redis_cluster_is_off_unless_told_and_excludes_sentinel() -> None:
    assert ApiSettings.from_env({}).redis.cluster is False
    assert ApiSettings.from_env({"REDIS_CLUSTER": "true"}).redis.cluster is True
    with pytest.raises(SettingsError) as caught:
        ApiSettings.from_env({"REDIS_CLUSTER": "true", "REDIS_SENTINELS": "127.0.0.1:26379"})
    assert caught.value.variable == "REDIS_CLUSTER"


def test_every_broker_url_asks_for_the_amqp_heartbeat_sixty_seconds_unless_told() -> None:
    assert ApiSettings.from_env({}).broker.heartbeat_seconds == 60
    assert ApiSettings.from_env({}).broker.url == "amqp://guest:guest@127.0.0.1:5672/?heartbeat=60"
    broker = WorkerSettings.from_env({
        "AMQP_HEARTBEAT_SECONDS": "3",
        "AMQP_URLS": "amqp://u:p@a:5672/vh?heartbeat=600&name=x,amqps://u:p@b:5671/",
    }).broker
    assert broker.heartbeat_seconds == 3
    assert broker.urls == ("amqp://u:p@a:5672/vh?name=x&heartbeat=3",
                           "amqps://u:p@b:5671/?heartbeat=3")


def test_both_http_servers_read_the_same_http_bounds_with_documented_defaults() -> None:
    environment = {"HTTP_REQUEST_TIMEOUT_SECONDS": "2.5", "HTTP_REQUEST_DEADLINE_SECONDS": "7",
                   "HTTP_KEEP_ALIVE_TIMEOUT_SECONDS": "30", "HTTP_MAX_CONNECTIONS": "500"}
    assert ApiSettings.from_env(environment).http == StubSettings.from_env(environment).http
    told = ApiSettings.from_env(environment).http
    assert (told.request_timeout_seconds, told.request_deadline_seconds,
            told.keep_alive_timeout_seconds, told.max_connections) == (2.5, 7.0, 30.0, 500)
    default = StubSettings.from_env({}).http
    assert (default.request_timeout_seconds, default.request_deadline_seconds,
            default.keep_alive_timeout_seconds, default.max_connections) == (10.0, 10.0, 120.0, 10_000)


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("HTTP_REQUEST_TIMEOUT_SECONDS", "0.1", "must be at least 0.5"),
    ("HTTP_REQUEST_TIMEOUT_SECONDS", "301", "must be at most 300"),
    ("HTTP_REQUEST_DEADLINE_SECONDS", "301", "must be at most 300"),
    ("HTTP_REQUEST_DEADLINE_SECONDS", "5", "must be at least HTTP_REQUEST_TIMEOUT_SECONDS (10.0)"),
    ("HTTP_KEEP_ALIVE_TIMEOUT_SECONDS", "3601", "must be at most 3600"),
    ("HTTP_MAX_CONNECTIONS", "0", "must be at least 1"),
    ("HTTP_MAX_CONNECTIONS", "1000001", "must be at most 1000000"),
    ("HTTP_MAX_CONNECTIONS", "many", "must be an integer"),
])
def test_an_http_bound_out_of_range_names_the_variable(variable: str, value: str, problem: str) -> None:
    for settings in (ApiSettings, StubSettings):
        with pytest.raises(SettingsError) as caught:
            settings.from_env({variable: value})
        assert caught.value.variable == variable
        assert problem in str(caught.value)


def test_a_creates_bounds_and_the_json_content_type_come_from_the_environment() -> None:
    default = ApiSettings.from_env({})
    assert (default.request_limits.max_timeout_seconds, default.request_limits.max_interfaces,
            default.request_limits.max_interface_number,
            default.request_limits.max_credential_length) == (3600, 1024, 2_147_483_647, 256)
    assert default.require_json_content_type is False
    settings = ApiSettings.from_env({
        "API_MAX_TIMEOUT_SECONDS": "60", "API_MAX_INTERFACES": "8",
        "API_MAX_INTERFACE_NUMBER": "48", "API_MAX_CREDENTIAL_LENGTH": "64",
        "API_REQUIRE_JSON_CONTENT_TYPE": "true",
    })
    assert (settings.request_limits.max_timeout_seconds, settings.request_limits.max_interfaces,
            settings.request_limits.max_interface_number,
            settings.request_limits.max_credential_length) == (60, 8, 48, 64)
    assert settings.require_json_content_type is True


@pytest.mark.parametrize("variable", ["API_MAX_TIMEOUT_SECONDS", "API_MAX_INTERFACES",
                                      "API_MAX_INTERFACE_NUMBER", "API_MAX_CREDENTIAL_LENGTH"])
def test_a_create_bound_below_one_names_its_variable(variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        ApiSettings.from_env({variable: "0"})
    assert caught.value.variable == variable
    assert "must be at least 1" in str(caught.value)


def test_the_worker_waits_a_minute_for_a_confirm_while_service_b_waits_its_publish_timeout() -> None:
    """The pool publishes only while it holds a task, so its confirms may be late without a
    re-publish; Service B's timeout stays the one a serialize-mode turn is measured in."""
    worker = WorkerSettings.from_env({"PUBLISH_TIMEOUT_SECONDS": "2"})
    assert worker.confirm_timeout_seconds == 60.0
    assert worker.own_broker.publish_timeout_seconds == 60.0
    assert worker.broker.publish_timeout_seconds == 2.0
    assert worker.own_broker.urls == worker.broker.urls
    told = WorkerSettings.from_env({"WORKER_CONFIRM_TIMEOUT_SECONDS": "7.5"})
    assert told.own_broker.publish_timeout_seconds == 7.5
