"""The stub's settings, from the environment (see ``.env.example``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from provisioning.environment import Environment
from provisioning.errors import SettingsError
from provisioning.settings import DEFAULT_HTTP_SERVER, HttpServerSettings, MetricsSettings, TlsSettings

from .behaviour import FIELDS, Behaviour
from .limits import DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class StubSettings:
    host: str
    port: int
    workers: int
    backlog: int
    log_level: str
    behaviour: Behaviour
    behaviour_file: Path
    max_body_bytes: int
    metrics: MetricsSettings
    tls: TlsSettings
    http: HttpServerSettings = DEFAULT_HTTP_SERVER  # HTTP_*: its connections' and requests' bounds

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
            behaviour=_behaviour(env),
            behaviour_file=Path(env.text("STUB_BEHAVIOUR_FILE", str(default_behaviour_file))),
            max_body_bytes=env.integer("STUB_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024),
            metrics=MetricsSettings.from_env(env, "STUB_METRICS_PORT", 9100),
            tls=TlsSettings.from_env(env),
            http=HttpServerSettings.from_env(env),
        )


def _behaviour(env: Environment) -> Behaviour:
    """The behaviour at start, within the same bounds as ``PUT /admin/behaviour``."""
    values = {
        "STUB_DELAY_SECONDS": ("delaySeconds", env.number("STUB_DELAY_SECONDS", 60.0)),
        "STUB_JITTER_SECONDS": ("jitterSeconds", env.number("STUB_JITTER_SECONDS", 0.0)),
        "STUB_FAILURE_RATIO": ("failureRatio", env.ratio("STUB_FAILURE_RATIO", 0.0)),
        "STUB_FAIL_IDS": ("failIds", env.words("STUB_FAIL_IDS")),
        "STUB_UNKNOWN_IDS": ("unknownIds", env.words("STUB_UNKNOWN_IDS")),
    }
    checked: dict[str, object] = {}
    for variable, (field_name, value) in values.items():
        attribute, read = FIELDS[field_name]
        try:
            checked[attribute] = read(value)
        except ValueError as error:  # a bad id is quoted in the error; a bad number is not
            problem = str(error) if isinstance(value, frozenset) else f"{error}, got {value}"
            raise SettingsError(variable, problem) from None
    return Behaviour(**checked)  # type: ignore[arg-type]
