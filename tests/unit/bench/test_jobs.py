"""Sharing a run's load between the client processes."""

from __future__ import annotations

from bench.jobs import JobKind, Target, plan_jobs, split


def test_a_total_is_split_as_evenly_as_can_be_the_larger_shares_first() -> None:
    assert split(10, 3) == [4, 3, 3]
    assert split(2, 4) == [1, 1, 0, 0]
    assert sum(split(12345, 7)) == 12345


def test_every_client_gets_its_share_and_they_all_start_together() -> None:
    target = Target("https://127.0.0.1:1", "/certs/ca.pem", "token")
    jobs = plan_jobs(target, JobKind.SUBMIT, 3, concurrency=128, count=1000, now=1000.0)
    assert [job.concurrency for job in jobs] == [43, 43, 42]
    assert [job.count for job in jobs] == [334, 333, 333]
    assert {job.start_at for job in jobs} == {1000.0 + 2.0 + 128 / 200}
    assert {(job.base_url, job.ca_file, job.token, job.kind) for job in jobs} == {
        ("https://127.0.0.1:1", "/certs/ca.pem", "token", JobKind.SUBMIT)}
    assert len({job.tag for job in jobs}) == 3  # equipment ids never collide between clients


def test_a_rate_is_shared_and_every_client_keeps_at_least_one_connection() -> None:
    jobs = plan_jobs(Target("u", "c"), JobKind.RATE, 2, concurrency=1, rate=50.0, duration=10.0, now=0.0)
    assert [(job.rate, job.concurrency, job.duration) for job in jobs] == [(25.0, 1, 10.0), (25.0, 1, 10.0)]
