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


@pytest.mark.parametrize("argv", [["--phases", "api,soak"], ["--platform-env", "LOG_LEVEL"], ["--delay", "x"]])
def test_a_mistake_on_the_command_line_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv, environ={})


def test_the_worker_prefetch_covers_the_most_tasks_in_flight_per_process_with_a_margin() -> None:
    options = parse_args(["--held", "20000", "--rates", "300", "--delay", "60", "--worker-processes", "2"],
                         environ={})
    assert worker_prefetch(options) == 11_000  # 20,000 held / 2 processes x 1.1
    assert worker_prefetch(parse_args(["--rates", "300", "--held", "10", "--delay", "60"], environ={})) == 10_725


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
