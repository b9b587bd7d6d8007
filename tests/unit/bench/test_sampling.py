"""CPU between two snapshots of the sampled process trees: per group and per process, with
what the rest of the machine used beside them."""

from __future__ import annotations

import pytest

from bench.sampling import OTHERS, SYSTEM, Snapshot, cpu_between

MEMBERS = {10: ("api", "api"), 11: ("api", "api/child1.0"), 20: ("worker", "worker")}


def test_cpu_is_split_by_group_and_role_and_the_rest_of_the_machine_is_others() -> None:
    start = Snapshot(at=0.0, ticks={10: 100, 11: 50, 20: 0}, system_ticks=1000, members=MEMBERS)
    end = Snapshot(at=5.0, ticks={10: 300, 11: 150, 20: 100}, system_ticks=1800, members=MEMBERS)
    split = cpu_between(start, end, ticks_per_second=100)
    assert split.by_group == {"api": 3.0, "worker": 1.0, SYSTEM: 8.0, OTHERS: 4.0}
    assert split.by_role == {"api": 2.0, "api/child1.0": 1.0, "worker": 1.0}


def test_a_process_born_within_the_window_counts_from_zero() -> None:
    start = Snapshot(at=0.0, ticks={10: 100}, system_ticks=0, members={10: ("api", "api")})
    end = Snapshot(at=1.0, ticks={10: 100, 11: 40}, system_ticks=100, members=MEMBERS)
    assert cpu_between(start, end, ticks_per_second=100).by_role["api/child1.0"] == pytest.approx(0.4)


def test_others_never_go_below_zero_when_our_counters_run_ahead_of_the_machines() -> None:
    start = Snapshot(at=0.0, ticks={20: 0}, system_ticks=0, members=MEMBERS)
    end = Snapshot(at=1.0, ticks={20: 120}, system_ticks=100, members=MEMBERS)
    assert cpu_between(start, end, ticks_per_second=100).by_group[OTHERS] == 0.0
