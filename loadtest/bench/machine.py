"""What a reader needs to weigh the figures: the machine, the versions, the open-files limit."""

from __future__ import annotations

import os
import platform as host_platform
import resource
from importlib import metadata
from typing import Any

import aiormq
import redis.asyncio as aioredis

PACKAGES = ("sanic", "aiohttp", "aiormq", "redis", "hiredis", "uvloop", "locust", "opentelemetry-sdk")


def raise_open_files_limit() -> tuple[int, int]:
    """Soft limit up to the hard one; the platform's processes inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


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
