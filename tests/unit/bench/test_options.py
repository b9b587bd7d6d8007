"""The benchmark's command line: --quick changes the defaults but not what is given, every
option has its BENCH_* variable, lists are split, mistakes are refused."""

from __future__ import annotations

import pytest

from bench.launch import worker_prefetch
from bench.options import parse_args


def test_the_full_run_is_the_default() -> None:
    options = parse_args([], environ={})
    assert options.phases == ("api", "held", "rate", "notice")
    assert (options.delay, options.held, options.rates) == (60.0, (1000, 10000, 20000), (300.0,))
    assert (options.rate_seconds, options.api_seconds, options.settle) == (300.0, 15.0, 120.0)
    assert options.results is None


def test_quick_shortens_the_defaults_but_keeps_what_is_given() -> None:
    options = parse_args(["--quick", "--held", "50"], environ={})
    assert (options.delay, options.held, options.rates, options.rate_seconds) == (2.0, (50,), (50.0,), 10.0)


def test_variables_give_defaults_and_the_command_line_wins() -> None:
    environ = {"BENCH_DELAY": "5", "BENCH_CLIENTS": "3", "BENCH_PHASES": "held"}
    options = parse_args(["--clients", "4"], environ=environ)
    assert (options.delay, options.clients, options.phases) == (5.0, 4, ("held",))


def test_lists_are_comma_separated() -> None:
    options = parse_args(["--api-workers", "1,2", "--api-concurrency", "32, 64", "--rates", "10,20.5"],
                         environ={})
    assert (options.api_workers, options.api_concurrency, options.rates) == ((1, 2), (32, 64), (10.0, 20.5))


def test_platform_env_assignments_become_variables() -> None:
    options = parse_args(["--platform-env", "LOG_LEVEL=WARNING", "--platform-env", "A=b=c"], environ={})
    assert options.platform_overrides == {"LOG_LEVEL": "WARNING", "A": "b=c"}


@pytest.mark.parametrize("argv", [["--phases", "api,chaos"], ["--platform-env", "LOG_LEVEL"], ["--delay", "x"]])
def test_a_mistake_on_the_command_line_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv, environ={})


def test_the_worker_prefetch_covers_the_most_tasks_in_flight_per_process_with_a_margin() -> None:
    options = parse_args(["--held", "20000", "--rates", "300", "--delay", "60", "--worker-processes", "2"],
                         environ={})
    assert worker_prefetch(options) == 11_000  # 20,000 held / 2 processes x 1.1
    assert worker_prefetch(parse_args(["--rates", "300", "--held", "10", "--delay", "60"], environ={})) == 10_725


def test_the_worker_prefetch_counts_only_the_phases_that_run() -> None:
    held_only = parse_args(["--phases", "held", "--held", "50000", "--worker-processes", "4"], environ={})
    assert worker_prefetch(held_only) == 13_750  # 50,000 / 4 x 1.1: the default 300/s x 305 s not counted


def test_a_given_worker_prefetch_is_kept() -> None:
    assert worker_prefetch(parse_args(["--worker-prefetch", "77"], environ={})) == 77


def test_the_notice_phase_compares_every_mode_at_two_sizes_by_default_and_quick_makes_it_small() -> None:
    full, quick = parse_args([], environ={}), parse_args(["--quick"], environ={})
    assert (full.notice_held, full.notice_delay) == ((2000, 10000), 30.0)
    assert full.notice_modes == ("poll", "long-poll", "sse", "webhook")
    assert (full.notice_poll_interval, full.notice_wait) == (1.0, 25.0)
    assert (quick.notice_held, quick.notice_delay) == ((200,), 3.0)


def test_notice_modes_can_be_chosen_and_unknown_ones_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--notice-modes", "sse, webhook"], environ={}).notice_modes == ("sse", "webhook")
    with pytest.raises(SystemExit):
        parse_args(["--notice-modes", "carrier-pigeon"], environ={})
    assert "unknown notice modes: carrier-pigeon" in capsys.readouterr().err


def test_the_worker_prefetch_leaves_room_for_the_largest_notice_run() -> None:
    options = parse_args(["--quick", "--notice-held", "10000"], environ={})
    assert worker_prefetch(options) * options.worker_processes >= 10000


def test_the_soak_runs_only_when_asked_for() -> None:
    assert "soak" not in parse_args([], environ={}).phases
    assert parse_args(["--phases", "soak"], environ={}).phases == ("soak",)
    assert parse_args([], environ={"BENCH_PHASES": "held,soak"}).phases == ("held", "soak")


def test_the_soak_is_half_an_hour_at_a_moderate_rate_and_quick_makes_it_a_minute() -> None:
    full, quick = parse_args([], environ={}), parse_args(["--quick"], environ={})
    assert (full.soak_rate, full.soak_minutes, full.soak_delay, full.soak_poll_interval) == (30.0, 30.0, 5.0, 2.0)
    assert (full.soak_sample_seconds, full.soak_task_ttl) == (30.0, 300)
    assert (quick.soak_rate, quick.soak_minutes, quick.soak_delay) == (20.0, 1.0, 2.0)
    assert (quick.soak_sample_seconds, quick.soak_task_ttl) == (5.0, 20)


def test_the_soaks_options_come_from_variables_and_the_command_line_wins() -> None:
    environ = {"BENCH_SOAK_RATE": "45", "BENCH_SOAK_MINUTES": "60", "BENCH_SOAK_TASK_TTL": "600"}
    options = parse_args(["--quick", "--soak-minutes", "10"], environ=environ)
    assert (options.soak_rate, options.soak_minutes, options.soak_task_ttl) == (45.0, 10.0, 600)


@pytest.mark.parametrize(("argv", "message"), [
    (["--soak-rate", "0"], "--soak-rate must be above zero, got 0"),
    (["--soak-minutes", "-5"], "--soak-minutes must be above zero, got -5"),
    (["--soak-sample-seconds", "nan"], "--soak-sample-seconds must be above zero, got nan"),
    (["--soak-poll-interval", "0"], "--soak-poll-interval must be above zero, got 0.0"),
    (["--soak-task-ttl", "1.5"], "--soak-task-ttl wants whole seconds, got '1.5'"),
    (["--soak-task-ttl", "0"], "--soak-task-ttl must be above zero, got 0"),
    (["--soak-delay", "soon"], "--soak-delay wants a number, got 'soon'"),
])
def test_a_soak_number_that_makes_no_sense_is_refused_by_its_name(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv, environ={})
    assert message in capsys.readouterr().err


def test_the_worker_prefetch_covers_the_soaks_tasks_in_flight() -> None:
    options = parse_args(["--phases", "soak", "--soak-rate", "500", "--soak-delay", "10", "--held", "10", "--notice-held", "10",
                          "--rates", "1", "--worker-processes", "2"], environ={})
    assert worker_prefetch(options) == 4125  # 500/s x (10 s + 5 s) / 2 processes x 1.1
