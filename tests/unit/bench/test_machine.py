"""The machine's limits a run can meet: the ephemeral port range caps the calls that can hold a
connection each to the stub's one address and port."""

from __future__ import annotations

from pathlib import Path

from bench.machine import ephemeral_ports, port_range_warning


def test_the_port_count_is_the_size_of_the_kernels_range(tmp_path: Path) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("32768\t60999\n")
    assert ephemeral_ports(str(range_file)) == 28232


def test_an_unreadable_or_malformed_range_counts_as_unknown(tmp_path: Path) -> None:
    malformed = tmp_path / "malformed"
    malformed.write_text("32768\n")
    assert ephemeral_ports(str(tmp_path / "missing")) == 0
    assert ephemeral_ports(str(malformed)) == 0


def test_a_run_that_fits_the_range_gets_no_warning() -> None:
    assert port_range_warning(28232, 28232) is None
    assert port_range_warning(50000, 0) is None  # unknown range: nothing to say


def test_a_run_past_the_range_is_told_how_to_widen_it() -> None:
    warning = port_range_warning(50000, 28232)
    assert warning is not None
    assert "~50,000 calls" in warning and "gives 28,232" in warning
    assert 'sysctl -w net.ipv4.ip_local_port_range="1024 65535"' in warning
