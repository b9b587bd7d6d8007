"""Webhook settings: secrets in Standard Webhooks' form, required when hosts are set, bounds."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cpe_devkit.webhook_receiver import new_secret
from provisioning.errors import SettingsError
from provisioning.settings import DEFAULT_WEBHOOK_RETRY_DELAYS, ApiSettings, WorkerSettings
from provisioning.webhooks.client import client_context


def test_webhooks_are_off_by_default_with_the_documented_schedule() -> None:
    worker = WorkerSettings.from_env({})
    assert not worker.webhooks.enabled
    assert worker.broker.webhooks_queue == "webhooks_queue"
    assert worker.broker.webhook_retry_delays == DEFAULT_WEBHOOK_RETRY_DELAYS == (5, 30, 120, 600, 1800)


def test_several_secrets_are_decoded_in_order_and_the_first_signs() -> None:
    first, second = new_secret(), new_secret()
    worker = WorkerSettings.from_env({"WEBHOOK_ALLOWED_HOSTS": "a.example", "WEBHOOK_SECRET": f"{first} {second}"})
    assert worker.webhooks.secrets == (base64.b64decode(first[6:]), base64.b64decode(second[6:]))


@pytest.mark.parametrize(("secret", "problem"), [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
    ("whsec_not*base64", "followed by base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "at least 24 bytes"),
])
def test_a_malformed_secret_names_the_variable(secret: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"WEBHOOK_SECRET.*{problem}"):
        WorkerSettings.from_env({"WEBHOOK_ALLOWED_HOSTS": "a.example", "WEBHOOK_SECRET": secret})


def test_the_worker_needs_a_secret_when_hosts_are_allowed() -> None:
    with pytest.raises(SettingsError, match=r"WEBHOOK_SECRET.*required"):
        WorkerSettings.from_env({"WEBHOOK_ALLOWED_HOSTS": "a.example"})


def test_service_b_never_reads_the_secret() -> None:
    api = ApiSettings.from_env({"WEBHOOK_ALLOWED_HOSTS": "a.example", "WEBHOOK_SECRET": "garbage"})
    assert api.webhooks.enabled and api.webhooks.secrets == ()


@pytest.mark.parametrize(("schedule", "problem"), [
    ("5,soon", "comma-separated numbers"),
    ("0.05", "from 0.1"),
    ("90000", "from 0.1"),
    ("nan", "from 0.1"),
    (",".join(["1"] * 21), "at most 20"),
])
def test_a_bad_retry_schedule_names_the_variable(schedule: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=f"WEBHOOK_RETRY_SCHEDULE.*{problem}"):
        WorkerSettings.from_env({"WEBHOOK_RETRY_SCHEDULE": schedule})


def test_the_retry_schedule_is_read_in_seconds() -> None:
    assert WorkerSettings.from_env({"WEBHOOK_RETRY_SCHEDULE": "0.3, 2,60"}).broker.webhook_retry_delays == (
        0.3, 2.0, 60.0)


def test_the_webhooks_queue_must_differ_from_the_others() -> None:
    with pytest.raises(SettingsError, match="WEBHOOKS_QUEUE"):
        WorkerSettings.from_env({"WEBHOOKS_QUEUE": "tasks_queue"})


def test_the_attempt_timeout_is_bounded() -> None:
    with pytest.raises(SettingsError, match="WEBHOOK_TIMEOUT_SECONDS"):
        WorkerSettings.from_env({"WEBHOOK_TIMEOUT_SECONDS": "61"})


def test_a_missing_webhook_ca_file_is_named_when_the_worker_starts_delivering(tmp_path: Path) -> None:
    settings = WorkerSettings.from_env({"WEBHOOK_ALLOWED_HOSTS": "a.example", "WEBHOOK_SECRET": new_secret(),
                                        "WEBHOOK_CA_FILE": str(tmp_path / "absent.pem")})
    with pytest.raises(SettingsError, match="WEBHOOK_CA_FILE"):
        client_context(settings.webhooks)
