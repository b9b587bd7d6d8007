"""Throwaway servers for the live observability test: the Redis exporter, Prometheus and an
OTLP sink, each on free loopback ports with its data in a temporary directory, each stopped
(and waited for) by ``stop()``. The RabbitMQ node with its Prometheus plugin is
``cpe_devkit.rabbit_node.RabbitNode``.

None touches the machine's own services: the exporter only reads Redis.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cpe_devkit.ports import free_port
from cpe_devkit.processes import Background, answers, http_get

TOOLS = ("promtool", "prometheus", "prometheus-redis-exporter")


@dataclass(frozen=True)
class PrometheusTools:
    """Paths of the Prometheus tools; None for one that is not installed."""

    promtool: str | None
    prometheus: str | None
    redis_exporter: str | None

    @classmethod
    def on_path(cls) -> PrometheusTools:
        return cls(*(shutil.which(tool) for tool in TOOLS))

    @property
    def missing(self) -> list[str]:
        return [tool for tool, path in zip(TOOLS, self.paths(), strict=True) if path is None]

    def paths(self) -> tuple[str | None, ...]:
        return (self.promtool, self.prometheus, self.redis_exporter)

    def require(self, tool: str) -> str:
        path = dict(zip(TOOLS, self.paths(), strict=True))[tool]
        if path is None:
            pytest.skip(
                f"{tool} is not installed and scripts/ensure-prometheus.sh could not install it "
                "(Debian packages prometheus and prometheus-redis-exporter; needs root and apt)"
            )
        return path


@dataclass
class RedisExporter:
    executable: str
    redis_address: str
    directory: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.process = Background("redis exporter", self.directory / "redis-exporter.log")

    def start(self) -> None:
        self.process.start([
            self.executable,
            f"--redis.addr={self.redis_address}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ])

    def wait_ready(self, timeout: float = 20.0) -> None:
        def redis_up() -> bool:
            try:
                status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
            except OSError:
                return False
            return status == 200 and b"\nredis_up 1" in body

        self.process.wait_until(redis_up, timeout, "reporting redis_up 1")

    def stop(self) -> None:
        self.process.close()


class PrometheusError(AssertionError):
    pass


@dataclass
class PrometheusServer:
    executable: str
    directory: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.process = Background("prometheus", self.directory / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: Mapping[str, Any]) -> None:
        config_file = self.directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self.process.start([
            self.executable,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
        ])

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.process.wait_until(lambda: answers(f"{self.url}/-/ready"), timeout, "ready")

    def api(self, path: str, **parameters: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(parameters)}"
        status, body = http_get(url, timeout=10)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise PrometheusError(f"{path} {parameters}: HTTP {status}: {answer.get('error', answer)}")
        return answer["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expression)
        result = data["result"]
        # A scalar or string answer is one value, not a list of series.
        return result if data["resultType"] in ("vector", "matrix") else [{"value": result}]

    def stop(self) -> None:
        self.process.close()


class OtlpSink:
    """Accepts OTLP/HTTP trace exports and drops them: tracing is on only where spans can be
    sent, and exemplars come from traced requests."""

    def __init__(self) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
