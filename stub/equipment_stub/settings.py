"""The stub's settings, from the environment (see ``.env.example``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from provisioning.environment import Environment
from provisioning.settings import MetricsSettings, TlsSettings

from .behaviour import Behaviour


@dataclass(frozen=True, slots=True)
class StubSettings:
    host: str
    port: int
    workers: int
    backlog: int
    log_level: str
    behaviour: Behaviour
    behaviour_file: Path
    metrics: MetricsSettings
    tls: TlsSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StubSettings:
        env = Environment(os.environ if environ is None else environ)
        port = env.integer("STUB_PORT", 8080, minimum=1)
        default_behaviour_file = Path(tempfile.gettempdir()) / f"equipment-stub-{port}.json"
        return cls(
            host=env.text("STUB_HOST", "127.0.0.1"),
            port=port,
            workers=env.integer("STUB_WORKERS", 1, minimum=1),
            backlog=env.integer("STUB_BACKLOG", 4096, minimum=1),
            log_level=env.text("LOG_LEVEL", "INFO").upper(),
            behaviour=Behaviour(
                delay_seconds=env.number("STUB_DELAY_SECONDS", 60.0),
                jitter_seconds=env.number("STUB_JITTER_SECONDS", 0.0),
                failure_ratio=env.ratio("STUB_FAILURE_RATIO", 0.0),
                fail_ids=env.words("STUB_FAIL_IDS"),
                unknown_ids=env.words("STUB_UNKNOWN_IDS"),
            ),
            behaviour_file=Path(env.text("STUB_BEHAVIOUR_FILE", str(default_behaviour_file))),
            metrics=MetricsSettings.from_env(env, "STUB_METRICS_PORT", 9100),
            tls=TlsSettings.from_env(env),
        )
