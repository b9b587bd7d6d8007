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


def test_waiting_clients_share_one_notice_deadline_and_write_their_progress_to_files_of_their_own() -> None:
    jobs = plan_jobs(Target("u", "c"), JobKind.LONG_POLL, 2, concurrency=128, count=2000, now=1000.0,
                     wait_seconds=25.0, notice_seconds=150.0, progress_dir="/reports/progress")
    assert {(job.notice_seconds, job.wait_seconds) for job in jobs} == {(150.0, 25.0)}
    assert [job.progress_file for job in jobs] == [f"/reports/progress/{job.tag}.json" for job in jobs]
    assert all(job.waits for job in jobs)


def test_plain_submissions_do_not_wait_and_may_name_a_callback_url() -> None:
    [job] = plan_jobs(Target("u", "c"), JobKind.SUBMIT, 1, concurrency=8, count=10,
                      callback_url="https://127.0.0.1:9/webhooks")
    assert not job.waits
    assert (job.callback_url, job.notice_seconds, job.progress_file) == ("https://127.0.0.1:9/webhooks", 0.0, "")


def test_soak_clients_share_the_rate_and_each_created_task_is_polled_until_it_is_final() -> None:
    jobs = plan_jobs(Target("u", "c"), JobKind.SOAK, 2, concurrency=64, rate=30.0, duration=1800.0, now=0.0,
                     wait_seconds=2.0, notice_seconds=125.0, progress_dir="/reports/progress/soak-30")
    assert [(job.rate, job.duration, job.wait_seconds, job.notice_seconds) for job in jobs] == [
        (15.0, 1800.0, 2.0, 125.0), (15.0, 1800.0, 2.0, 125.0)]
    assert all(job.waits and job.progress_file for job in jobs)
