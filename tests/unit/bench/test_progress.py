"""Progress of the waiting clients: each writes its counts to a file of its own, the benchmark
sums them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.jobs import ClientResult
from bench.progress import read_progress, write_progress


def test_the_counts_of_every_client_are_summed(tmp_path: Path) -> None:
    first = ClientResult(tasks=[("E1", "t1"), ("E2", "t2")], notices={"t1": (1.0, "Completed")},
                         wait_errors=Counter({"503": 2, "requests": 7}))
    second = ClientResult(tasks=[("E3", "t3")])
    write_progress(str(tmp_path / "c0.json"), first)
    write_progress(str(tmp_path / "c1.json"), second)
    assert read_progress(tmp_path) == Counter({"created": 3, "noticed": 1, "wait_requests": 7, "wait_errors": 2})


def test_a_later_write_replaces_the_earlier_counts(tmp_path: Path) -> None:
    result = ClientResult(tasks=[("E1", "t1")])
    write_progress(str(tmp_path / "c0.json"), result)
    result.notices["t1"] = (1.0, "Completed")
    write_progress(str(tmp_path / "c0.json"), result)
    assert read_progress(tmp_path)["noticed"] == 1
    assert [path.name for path in tmp_path.iterdir()] == ["c0.json"]


def test_a_client_without_a_progress_file_writes_nothing(tmp_path: Path) -> None:
    write_progress("", ClientResult())
    assert read_progress(tmp_path) == Counter()
