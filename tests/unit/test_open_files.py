"""A server process raises its open-file limit to what the system allows, and says when even
that is short of what its settings will hold."""

from __future__ import annotations

import logging
import resource
import subprocess
import sys
import textwrap

import pytest

from provisioning.open_files import FILE_RESERVE, check_open_files, open_file_limit


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    # In a child process: this one's limit is the test runner's to keep.
    script = textwrap.dedent("""
        import resource
        from provisioning.open_files import raise_open_file_limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raise_open_file_limit()
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True).stdout.split()
    soft, hard = output
    assert soft == hard


def test_a_configuration_that_fits_the_limit_is_not_warned_about(caplog: pytest.LogCaptureFixture
                                                                 ) -> None:
    limit = open_file_limit()
    assert limit is not None and limit > FILE_RESERVE
    with caplog.at_level(logging.WARNING, logger="provisioning.open_files"):
        check_open_files(limit - FILE_RESERVE, "WORKER_PREFETCH")
    assert not caplog.records


def test_a_configuration_past_the_limit_is_warned_about_with_both_figures(
        caplog: pytest.LogCaptureFixture) -> None:
    limit = open_file_limit()
    assert limit is not None
    with caplog.at_level(logging.WARNING, logger="provisioning.open_files"):
        check_open_files(limit, "WORKER_PREFETCH + WEBHOOK_PREFETCH")
    (record,) = caplog.records
    assert "WORKER_PREFETCH + WEBHOOK_PREFETCH" in record.getMessage()
    assert (record.open_file_limit, record.needed) == (limit, limit + FILE_RESERVE)  # type: ignore[attr-defined]


def test_the_limit_read_is_the_soft_one() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert open_file_limit() == (None if soft == resource.RLIM_INFINITY else soft)
