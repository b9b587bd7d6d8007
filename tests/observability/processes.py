"""Throwaway servers for the live observability test: a RabbitMQ node with its Prometheus
plugin, the Redis exporter and Prometheus, each on free loopback ports with its data in a
temporary directory, each stopped (and waited for) by ``stop()``.

None touches the machine's own RabbitMQ or Redis: the RabbitMQ node is a second node with its
own name, ports, cookie and data; the exporter only reads Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from tests.ports import free_port

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








def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answers(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Background:
    """A child process in its own session, its output in a log file."""

    name: str
    log_file: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self, command: list[str], environment: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> None:
        self._log = open(self.log_file, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            command, env=None if environment is None else dict(environment), cwd=cwd,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until true; fail early with the log when the process exits."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before {what}:\n"
                    f"{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: not {what} after {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


def rabbitmq_scripts() -> Path | None:
    """Where rabbitmq-server and rabbitmqctl are, run as the current user.

    Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user, who could not write our
    temporary directory; the scripts it wraps are in /usr/lib/rabbitmq/bin.
    """
    debian = Path("/usr/lib/rabbitmq/bin")
    if (debian / "rabbitmq-server").exists():
        return debian
    found = shutil.which("rabbitmq-server")
    return Path(found).parent if found else None


@dataclass
class RabbitNode:
    """A second RabbitMQ node with the rabbitmq_prometheus plugin, apart from the machine's."""

    scripts: Path
    directory: Path
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"rabbit-obs-{uuid.uuid4().hex[:8]}@localhost")

    def __post_init__(self) -> None:
        self.server = Background("rabbitmq", self.directory / "rabbitmq.log")

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **inherited,
            # The Erlang cookie lives in HOME: ours, shared with rabbitmqctl below only.
            "HOME": str(self.directory),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.directory / "advanced.config"),
            # Not the machine's rabbitmq-env.conf, which names the machine's node.
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}\n"
            f"prometheus.tcp.ip = 127.0.0.1\n"
            f"prometheus.tcp.port = {self.prometheus_port}\n"
        )
        (self.directory / "rabbitmq-env.conf").write_text("")
        (self.directory / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        self.server.start([str(self.scripts / "rabbitmq-server")], self.environment(),
                          cwd=self.directory)

    def wait_ready(self, timeout: float = 60.0) -> None:
        metrics = f"http://127.0.0.1:{self.prometheus_port}/metrics"
        self.server.wait_until(lambda: port_open(self.amqp_port) and answers(metrics), timeout,
                               "accepting AMQP and serving metrics")

    def stop(self) -> None:
        if self.server.process is not None and self.server.process.poll() is None:
            subprocess.run(
                [str(self.scripts / "rabbitmqctl"), "-n", self.node, "stop"],
                env=self.environment(), capture_output=True, timeout=60, check=False,
            )
        self.server.stop(timeout=30)


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
        self.process.stop()


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
        self.process.stop()


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
