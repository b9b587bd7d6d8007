"""The end-to-end platform's settings: a short stub delay, one device that always fails at
Service A and one it does not know, quick retries, tracing on (nothing exported unless a test
names a collector)."""

from __future__ import annotations

from pathlib import Path

from cpe_devkit.environment import platform_environment

FAILING_ID = "FAILING001"
UNKNOWN_ID = "UNKNOWN001"
STUB_DELAY_SECONDS = 0.5


def e2e_environment(cert_dir: Path, *, api_workers: int = 1, stub_workers: int = 1,
                    worker_processes: int = 2, **overrides: str) -> dict[str, str]:
    """A throwaway platform's environment (``cpe_devkit.environment.platform_environment``)
    with the end-to-end settings, then ``overrides``."""
    environment = platform_environment(cert_dir, tag="e2e", api_workers=api_workers,
                                       stub_workers=stub_workers, worker_processes=worker_processes)
    environment.update({
        "STUB_DELAY_SECONDS": str(STUB_DELAY_SECONDS),
        "STUB_FAIL_IDS": FAILING_ID,
        "STUB_UNKNOWN_IDS": UNKNOWN_ID,
        "SERVICE_A_ATTEMPTS": "2",
        "SERVICE_A_BACKOFF_SECONDS": "0.05",
        "OTEL_SDK_DISABLED": "false",
        "LOG_LEVEL": "INFO",
        **overrides,
    })
    return environment
