"""What a reader needs to weigh the figures: the machine, the versions, the open-files limit."""

from __future__ import annotations

import os
import platform as host_platform
import resource
from importlib import metadata
from typing import Any

import aiormq
import redis.asyncio as aioredis

from cpe_devkit.ports import PORT_RANGE_FILE, ephemeral_port_range

PACKAGES = ("sanic", "aiohttp", "aiormq", "redis", "hiredis", "uvloop", "locust", "opentelemetry-sdk")


def raise_open_files_limit() -> tuple[int, int]:
    """Soft limit up to the hard one; the platform's processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def ephemeral_ports(path: str = PORT_RANGE_FILE) -> int:
    """How many connections one source address can open to one destination address and port:
    the size of the kernel's ephemeral range (0 where the file cannot be read). Every call in
    flight holds its own connection to the stub, so this caps N at one stub address."""
    found = ephemeral_port_range(path)
    return 0 if found is None else found[1] - found[0] + 1


def port_range_warning(in_flight: int, ports: int) -> str | None:
    """A line for the progress output when ``in_flight`` calls cannot all connect, else None."""
    if ports <= 0 or in_flight <= ports:
        return None
    return (f"warning: ~{in_flight:,} calls in flight need as many connections to the stub's one "
            f"address and port, but the ephemeral port range gives {ports:,}: connects past that fail "
            f"('service A unreachable'). Widen it for the run: "
            f"sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"")


def _first_field(path: str, prefix: str, separator: str | None = None) -> str:
    """The value of the first line of ``path`` that starts with ``prefix`` ("" if none)."""
    with open(path) as lines:
        for line in lines:
            if line.startswith(prefix):
                return line.split(separator, 1)[1].strip()
    return ""


def machine_facts() -> dict[str, Any]:
    memory = _first_field("/proc/meminfo", "MemTotal:")  # "16318312 kB"
    memory_kib = int(memory.split()[0]) if memory else 0
    versions = {"python": host_platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cores": os.cpu_count(),
        "cpu": _first_field("/proc/cpuinfo", "model name", ":"),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": host_platform.release(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "ephemeral_ports": ephemeral_ports(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


async def service_versions(redis_url: str, amqp_url: str) -> dict[str, str]:
    """The versions Redis and RabbitMQ report of themselves."""
    found: dict[str, str] = {}
    client = aioredis.Redis.from_url(redis_url)
    try:
        found["redis-server"] = str((await client.info("server")).get("redis_version"))
    finally:
        await client.aclose()
    connection = await aiormq.connect(amqp_url)
    try:
        version = connection.server_properties.get("version", b"")
        found["rabbitmq"] = version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()
    return found
